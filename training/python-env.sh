# Sourced by scripts/train.sh and scripts/eval-policy.sh: prepares .venv and builds the
# simulator.
# Sets ROOT, PYTHON and ARO_SIM.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
cd "$ROOT"

echo "==> python environment: .venv with training/requirements.txt"
if [ ! -x "$PYTHON" ]; then
    python3 -m venv "$ROOT/.venv"
fi
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r training/requirements.txt

echo "==> building aro-sim (release)"
cargo build --release -p aro-policy --bin aro-sim
target_dir="$(cargo metadata --format-version 1 --no-deps \
    | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
export ARO_SIM="$target_dir/release/aro-sim"

# One BLAS thread: the matrices are small, and a fixed summation order keeps runs reproducible.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
