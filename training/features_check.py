"""Check Python feature vectors against vectors that Rust computed for the same observations.

Usage: python -m training.features_check CASES.jsonl

Each line of CASES.jsonl is `{"observation": {...}, "features": [...]}`, the observation in
the JSON form of the Rust `Observation` and the vector that `Observation::features` gave.
Prints `checked N observations, max abs diff D` and exits 0 when every value of every vector
is within TOLERANCE, 1 on any mismatch, 2 on invalid input and 3 when numpy is missing.
The parity test of the `aro-policy` crate runs this module.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TOLERANCE = 1e-6
# Mismatching observations printed in full; the rest are only counted.
SHOWN_MISMATCHES = 10


def compare(spec: Any, cases: list[dict[str, Any]]) -> tuple[list[str], float]:
    """Return a description of each mismatching case and the max abs difference of all."""
    import numpy as np

    mismatches: list[str] = []
    max_diff = 0.0
    for line, case in enumerate(cases, start=1):
        expected = np.asarray(case["features"], dtype=np.float64)
        got = spec.vector(case["observation"]).astype(np.float64)
        if expected.shape != got.shape:
            mismatches.append(
                f"line {line}: Rust gave {expected.shape[0]} features, Python {got.shape[0]}"
            )
            continue
        diff = np.abs(expected - got)
        max_diff = max(max_diff, float(diff.max()))
        wrong = np.flatnonzero(~(diff <= TOLERANCE))
        if wrong.size:
            values = ", ".join(
                f"{spec.names[i]}: Rust {expected[i]:.9g}, Python {got[i]:.9g}" for i in wrong
            )
            observation = json.dumps(case["observation"])
            mismatches.append(f"line {line}: {values}; observation {observation}")
    return mismatches, max_diff


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    try:
        import numpy  # noqa: F401
    except ImportError:
        print(
            f"numpy is missing from {sys.executable}: run scripts/setup.sh, which installs "
            "onnxruntime and with it numpy",
            file=sys.stderr,
        )
        return 3
    from training.features import FeatureError, FeatureSpec

    path = Path(argv[0])
    try:
        cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        spec = FeatureSpec.load()
        mismatches, max_diff = compare(spec, cases)
    except (OSError, json.JSONDecodeError, KeyError, FeatureError) as error:
        print(f"invalid parity cases in {path}: {error!r}", file=sys.stderr)
        return 2
    for mismatch in mismatches[:SHOWN_MISMATCHES]:
        print(mismatch, file=sys.stderr)
    if len(mismatches) > SHOWN_MISMATCHES:
        print(f"... and {len(mismatches) - SHOWN_MISMATCHES} more", file=sys.stderr)
    print(
        f"checked {len(cases)} observations, max abs diff {max_diff:.3g}, "
        f"{len(mismatches)} mismatching (tolerance {TOLERANCE:g})"
    )
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
