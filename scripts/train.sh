#!/usr/bin/env bash
# Trains the recovery policy in the simulator, exports models/policy.onnx and checks the export
# against the trained network with ONNX Runtime. Extra arguments go to training.train
# (--seed N, --steps N, --out FILE, --trainer sb3|numpy, and --init-model FILE, --offline
# DATASET to start from an exported model or from recorded outcomes).
#
# The default trainer, Stable-Baselines3 on torch, runs in .venv-train with
# training/requirements-sb3.txt (torch from PyPI: about 3 GB of downloads the first time).
# --trainer numpy runs the numpy PPO in the project's .venv, without torch.
# Takes about 11 minutes on 2 cores with the defaults (the numpy trainer about 4).
set -euo pipefail

trainer=sb3
previous=
for arg in "$@"; do
    case "$arg" in
        --trainer=*) trainer="${arg#--trainer=}" ;;
        *) [ "$previous" = --trainer ] && trainer="$arg" ;;
    esac
    previous="$arg"
done
if [ "$trainer" = sb3 ]; then
    VENV=.venv-train REQUIREMENTS=training/requirements-sb3.txt
fi
source "$(dirname "${BASH_SOURCE[0]}")/../training/python-env.sh"
build_sim

echo "==> checking the training code (gradients, export, environment, features, offline fit)"
# The check of the committed model is left out: a model trained on another feature schema must
# not stop its own retraining.
tests=(training.test_training.{MlpGradientTest,ExportTest,EnvTest,TrainTest})
if [ "$trainer" = sb3 ]; then
    tests+=(training.test_training.Sb3Test)
fi
"$PYTHON" -m unittest --quiet "${tests[@]}" training.test_features training.test_offline

echo "==> training"
"$PYTHON" -m training.train "$@"
