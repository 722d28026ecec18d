# Sourced by scripts/train.sh, scripts/eval-policy.sh and scripts/export-outcomes.sh: prepares
# a virtualenv and defines build_sim. The caller may set VENV (default .venv) and REQUIREMENTS
# (default training/requirements.txt); scripts/train.sh uses .venv-train with
# training/requirements-sb3.txt, so torch stays out of the project's .venv.
# Sets ROOT and PYTHON; build_sim sets ARO_SIM.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-.venv}"
REQUIREMENTS="${REQUIREMENTS:-training/requirements.txt}"
PYTHON="$ROOT/$VENV/bin/python"
cd "$ROOT"

echo "==> python environment: $VENV with $REQUIREMENTS"
if [ ! -x "$PYTHON" ]; then
    python3 -m venv "$ROOT/$VENV"
    # Keeps a virtualenv other than the ignored .venv out of git.
    echo '*' > "$ROOT/$VENV/.gitignore"
fi
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"

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
