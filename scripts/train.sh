#!/usr/bin/env bash
# Trains the recovery policy in the simulator, exports models/policy.onnx and checks the export
# against the trained network with ONNX Runtime. Extra arguments go to training.train
# (--seed N, --steps N, --out FILE, and --init-model FILE, --offline DATASET to start from an
# exported model or from recorded outcomes). Takes about 3 minutes on 2 cores with the defaults.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../training/python-env.sh"
build_sim

echo "==> checking the training code (gradients, export, environment, features, offline fit)"
# The check of the committed model is left out: a model trained on another feature schema must
# not stop its own retraining.
"$PYTHON" -m unittest --quiet training.test_training.{MlpGradientTest,ExportTest,EnvTest,TrainTest} \
    training.test_features training.test_offline

echo "==> training"
"$PYTHON" -m training.train "$@"
