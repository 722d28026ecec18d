#!/usr/bin/env bash
# Compares models/policy.onnx with the rule, restart-only, random and oracle policies on
# held-out simulator episodes; writes models/evaluation.{md,json,png}. Extra arguments go to
# training.evaluate (--model FILE, --episodes N, --out-dir DIR).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../training/python-env.sh"
build_sim

echo "==> evaluating"
"$PYTHON" -m training.evaluate "$@"
