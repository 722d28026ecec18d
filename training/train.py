"""Train the recovery policy in the simulator and export it to models/policy.onnx.

Usage: python -m training.train [--seed N] [--steps N] [--out models/policy.onnx]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from training.env import REPO_ROOT, AroSimEnv
from training.export import export, model_version
from training.ppo import PpoConfig, train


def parse_args(argv: list[str]) -> argparse.Namespace:
    defaults = PpoConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=defaults.seed, help="training seed")
    parser.add_argument(
        "--steps", type=int, default=defaults.total_steps, help="environment steps to train for"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "models" / "policy.onnx", help="ONNX file to write"
    )
    return parser.parse_args(argv)


def sample_features(env: AroSimEnv, rng: np.random.Generator, count: int) -> np.ndarray:
    """Feature vectors to check the export on: real first observations and random points."""
    real = [env.reset(seed=int(rng.integers(0, 2**31)))[0] for _ in range(count // 2)]
    uniform = rng.uniform(0.0, 1.0, size=(count - len(real), env.observation_space.shape[0]))
    return np.vstack([np.asarray(real), uniform]).astype(np.float32)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    config = PpoConfig(seed=args.seed, total_steps=args.steps)
    env = AroSimEnv()
    print(
        f"training PPO: seed {config.seed}, {config.total_steps} steps, "
        f"{len(env.feature_names)} features, {env.action_space.n} actions",
        flush=True,
    )
    first = True

    def reset() -> np.ndarray:
        nonlocal first
        obs, _ = env.reset(seed=config.seed if first else None)
        first = False
        return obs.astype(np.float64)

    def step(action: int) -> tuple[np.ndarray, float, bool, dict]:
        obs, reward, terminated, truncated, info = env.step(action)
        return obs.astype(np.float64), reward, terminated or truncated, info

    started = time.monotonic()
    policy = train(
        reset, step, len(env.feature_names), int(env.action_space.n), config,
        reward_scale=env.reward_scale, log=lambda line: print(line, flush=True),
    )
    train_secs = time.monotonic() - started

    samples = sample_features(env, np.random.default_rng(config.seed + 1), 512)
    diff = export(policy, args.out, env.schema_version, env.feature_names, env.action_names, samples)
    env.close()
    print(f"exported {args.out} (model_version {model_version(policy)}); "
          f"ONNX Runtime vs numpy max abs diff {diff:.2e} on {len(samples)} samples", flush=True)

    record = {
        "model_version": model_version(policy),
        "feature_schema_version": env.schema_version,
        "config": asdict(config),
        "train_seconds": round(train_secs, 1),
        "export_max_abs_diff": diff,
        "history": policy.history,
    }
    record_path = args.out.with_name(args.out.stem + ".training.json")
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {record_path}; trained in {train_secs:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
