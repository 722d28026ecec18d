"""Gymnasium environment over the `aro-sim` simulator process.

The dynamics live only in the Rust crate `aro-policy`; this module starts its `aro-sim`
binary and speaks its JSON-lines protocol (see `crates/policy/src/protocol.rs`).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIM = REPO_ROOT / "target" / "release" / "aro-sim"

# Training draws episode seeds below this bound; evaluation uses seeds from it upwards, so the
# two never share an episode.
HELD_OUT_SEED_START = 10**12


def sim_path() -> Path:
    """Return the `aro-sim` binary: `$ARO_SIM` when set, else the workspace release build."""
    path = Path(os.environ.get("ARO_SIM", DEFAULT_SIM))
    if not path.is_file():
        raise FileNotFoundError(
            f"aro-sim binary not found at {path}: build it with "
            "`cargo build --release -p aro-policy --bin aro-sim` or set ARO_SIM"
        )
    return path


class SimError(RuntimeError):
    """The simulator rejected a request."""


class SimProcess:
    """One `aro-sim` process and its request-response pipe."""

    def __init__(self, path: Path | None = None) -> None:
        self._proc = subprocess.Popen(
            [str(path or sim_path())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return its response; raise SimError on an error response."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(message) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.poll()
            raise SimError(f"aro-sim exited (status {code}) before responding to {message}")
        response = json.loads(line)
        if "error" in response:
            raise SimError(f"aro-sim rejected {message}: {response['error']}")
        return response

    def close(self) -> None:
        """Close the pipes and wait for the process; kill it when it does not exit in 5 s."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        if not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AroSimEnv(gym.Env):
    """One incident per episode; observations are the policy model's feature vectors.

    `reset(seed=s)` seeds the environment's generator, which draws every later episode seed
    below HELD_OUT_SEED_START. `reset(options={"episode_seed": n})` plays simulator episode n
    exactly, which evaluation uses for held-out seeds.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, sim: SimProcess | None = None) -> None:
        self._sim = sim or SimProcess()
        spec = self._sim.request({"op": "spec"})
        self.spec: dict[str, Any] = spec
        self.feature_names: list[str] = spec["features"]
        self.action_names: list[str] = spec["actions"]
        self.schema_version: int = spec["schema_version"]
        self.reward_scale: float = spec["reward_scale"]
        self.observation_space = gym.spaces.Box(
            low=0.0, high=1.0, shape=(spec["n_features"],), dtype=np.float32
        )
        self.action_space = gym.spaces.Discrete(spec["n_actions"])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "episode_seed" in options:
            episode_seed = int(options["episode_seed"])
        else:
            episode_seed = int(self.np_random.integers(0, HELD_OUT_SEED_START))
        response = self._sim.request({"op": "reset", "seed": episode_seed})
        info = dict(response["info"], episode_seed=episode_seed, observation=response["observation"])
        return np.asarray(response["features"], dtype=np.float32), info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        response = self._sim.request({"op": "step", "action": int(action)})
        features = np.asarray(response["features"], dtype=np.float32)
        info = dict(response["info"], observation=response["observation"])
        return features, float(response["reward"]), bool(response["done"]), False, info

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send a request to the simulator behind this environment (evaluate, summarize)."""
        return self._sim.request(message)

    def close(self) -> None:
        self._sim.close()
