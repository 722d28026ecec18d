"""Export a trained policy to ONNX and check the file against the trained network.

The model takes `features`, float32 [batch, n_features], and returns `scores`, float32
[batch, n_actions]: action probabilities in model output order (index i is aro.v1.Action
value i + 1). Metadata: `feature_schema_version`, `model_version`, `training_seed`,
`actions`, `features`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from training.ppo import Policy

OPSET = 17
# IR version 8 is the oldest that carries opset 17, so older ONNX Runtime builds load the file.
IR_VERSION = 8
MAX_ABS_DIFF = 1e-5

# Action probabilities of the trained network for float32 features [batch, n_features].
Reference = Callable[[np.ndarray], np.ndarray]


class ExportMismatch(RuntimeError):
    """The exported model does not compute what the trained network computes."""


def model_version(policy: Policy) -> str:
    return f"{policy.digest()}-s{policy.seed}"


def build(
    policy: Policy, schema_version: int, feature_names: list[str], action_names: list[str]
) -> onnx.ModelProto:
    n_features = policy.weights[0].shape[0]
    n_actions = policy.weights[-1].shape[1]
    if n_features != len(feature_names) or n_actions != len(action_names):
        raise ValueError(
            f"network is {n_features} -> {n_actions}, but the simulator has "
            f"{len(feature_names)} features and {len(action_names)} actions"
        )

    nodes = []
    initializers = []
    current = "features"
    layers = len(policy.weights)
    for index, (w, b) in enumerate(zip(policy.weights, policy.biases)):
        w_name, b_name = f"layer{index}.weight", f"layer{index}.bias"
        initializers.append(numpy_helper.from_array(w.astype(np.float32), w_name))
        initializers.append(numpy_helper.from_array(b.astype(np.float32), b_name))
        linear = "logits" if index == layers - 1 else f"layer{index}.linear"
        nodes.append(helper.make_node("Gemm", [current, w_name, b_name], [linear]))
        if index < layers - 1:
            current = f"layer{index}.tanh"
            nodes.append(helper.make_node("Tanh", [linear], [current]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["scores"], axis=1))

    graph = helper.make_graph(
        nodes,
        "aro_recovery_policy",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", n_actions])],
        initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="aro-training",
        doc_string="Recovery action probabilities from the features in models/features.json.",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(
        model,
        {
            "feature_schema_version": str(schema_version),
            "model_version": model_version(policy),
            "training_seed": str(policy.seed),
            "actions": ",".join(action_names),
            "features": ",".join(feature_names),
        },
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def load(path: Path, schema_version: int) -> Policy:
    """Read the weights of a model that `export` wrote back into a Policy.

    Raises ValueError when the file was trained on another feature schema or lacks a layer.
    """
    model = onnx.load(str(path))
    meta = {prop.key: prop.value for prop in model.metadata_props}
    if meta.get("feature_schema_version") != str(schema_version):
        raise ValueError(
            f"{path} has feature_schema_version {meta.get('feature_schema_version')!r}, "
            f"expected {schema_version}"
        )
    arrays = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    weights, biases = [], []
    while f"layer{len(weights)}.weight" in arrays:
        index = len(weights)
        if f"layer{index}.bias" not in arrays:
            raise ValueError(f"{path} has layer{index}.weight but no layer{index}.bias")
        weights.append(arrays[f"layer{index}.weight"].astype(np.float64))
        biases.append(arrays[f"layer{index}.bias"].astype(np.float64))
    if not weights:
        raise ValueError(f"{path} has no layer0.weight: not a model that training.export wrote")
    return Policy(weights=weights, biases=biases, seed=int(meta.get("training_seed", "0")))


def verify(
    policy: Policy, path: Path, samples: np.ndarray, reference: Reference | None = None
) -> float:
    """Run the file through ONNX Runtime and return the max abs difference to the network.

    The network is `reference` when given (the torch network that `policy` was read from),
    else the numpy forward pass of `policy`. Raises ExportMismatch when the difference exceeds
    MAX_ABS_DIFF or the names are wrong.
    """
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != ["features"] or outputs != ["scores"]:
        raise ExportMismatch(f"expected input features and output scores, got {inputs} -> {outputs}")
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("model_version") != model_version(policy):
        raise ExportMismatch(f"model_version is {meta.get('model_version')!r}, expected {model_version(policy)!r}")
    got = session.run(["scores"], {"features": samples.astype(np.float32)})[0]
    want = (reference or policy.probabilities)(samples.astype(np.float32))
    diff = float(np.abs(got - want).max())
    if not np.isfinite(diff) or diff > MAX_ABS_DIFF:
        raise ExportMismatch(
            f"ONNX Runtime scores differ from the trained network by {diff:.3g} "
            f"(allowed {MAX_ABS_DIFF:g}) on {len(samples)} samples"
        )
    sums = got.sum(axis=1)
    if np.abs(sums - 1.0).max() > 1e-5:
        raise ExportMismatch(f"scores do not sum to 1: {sums.min():.6f} to {sums.max():.6f}")
    return diff


def export(
    policy: Policy,
    path: Path,
    schema_version: int,
    feature_names: list[str],
    action_names: list[str],
    samples: np.ndarray,
    reference: Reference | None = None,
) -> float:
    """Write the model to `path`, check it, and return the max abs difference found."""
    model = build(policy, schema_version, feature_names, action_names)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".onnx.tmp")
    onnx.save(model, str(tmp))
    diff = verify(policy, tmp, samples, reference)
    tmp.replace(path)
    return diff
