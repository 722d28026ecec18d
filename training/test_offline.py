"""Learning from outcomes on small synthetic datasets in the exporter's format.

Run: ARO_SIM=<target>/release/aro-sim .venv/bin/python -m unittest training.test_offline
(only OfflineTrainTest starts aro-sim).
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import tempfile
import unittest
from pathlib import Path

import numpy as np
import onnxruntime as ort

from training import train as train_cli
from training.env import REPO_ROOT, AroSimEnv
from training.export import load
from training.features import features, spec
from training.offline import Costs, DatasetError, OfflineConfig, examples, fit
from training.ppo import PpoConfig
from training.ppo import train as ppo_train

# The simulator's costs; OfflineTrainTest checks them against aro-sim's spec.
COSTS = Costs(action_costs=(0.0, 1.0, 3.0, 30.0, 6.0, 10.0, 600.0), escalation_secs=900.0)
ACTIONS = list(spec().actions)


def crash(rng: random.Random) -> dict:
    return {"fault": "crash", "attempt": 1, "recent_exits": 1, "exit_code": 1,
            "healthy_replicas": 2, "desired_replicas": 3,
            "uptime_secs": rng.uniform(60, 86_400), "since_deploy_secs": rng.uniform(3600, 1e6)}


def hang(rng: random.Random) -> dict:
    return {"fault": "hang", "attempt": 1, "suspicion": 8 + rng.expovariate(1.0),
            "healthy_replicas": 1, "desired_replicas": 2, "uptime_secs": rng.uniform(60, 86_400)}


def row(incident: str, attempt: int, action: str, status: str, secs: float,
        observation: dict | None = None, as_observation: bool = False) -> dict:
    """A dataset row as training.export_outcomes writes it (the fields the fit reads)."""
    result = {
        "command_id": f"cmd-{incident}-a{attempt}", "incident_id": incident, "attempt": attempt,
        "action": action, "action_index": ACTIONS.index(action),
        "source": "ladder" if observation is None else "policy",
        "features": None, "status": status, "action_secs": secs,
    }
    if observation is not None and as_observation:
        result["observation"] = observation
    elif observation is not None:
        result["features"] = features(observation)
    return result


def synthetic_dataset(incidents: int, seed: int) -> list[dict]:
    """Logged incidents under a behaviour policy that mostly restarts a hang.

    Crash: restart recovers in 5 s, replace in 15 s, move in 30 s. Hang: restart fails after
    15 s (5 s plus the 10 s verification deadline). The ladder's replace fails too, and its
    move recovers. A move chosen at once recovers in 30 s. Escalation pages a person.
    """
    rng = random.Random(seed)
    rows = []
    for number in range(incidents):
        incident = f"inc-{number}"
        as_observation = number % 2 == 0
        if rng.random() < 0.5:
            observation = crash(rng)
            action = rng.choices(["restart", "replace", "move", "escalate"], [3, 3, 2, 2])[0]
            secs = {"restart": 5.0, "replace": 15.0, "move": 30.0, "escalate": 0.5}[action]
            status = "noop" if action == "escalate" else "recovered"
            rows.append(row(incident, 1, action, status, secs + rng.uniform(-1, 1),
                            observation, as_observation))
            continue
        observation = hang(rng)
        action = rng.choices(["restart", "move", "escalate"], [6, 2.5, 1.5])[0]
        if action == "restart":
            rows.append(row(incident, 1, "restart", "failed", 15.0, observation, as_observation))
            rows.append(row(incident, 2, "replace", "failed", 25.0))
            rows.append(row(incident, 3, "move", "recovered", 30.0))
        elif action == "move":
            rows.append(row(incident, 1, "move", "recovered", 30.0, observation, as_observation))
        else:
            rows.append(row(incident, 1, "escalate", "noop", 0.5, observation, as_observation))
    return rows


def preferred(policy, observation: dict) -> str:
    return ACTIONS[int(policy.probabilities(np.asarray([features(observation)]))[0].argmax())]


class ExamplesTest(unittest.TestCase):
    def test_return_sums_rest_of_incident(self) -> None:
        rng = random.Random(1)
        rows = [
            row("inc-1", 1, "restart", "failed", 15.0, hang(rng)),
            row("inc-1", 2, "replace", "failed", 25.0),
            row("inc-1", 3, "move", "recovered", 30.0),
        ]
        data = examples(rows, COSTS)
        self.assertEqual(data.command_ids, ["cmd-inc-1-a1"])
        self.assertEqual(data.returns.tolist(), [-(15 + 1 + 25 + 3 + 30 + 6)])
        self.assertEqual(data.actions.tolist(), [ACTIONS.index("restart")])
        self.assertEqual(data.skipped, {"no feature vector (ladder)": 2})

    def test_escalation_adds_page_and_person(self) -> None:
        data = examples([row("inc-1", 1, "escalate", "noop", 0.5, crash(random.Random(2)))], COSTS)
        self.assertEqual(data.returns.tolist(), [-(0.5 + 600 + 900)])

    def test_observation_rows_get_computed_features(self) -> None:
        observation = crash(random.Random(3))
        data = examples([row("inc-1", 1, "restart", "recovered", 5.0, observation,
                             as_observation=True)], COSTS)
        np.testing.assert_array_equal(data.features[0], spec().vector(observation))

    def test_unended_incident_is_skipped(self) -> None:
        rows = [row("inc-1", 1, "restart", "failed", 15.0, crash(random.Random(4))),
                row("inc-2", 1, "restart", "recovered", 5.0, crash(random.Random(5)))]
        data = examples(rows, COSTS)
        self.assertEqual(data.command_ids, ["cmd-inc-2-a1"])
        self.assertEqual(data.skipped, {"incident not recovered or escalated": 1})

    def test_other_feature_length_names_command(self) -> None:
        bad = row("inc-9", 1, "restart", "recovered", 5.0)
        bad["features"] = [0.0] * 40
        with self.assertRaisesRegex(DatasetError, "'cmd-inc-9-a1' has 40 features"):
            examples([bad], COSTS)

    def test_unknown_action_is_rejected(self) -> None:
        bad = row("inc-9", 1, "restart", "recovered", 5.0, crash(random.Random(6)))
        bad["action"], bad["action_index"] = "unknown_9", None
        with self.assertRaisesRegex(DatasetError, "action 'unknown_9'"):
            examples([bad], COSTS)

    def test_empty_dataset_cannot_be_fitted(self) -> None:
        with self.assertRaisesRegex(DatasetError, "no decision"):
            fit(examples([], COSTS), OfflineConfig(), len(ACTIONS))


class FitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.data = examples(synthetic_dataset(400, seed=8), COSTS)
        cls.probe = random.Random(99)

    def test_weighting_picks_cheaper_actions(self) -> None:
        config = OfflineConfig(epochs=60, minibatch=128, hidden=16)
        policy, stats = fit(self.data, config, len(ACTIONS))
        self.assertEqual(preferred(policy, hang(self.probe)), "move")
        self.assertEqual(preferred(policy, crash(self.probe)), "restart")
        self.assertEqual(stats["examples"], len(self.data.actions))

    def test_cloning_copies_behaviour(self) -> None:
        # With a huge temperature every weight is 1: plain behaviour cloning, which copies the
        # logged habit of restarting a hang.
        config = OfflineConfig(epochs=60, minibatch=128, hidden=16, temperature=1e9)
        policy, _ = fit(self.data, config, len(ACTIONS))
        self.assertEqual(preferred(policy, hang(self.probe)), "restart")

    def test_fit_is_reproducible(self) -> None:
        config = OfflineConfig(epochs=5, minibatch=128, hidden=16)
        first, _ = fit(self.data, config, len(ACTIONS))
        second, _ = fit(self.data, config, len(ACTIONS))
        self.assertEqual(first.digest(), second.digest())

    def test_warm_start_fine_tunes_committed_model(self) -> None:
        committed = load(REPO_ROOT / "models" / "policy.onnx", spec().schema_version)
        config = OfflineConfig(epochs=30, minibatch=128, lr=3e-3)
        policy, _ = fit(self.data, config, len(ACTIONS), initial=committed)
        self.assertEqual([w.shape for w in policy.weights], [w.shape for w in committed.weights])
        self.assertNotEqual(policy.digest(), committed.digest())
        self.assertEqual(preferred(policy, hang(self.probe)), "move")


class OfflineTrainTest(unittest.TestCase):
    def test_costs_match_simulator(self) -> None:
        env = AroSimEnv()
        try:
            self.assertEqual(Costs.from_spec(env.spec), COSTS)
        finally:
            env.close()

    def test_ppo_starts_from_initial_policy(self) -> None:
        committed = load(REPO_ROOT / "models" / "policy.onnx", spec().schema_version)
        env = AroSimEnv()
        try:
            # A learning rate of 0: PPO collects one rollout and changes nothing, so the actor
            # it returns is the one it started from.
            config = PpoConfig(seed=3, total_steps=64, rollout_steps=64, minibatch=64, epochs=1,
                               lr=0.0)
            policy = ppo_train(
                lambda: env.reset()[0].astype(np.float64),
                lambda action: env.step(action)[:3] + ({},),
                len(spec()), len(ACTIONS), config,
                log=lambda _: None, initial=committed,
            )
        finally:
            env.close()
        self.assertEqual(policy.digest(), committed.digest())

    def test_train_cli_exports_offline_policy(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            dataset = Path(tmp) / "outcomes.jsonl"
            dataset.write_text(
                "".join(json.dumps(r) + "\n" for r in synthetic_dataset(400, seed=8))
            )
            out = Path(tmp) / "policy.onnx"
            log = io.StringIO()
            with contextlib.redirect_stdout(log):
                status = train_cli.main([
                    "--offline", str(dataset), "--offline-epochs", "60", "--steps", "0",
                    "--out", str(out),
                ])
            self.assertEqual(status, 0, log.getvalue())
            self.assertIn("offline: 400 decisions", log.getvalue())
            session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            probe = np.asarray([features(hang(random.Random(5)))], dtype=np.float32)
            scores = session.run(["scores"], {"features": probe})[0][0]
            self.assertEqual(ACTIONS[int(scores.argmax())], "move")
            record = json.loads((Path(tmp) / "policy.training.json").read_text())
            self.assertEqual(record["offline"]["dataset"], str(dataset))
            self.assertEqual(list(record["offline"]["skipped"]), ["no feature vector (ladder)"])
            self.assertGreater(record["offline"]["examples"], 300)


if __name__ == "__main__":
    unittest.main()
