"""Writes the ONNX fixtures of the brain's model-loading tests.

wrong_width.onnx has the right tensor names and metadata but takes 40 features instead of the
schema's 41, so loading it must fail with a shape error. Run with the project's .venv:
.venv/bin/python services/brain/tests/data/make_fixtures.py
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).parent


def softmax_model(n_features: int, n_actions: int) -> onnx.ModelProto:
    weights = numpy_helper.from_array(np.zeros((n_features, n_actions), dtype=np.float32), "weights")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "weights"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
        ],
        "fixture",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", n_actions])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"feature_schema_version": "1", "model_version": "fixture"})
    onnx.checker.check_model(model)
    return model


onnx.save(softmax_model(40, 7), HERE / "wrong_width.onnx")
