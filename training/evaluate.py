"""Compare the exported ONNX policy with the baselines on held-out simulator episodes.

Usage: python -m training.evaluate [--model models/policy.onnx] [--episodes N]

The ONNX model runs through ONNX Runtime on the feature vectors that the Rust simulator
computes, and takes the action with the highest score. The baselines (rules, restart-only,
random, oracle) run inside the simulator. All policies meet the same episodes: seeds
HELD_OUT_SEED_START to HELD_OUT_SEED_START + N - 1, which training never draws. The Rust crate
summarises every policy's episodes, so the figures are computed by one piece of code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from training.env import HELD_OUT_SEED_START, REPO_ROOT, AroSimEnv

BASELINES = ["rules", "restart_only", "random", "oracle"]
# The rule policies that the model has to beat: the ones an operator could deploy today.
RULE_POLICIES = ["rules", "restart_only"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "policy.onnx")
    parser.add_argument("--episodes", type=int, default=20_000, help="held-out episodes")
    parser.add_argument(
        "--out-dir", type=Path, default=REPO_ROOT / "models", help="where evaluation.* go"
    )
    return parser.parse_args(argv)


def run_model(env: AroSimEnv, model: Path, episodes: int) -> tuple[dict[str, Any], str]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("feature_schema_version") != str(env.schema_version):
        raise SystemExit(
            f"{model} has feature_schema_version {meta.get('feature_schema_version')!r}, "
            f"the simulator computes version {env.schema_version}: retrain the model"
        )
    records = []
    started = time.monotonic()
    for offset in range(episodes):
        features, _ = env.reset(options={"episode_seed": HELD_OUT_SEED_START + offset})
        while True:
            scores = session.run(["scores"], {"features": features[None, :]})[0][0]
            features, _, done, _, info = env.step(int(np.argmax(scores)))
            if done:
                records.append(info["episode"])
                break
        if (offset + 1) % 5_000 == 0:
            print(f"  model: {offset + 1}/{episodes} episodes, "
                  f"{time.monotonic() - started:.0f} s", flush=True)
    summary = env.request({"op": "summarize", "records": records})["summary"]
    return summary, meta.get("model_version", "unknown")


def run_baseline(env: AroSimEnv, name: str, episodes: int) -> dict[str, Any]:
    request = {"op": "evaluate", "policy": name, "episodes": episodes, "seed": HELD_OUT_SEED_START}
    return env.request(request)["summary"]


def table(summaries: dict[str, dict[str, Any]]) -> str:
    causes = [c["cause"] for c in next(iter(summaries.values()))["per_cause"]]
    head = (
        "| policy | mean downtime (s) | mean cost | wrong actions / fault | actions / fault "
        "| paged | " + " | ".join(causes) + " |"
    )
    rule = "|" + " --- |" * (6 + len(causes))
    rows = [head, rule]
    for name, s in summaries.items():
        per_cause = {c["cause"]: c["mean_downtime_secs"] for c in s["per_cause"]}
        rows.append(
            f"| {name} | {s['mean_downtime_secs']:.1f} | {s['mean_cost']:.1f} "
            f"| {s['wrong_actions_per_fault']:.2f} | {s['actions_per_fault']:.2f} "
            f"| {s['paged']} ({100 * s['paged_share']:.1f} %) | "
            + " | ".join(f"{per_cause.get(c, float('nan')):.1f}" for c in causes)
            + " |"
        )
    return "\n".join(rows)


def plot(summaries: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summaries)
    causes = [c["cause"] for c in summaries[names[0]]["per_cause"]]
    groups = ["all"] + causes
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / len(names)
    x = np.arange(len(groups))
    for i, name in enumerate(names):
        per_cause = {c["cause"]: c["mean_downtime_secs"] for c in summaries[name]["per_cause"]}
        values = [summaries[name]["mean_downtime_secs"]] + [per_cause[c] for c in causes]
        ax.bar(x + (i - (len(names) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, [g.replace("_", "\n") for g in groups])
    ax.set_ylabel("mean downtime per incident (s, log scale)")
    ax.set_yscale("log")
    ax.set_title("Recovery policies on held-out simulator incidents")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    env = AroSimEnv()
    print(f"evaluating on {args.episodes} held-out episodes from seed {HELD_OUT_SEED_START}",
          flush=True)
    summaries: dict[str, dict[str, Any]] = {}
    summaries["model"], version = run_model(env, args.model, args.episodes)
    for name in BASELINES:
        summaries[name] = run_baseline(env, name, args.episodes)
    env.close()

    model = summaries["model"]["mean_downtime_secs"]
    best_rule_name = min(RULE_POLICIES, key=lambda n: summaries[n]["mean_downtime_secs"])
    best_rule = summaries[best_rule_name]["mean_downtime_secs"]
    oracle = summaries["oracle"]["mean_downtime_secs"]
    vs_rules = 100 * (1 - model / best_rule)
    vs_oracle = 100 * (model / oracle - 1)
    verdict = [
        f"model {args.model.name} (model_version {version}), {args.episodes} held-out episodes",
        f"downtime {vs_rules:.1f} % below the best rule policy ({best_rule_name}): "
        f"target at least 20 % -> {'met' if vs_rules >= 20 else 'NOT met'}",
        f"downtime {vs_oracle:.1f} % above the oracle: target at most 10 % -> "
        f"{'met' if vs_oracle <= 10 else 'NOT met'}",
    ]
    text = table(summaries)
    print(text)
    print("\n".join(verdict))

    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "evaluation.json").write_text(
        json.dumps({"model_version": version, "episodes": args.episodes,
                    "first_seed": HELD_OUT_SEED_START, "summaries": summaries}, indent=1) + "\n"
    )
    (args.out_dir / "evaluation.md").write_text(
        "# Policy evaluation\n\n"
        "Written by `scripts/eval-policy.sh`; downtime is the mean per incident in seconds, "
        "per root cause in the right-hand columns.\n\n"
        + text + "\n\n" + "\n".join(f"- {line}" for line in verdict) + "\n"
    )
    plot(summaries, args.out_dir / "evaluation.png")
    print(f"wrote {args.out_dir / 'evaluation.md'}, evaluation.json and evaluation.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
