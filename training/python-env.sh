# Sourced by scripts/train.sh, scripts/eval-policy.sh and scripts/export-outcomes.sh: prepares
# .venv with training/requirements.txt and defines build_sim.
# Sets ROOT and PYTHON; build_sim sets ARO_SIM.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
cd "$ROOT"

echo "==> python environment: .venv with training/requirements.txt"
if [ ! -x "$PYTHON" ]; then
    python3 -m venv "$ROOT/.venv"
fi
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r training/requirements.txt

# Builds the simulator in release mode and exports its path as ARO_SIM.
build_sim() {
    echo "==> building aro-sim (release)"
    cargo build --release -p aro-policy --bin aro-sim
    local target_dir
    target_dir="$(cargo metadata --format-version 1 --no-deps \
        | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    export ARO_SIM="$target_dir/release/aro-sim"
}

# One BLAS thread: the matrices are small, and a fixed summation order keeps runs reproducible.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
