#!/usr/bin/env bash
# Compares the aro-logmine template miner with drain3 on every Loghub 2k sample: grouping
# accuracy and single-thread lines per CPU second, side by side, with the mean row and the
# alert scores of the labelled BGL sample. LOGHUB_DIR overrides the sample directory
# (default ../shared/data/loghub from the repository root); ARO_EVAL_SECONDS sets the CPU
# seconds of each throughput measurement (default 1).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
loghub_dir="${LOGHUB_DIR:-$root/../shared/data/loghub}"
export ARO_EVAL_SECONDS="${ARO_EVAL_SECONDS:-1}"
python="$root/.venv/bin/python"

if [ ! -d "$loghub_dir" ]; then
    echo "eval-logs: Loghub directory not found: $loghub_dir (set LOGHUB_DIR)" >&2
    exit 1
fi

echo "==> python environment: .venv with eval/logs/requirements.txt"
if [ ! -x "$python" ]; then
    python3 -m venv "$root/.venv"
fi
"$python" -m pip install --quiet --disable-pip-version-check -r eval/logs/requirements.txt

echo "==> building aro-eval-logs (release)"
cargo build --release -p aro-logmine --features eval --bin aro-eval-logs
target_dir="$(cargo metadata --format-version 1 --no-deps \
    | "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
eval_logs="$target_dir/release/aro-eval-logs"

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
datasets=()
for dir in "$loghub_dir"/*/; do
    name="$(basename "$dir")"
    if [ -f "$dir/${name}_2k.log" ] && [ -f "$dir/${name}_2k.log_structured.csv" ]; then
        datasets+=("${dir%/}")
    fi
done
if [ "${#datasets[@]}" -eq 0 ]; then
    echo "eval-logs: no NAME/NAME_2k.log samples in $loghub_dir" >&2
    exit 1
fi

echo "==> mining ${#datasets[@]} samples with aro-logmine and drain3 (${ARO_EVAL_SECONDS} CPU s each)"
for index in "${!datasets[@]}"; do
    dir="${datasets[$index]}"
    ours="$("$eval_logs" --json "$dir")"
    drain3="$("$python" eval/logs/drain3_eval.py --seconds "$ARO_EVAL_SECONDS" "$dir")"
    echo "$ours" >>"$results/ours.jsonl"
    echo "$drain3" >>"$results/drain3.jsonl"
    echo -n "[$((index + 1))/${#datasets[@]}] "
    "$python" eval/logs/table.py row "$ours" "$drain3"
done

echo
"$python" eval/logs/table.py table "$results/ours.jsonl" "$results/drain3.jsonl"
