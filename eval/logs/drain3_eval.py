"""Measure drain3 on Loghub 2k samples: grouping accuracy and single-thread lines per second.

drain3 mines the `Content` column of each `NAME_2k.log_structured.csv`. The Rust evaluation
(`aro-eval-logs`) checks that its own parsing of the raw lines yields exactly these strings, so
both miners mine the same contents. drain3 runs with the settings of its example configuration
(`examples/drain3.ini` in the drain3 repository): the masking below, `sim_th` 0.4, depth 4,
100 children, 1024 clusters and `_` as an extra delimiter, with profiling off.

Prints one JSON object per dataset.
"""

import argparse
import csv
import json
import sys
import time
from pathlib import Path

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

# (regular expression, mask name) pairs of drain3's example configuration.
MASKING = [
    (r"((?<=[^A-Za-z0-9])|^)(([0-9a-f]{2,}:){3,}([0-9a-f]{2,}))((?=[^A-Za-z0-9])|$)", "ID"),
    (r"((?<=[^A-Za-z0-9])|^)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})((?=[^A-Za-z0-9])|$)", "IP"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9a-f]{6,} ?){3,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9A-F]{4} ?){4,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)(0x[a-f0-9A-F]+)((?=[^A-Za-z0-9])|$)", "HEX"),
    (r"((?<=[^A-Za-z0-9])|^)([\-\+]?\d+)((?=[^A-Za-z0-9])|$)", "NUM"),
    (r"(?<=executed cmd )(\".+?\")", "CMD"),
]


def new_miner():
    """Create a drain3 miner with the example configuration and no persistence."""
    config = TemplateMinerConfig()
    config.profiling_enabled = False
    config.masking_instructions = [MaskingInstruction(pattern, name) for pattern, name in MASKING]
    config.mask_prefix = "<:"
    config.mask_suffix = ":>"
    config.drain_sim_th = 0.4
    config.drain_depth = 4
    config.drain_max_children = 100
    config.drain_max_clusters = 1024
    config.drain_extra_delimiters = ["_"]
    return TemplateMiner(config=config)


def read_sample(directory):
    """Read the Content and EventId columns of a sample's structured csv."""
    name = directory.name
    path = directory / f"{name}_2k.log_structured.csv"
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    if not rows or "Content" not in rows[0] or "EventId" not in rows[0]:
        raise SystemExit(f"{path}: missing Content or EventId column")
    return name, [row["Content"] for row in rows], [row["EventId"] for row in rows]


def group_accuracy(truth, predicted):
    """Share of lines whose predicted group contains exactly the lines of their true group."""
    truth_sizes = {}
    for event in truth:
        truth_sizes[event] = truth_sizes.get(event, 0) + 1
    groups = {}
    for event, group in zip(truth, predicted):
        first, pure, size = groups.get(group, (event, True, 0))
        groups[group] = (first, pure and first == event, size + 1)
    accurate = sum(
        size for first, pure, size in groups.values() if pure and truth_sizes[first] == size
    )
    return accurate / len(truth) if truth else 1.0


def lines_per_second(contents, seconds):
    """Mine the contents over and over with one fresh miner until `seconds` of this thread's CPU
    time have passed, and return lines per CPU second, as the Rust evaluation does."""
    miner = new_miner()
    started = time.thread_time()
    lines = 0
    while True:
        for content in contents:
            miner.add_log_message(content)
        lines += len(contents)
        elapsed = time.thread_time() - started
        if elapsed >= seconds or not contents:
            return lines / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path, help="Loghub sample directories")
    parser.add_argument(
        "--seconds",
        type=float,
        default=1.0,
        help="minimum CPU seconds of each throughput measurement",
    )
    args = parser.parse_args()
    if args.seconds <= 0:
        raise SystemExit(f"invalid --seconds {args.seconds}: expected a positive number")
    for directory in args.datasets:
        name, contents, truth = read_sample(directory)
        miner = new_miner()
        predicted = [miner.add_log_message(content)["cluster_id"] for content in contents]
        report = {
            "dataset": name,
            "lines": len(contents),
            "templates": len(miner.drain.clusters),
            "true_templates": len(set(truth)),
            "group_accuracy": group_accuracy(truth, predicted),
            "lines_per_second": lines_per_second(contents, args.seconds),
        }
        print(json.dumps(report), flush=True)


if __name__ == "__main__":
    sys.exit(main())
