"""Train the recovery policy in the simulator and export it to models/policy.onnx.

Usage: python -m training.train [--trainer sb3|numpy] [--seed N] [--steps N]
       [--out models/policy.onnx] [--init-model FILE] [--offline DATASET.jsonl]
       [--offline-epochs N] [--offline-temperature T]

--trainer sb3 (the default) runs Stable-Baselines3's PPO on torch (training.sb3); --trainer
numpy runs the PPO of training.ppo, which needs no torch. --init-model starts the actor from an
exported model; --offline first fits it to recorded outcomes (training.offline); PPO in the
simulator then fine-tunes it for --steps steps, and --steps 0 exports the result without PPO.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from training.env import REPO_ROOT, AroSimEnv
from training.export import Reference, export, load, model_version
from training.offline import Costs, OfflineConfig, examples, fit, load_rows
from training.ppo import Policy, PpoConfig, train


def parse_args(argv: list[str]) -> argparse.Namespace:
    defaults = PpoConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trainer", choices=["sb3", "numpy"], default="sb3",
        help="PPO of Stable-Baselines3 (needs torch) or the numpy PPO of training.ppo",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="training seed")
    parser.add_argument(
        "--steps", type=int, default=defaults.total_steps, help="environment steps to train for"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "models" / "policy.onnx", help="ONNX file to write"
    )
    offline = OfflineConfig()
    parser.add_argument(
        "--init-model", type=Path, help="exported model whose weights the actor starts from"
    )
    parser.add_argument(
        "--offline", type=Path, metavar="DATASET",
        help="dataset of training.export_outcomes to fit the actor to before PPO",
    )
    parser.add_argument(
        "--offline-epochs", type=int, default=offline.epochs, help="passes over the dataset"
    )
    parser.add_argument(
        "--offline-temperature", type=float, default=offline.temperature,
        help="advantage temperature in seconds of downtime; larger is closer to cloning",
    )
    args = parser.parse_args(argv)
    if args.steps < 0:
        parser.error(f"--steps must be 0 or more, got {args.steps}")
    if args.steps == 0 and args.init_model is None and args.offline is None:
        parser.error("--steps 0 needs --init-model or --offline: there is nothing to export")
    return args


def warm_start(
    args: argparse.Namespace, env: AroSimEnv
) -> tuple[Policy | None, dict[str, Any]]:
    """Return the policy that PPO starts from, if any, and what made it, for the record."""
    record: dict[str, Any] = {}
    policy = None
    if args.init_model is not None:
        policy = load(args.init_model, env.schema_version)
        record["init_model"] = str(args.init_model)
        print(f"starting from {args.init_model} ({model_version(policy)})", flush=True)
    if args.offline is not None:
        config = OfflineConfig(
            seed=args.seed, epochs=args.offline_epochs, temperature=args.offline_temperature
        )
        data = examples(load_rows(args.offline), Costs.from_spec(env.spec))
        print(
            f"offline: {len(data.actions)} decisions from {args.offline}; skipped rows: "
            f"{data.skipped or 'none'}",
            flush=True,
        )
        policy, stats = fit(data, config, int(env.action_space.n), initial=policy)
        print(f"offline fit: {stats}", flush=True)
        record["offline"] = {
            "dataset": str(args.offline), "config": asdict(config), "skipped": data.skipped,
            **stats,
        }
    return policy, record


def sample_features(env: AroSimEnv, rng: np.random.Generator, count: int) -> np.ndarray:
    """Feature vectors to check the export on: real first observations and random points."""
    real = [env.reset(seed=int(rng.integers(0, 2**31)))[0] for _ in range(count // 2)]
    uniform = rng.uniform(0.0, 1.0, size=(count - len(real), env.observation_space.shape[0]))
    return np.vstack([np.asarray(real), uniform]).astype(np.float32)


def train_numpy(
    args: argparse.Namespace, env: AroSimEnv, initial: Policy | None
) -> tuple[Policy, Reference | None, dict[str, Any]]:
    """PPO of training.ppo on `env`; the numpy network is its own reference for the export."""
    config = PpoConfig(seed=args.seed, total_steps=args.steps)
    first = True

    def reset() -> np.ndarray:
        nonlocal first
        obs, _ = env.reset(seed=config.seed if first else None)
        first = False
        return obs.astype(np.float64)

    def step(action: int) -> tuple[np.ndarray, float, bool, dict]:
        obs, reward, terminated, truncated, info = env.step(action)
        return obs.astype(np.float64), reward, terminated or truncated, info

    policy = train(
        reset, step, len(env.feature_names), int(env.action_space.n), config,
        reward_scale=env.reward_scale, log=lambda line: print(line, flush=True),
        initial=initial,
    )
    return policy, None, {"trainer": "numpy", "config": asdict(config)}


def train_sb3(
    args: argparse.Namespace, env: AroSimEnv, initial: Policy | None
) -> tuple[Policy, Reference | None, dict[str, Any]]:
    """PPO of Stable-Baselines3; the export is checked against its torch network."""
    from training import sb3

    config = sb3.Sb3Config(seed=args.seed, total_steps=args.steps)
    versions = sb3.library_versions()
    print(f"stable-baselines3 {versions['stable-baselines3']}, torch {versions['torch']} (CPU, "
          f"1 thread), {config.n_envs} environments", flush=True)
    model, history = sb3.train(
        config, env.reward_scale, log=lambda line: print(line, flush=True), initial=initial
    )
    policy = sb3.to_policy(model, config.seed)
    policy.history = history
    record = {"trainer": "stable-baselines3", "versions": versions, "config": asdict(config)}
    return policy, lambda features: sb3.probabilities(model, features), record


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    env = AroSimEnv()
    print(
        f"training PPO ({args.trainer}): seed {args.seed}, {args.steps} steps, "
        f"{len(env.feature_names)} features, {env.action_space.n} actions",
        flush=True,
    )

    started = time.monotonic()
    initial, warm_record = warm_start(args, env)
    reference: Reference | None = None
    if args.steps == 0 and initial is not None:
        policy = initial
        run_record: dict[str, Any] = {"trainer": "none"}
    else:
        trainer = train_sb3 if args.trainer == "sb3" else train_numpy
        policy, reference, run_record = trainer(args, env, initial)
    train_secs = time.monotonic() - started

    samples = sample_features(env, np.random.default_rng(args.seed + 1), 512)
    diff = export(
        policy, args.out, env.schema_version, env.feature_names, env.action_names, samples,
        reference,
    )
    env.close()
    against = "numpy" if reference is None else "torch"
    print(f"exported {args.out} (model_version {model_version(policy)}); "
          f"ONNX Runtime vs {against} max abs diff {diff:.2e} on {len(samples)} samples",
          flush=True)

    record = {
        "model_version": model_version(policy),
        "feature_schema_version": env.schema_version,
        **run_record,
        "train_seconds": round(train_secs, 1),
        "export_max_abs_diff": diff,
        "history": policy.history,
        **warm_record,
    }
    record_path = args.out.with_name(args.out.stem + ".training.json")
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {record_path}; trained in {train_secs:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
