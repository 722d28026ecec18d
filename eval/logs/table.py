"""Print the log-miner evaluation: aro-logmine against drain3, one row per Loghub sample.

Reads the JSON lines that `aro-eval-logs --json` and `drain3_eval.py` print. `row` prints the
progress line of one dataset. `table` prints the whole comparison with its mean row and the
alert scores of the labelled samples.
"""

import argparse
import json
import sys


def read_reports(path):
    """Read one JSON object per line, keyed by dataset name."""
    with open(path, encoding="utf-8") as file:
        reports = [json.loads(line) for line in file if line.strip()]
    return {report["dataset"]: report for report in reports}


def rate(lines_per_second):
    """Format a rate in lines per second with a k or M suffix."""
    if lines_per_second >= 1e6:
        return f"{lines_per_second / 1e6:.2f} M"
    if lines_per_second >= 1e3:
        return f"{lines_per_second / 1e3:.1f} k"
    return f"{lines_per_second:.0f}"


def print_row(ours, drain3):
    """Print the progress line of one dataset."""
    print(
        f"{ours['dataset']}: accuracy {ours['group_accuracy']:.4f} (drain3 "
        f"{drain3['group_accuracy']:.4f}), {rate(ours['lines_per_second'])} lines/s (drain3 "
        f"{rate(drain3['lines_per_second'])})",
        flush=True,
    )


def print_table(ours_reports, drain3_reports):
    """Print the comparison table, its mean row, and the alert scores."""
    names = [name for name in ours_reports if name in drain3_reports]
    if not names:
        raise SystemExit("table: no dataset was measured by both miners")
    header = ("dataset", "ours accuracy", "drain3 accuracy", "ours lines/s", "drain3 lines/s")
    rows = []
    for name in names:
        ours, drain3 = ours_reports[name], drain3_reports[name]
        rows.append(
            (
                name,
                f"{ours['group_accuracy']:.4f}",
                f"{drain3['group_accuracy']:.4f}",
                rate(ours["lines_per_second"]),
                rate(drain3["lines_per_second"]),
            )
        )

    def mean(reports, key):
        return sum(reports[name][key] for name in names) / len(names)

    rows.append(
        (
            "mean",
            f"{mean(ours_reports, 'group_accuracy'):.4f}",
            f"{mean(drain3_reports, 'group_accuracy'):.4f}",
            rate(mean(ours_reports, "lines_per_second")),
            rate(mean(drain3_reports, "lines_per_second")),
        )
    )
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    print("| " + " | ".join(cell.ljust(width) for cell, width in zip(header, widths)) + " |")
    rules = [":" + "-" * (widths[0] + 1)] + ["-" * (width + 1) + ":" for width in widths[1:]]
    print("|" + "|".join(rules) + "|")
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        print("| " + " | ".join(cells) + " |")

    higher = sum(
        ours_reports[name]["group_accuracy"] > drain3_reports[name]["group_accuracy"]
        for name in names
    )
    ties = sum(
        ours_reports[name]["group_accuracy"] == drain3_reports[name]["group_accuracy"]
        for name in names
    )
    print()
    print(f"ours is more accurate on {higher} of {len(names)} datasets, equal on {ties}.")
    print("lines/s: lines mined per second of the mining thread's CPU time, one thread.")
    for name in names:
        for alerts in ours_reports[name].get("alerts", []):
            print(
                f"{name} alerts, scorer fed the {alerts['input']}: precision "
                f"{alerts['precision']:.3f}, recall {alerts['recall']:.3f}, F1 {alerts['f1']:.3f} "
                f"(tp {alerts['true_positives']}, fp {alerts['false_positives']}, "
                f"fn {alerts['false_negatives']}; {alerts['anomalies']} anomalies after cool-downs)"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    row = commands.add_parser("row", help="progress line of one dataset")
    row.add_argument("ours", help="one JSON line of aro-eval-logs")
    row.add_argument("drain3", help="one JSON line of drain3_eval.py")
    table = commands.add_parser("table", help="the whole comparison")
    table.add_argument("ours", help="file of aro-eval-logs JSON lines")
    table.add_argument("drain3", help="file of drain3_eval.py JSON lines")
    args = parser.parse_args()
    if args.command == "row":
        print_row(json.loads(args.ours), json.loads(args.drain3))
    else:
        print_table(read_reports(args.ours), read_reports(args.drain3))


if __name__ == "__main__":
    sys.exit(main())
