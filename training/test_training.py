"""Tests of the training package against the real `aro-sim` binary and ONNX Runtime.

Run: ARO_SIM=<target>/release/aro-sim .venv/bin/python -m unittest training.test_training
Sb3Test needs Stable-Baselines3 and torch: run it with .venv-train/bin/python.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import unittest
from pathlib import Path

import numpy as np

from training.env import REPO_ROOT, AroSimEnv
from training.export import ExportMismatch, export, model_version, verify
from training.ppo import Mlp, Policy, PpoConfig, train


class MlpGradientTest(unittest.TestCase):
    def test_backward_matches_finite_differences(self) -> None:
        rng = np.random.default_rng(0)
        mlp = Mlp([5, 4, 3, 2], rng, out_gain=1.0)
        x = rng.standard_normal((6, 5))
        upstream = rng.standard_normal((6, 2))
        out, activations = mlp.forward(x)
        grads = mlp.backward(activations, upstream)
        for param, grad in zip(mlp.params(), grads):
            for index in np.ndindex(param.shape):
                old = param[index]
                param[index] = old + 1e-6
                plus = float((mlp.forward(x)[0] * upstream).sum())
                param[index] = old - 1e-6
                minus = float((mlp.forward(x)[0] * upstream).sum())
                param[index] = old
                self.assertAlmostEqual((plus - minus) / 2e-6, grad[index], places=6)


def random_policy(seed: int, hidden: int = 8) -> Policy:
    rng = np.random.default_rng(seed)
    sizes = [41, hidden, hidden, 7]
    weights = [rng.standard_normal((a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [rng.standard_normal(b) for b in sizes[1:]]
    return Policy(weights=weights, biases=biases, seed=seed)


class ExportCase(unittest.TestCase):
    """Base of the export tests: a simulator, a file path and feature samples."""

    def setUp(self) -> None:
        self.env = AroSimEnv()
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "policy.onnx"
        self.samples = np.random.default_rng(1).uniform(size=(64, 41)).astype(np.float32)

    def tearDown(self) -> None:
        self.env.close()
        self.dir.cleanup()


class ExportTest(ExportCase):
    def test_export_matches_network(self) -> None:
        policy = random_policy(3)
        diff = export(
            policy, self.path, self.env.schema_version, self.env.feature_names,
            self.env.action_names, self.samples,
        )
        self.assertLess(diff, 1e-5)
        self.assertTrue(model_version(policy).endswith("-s3"))

    def test_verify_rejects_other_weights(self) -> None:
        policy = random_policy(3)
        export(
            policy, self.path, self.env.schema_version, self.env.feature_names,
            self.env.action_names, self.samples,
        )
        policy.biases[-1][0] += 0.5
        with self.assertRaises(ExportMismatch):
            verify(policy, self.path, self.samples)


class EnvTest(unittest.TestCase):
    def setUp(self) -> None:
        self.env = AroSimEnv()

    def tearDown(self) -> None:
        self.env.close()

    def test_feature_names_match_spec_file(self) -> None:
        spec = json.loads((REPO_ROOT / "models" / "features.json").read_text())
        self.assertEqual(self.env.feature_names, [f["name"] for f in spec["features"]])
        self.assertEqual(self.env.schema_version, spec["schema_version"])

    def test_episode_seed_replays_episode(self) -> None:
        def play() -> list[float]:
            features, _ = self.env.reset(options={"episode_seed": 99})
            rewards = [float(features.sum())]
            for action in (1, 2, 4, 6):
                _, reward, done, _, _ = self.env.step(action)
                rewards.append(reward)
                if done:
                    break
            return rewards

        self.assertEqual(play(), play())

    def test_seeded_reset_draws_same_episodes(self) -> None:
        first = [self.env.reset(seed=5)[1]["episode_seed"]]
        first += [self.env.reset()[1]["episode_seed"] for _ in range(3)]
        second = [self.env.reset(seed=5)[1]["episode_seed"]]
        second += [self.env.reset()[1]["episode_seed"] for _ in range(3)]
        self.assertEqual(first, second)


class CommittedModelTest(unittest.TestCase):
    def test_model_matches_feature_spec(self) -> None:
        import onnxruntime as ort

        spec = json.loads((REPO_ROOT / "models" / "features.json").read_text())
        names = [f["name"] for f in spec["features"]]
        session = ort.InferenceSession(str(REPO_ROOT / "models" / "policy.onnx"))
        (features,) = session.get_inputs()
        (scores,) = session.get_outputs()
        self.assertEqual(features.name, "features")
        self.assertEqual(features.shape[1], len(names))
        self.assertEqual(scores.name, "scores")
        self.assertEqual(scores.shape[1], 7)
        meta = session.get_modelmeta().custom_metadata_map
        self.assertEqual(meta["feature_schema_version"], str(spec["schema_version"]))
        self.assertEqual(meta["features"].split(","), names)


class TrainTest(unittest.TestCase):
    def test_training_is_reproducible(self) -> None:
        def run() -> str:
            env = AroSimEnv()
            config = PpoConfig(seed=11, total_steps=1024, rollout_steps=512, minibatch=128)
            first = [True]

            def reset() -> np.ndarray:
                obs, _ = env.reset(seed=config.seed if first[0] else None)
                first[0] = False
                return obs.astype(np.float64)

            def step(action: int):
                obs, reward, done, _, info = env.step(action)
                return obs.astype(np.float64), reward, done, info

            policy = train(reset, step, 41, 7, config, log=lambda _: None)
            env.close()
            return policy.digest()

        self.assertEqual(run(), run())


@unittest.skipUnless(
    importlib.util.find_spec("stable_baselines3"), "needs stable-baselines3 (.venv-train)"
)
class Sb3Test(ExportCase):
    def setUp(self) -> None:
        from training import sb3

        super().setUp()
        self.sb3 = sb3
        self.config = sb3.Sb3Config(
            seed=11, total_steps=1024, n_envs=2, rollout_steps=256, minibatch=128
        )

    def untrained(self):
        vec_env = self.sb3.make_env(self.config)
        self.addCleanup(vec_env.close)
        return self.sb3.build(self.config, vec_env)

    def export(self, model) -> float:
        return export(
            self.sb3.to_policy(model, self.config.seed), self.path, self.env.schema_version,
            self.env.feature_names, self.env.action_names, self.samples,
            lambda features: self.sb3.probabilities(model, features),
        )

    def test_export_matches_torch_network(self) -> None:
        self.assertLess(self.export(self.untrained()), 1e-5)

    def test_verify_rejects_changed_torch_network(self) -> None:
        import torch

        model = self.untrained()
        self.export(model)
        policy = self.sb3.to_policy(model, self.config.seed)
        with torch.no_grad():
            model.policy.action_net.bias[0] += 0.5
        with self.assertRaises(ExportMismatch):
            verify(policy, self.path, self.samples, lambda x: self.sb3.probabilities(model, x))

    def test_warm_start_copies_actor(self) -> None:
        model = self.untrained()
        self.sb3.load_policy(model, random_policy(4, hidden=64))
        got = self.sb3.to_policy(model, 0)
        for have, want in zip(got.weights, random_policy(4, hidden=64).weights):
            np.testing.assert_allclose(have, want, rtol=0, atol=1e-6)

    def test_warm_start_rejects_other_shapes(self) -> None:
        with self.assertRaises(ValueError):
            self.sb3.load_policy(self.untrained(), random_policy(4))

    def test_training_is_reproducible(self) -> None:
        def run() -> str:
            model, history = self.sb3.train(self.config, 1.0, log=lambda _: None)
            self.assertEqual(len(history), 2)
            return self.sb3.to_policy(model, self.config.seed).digest()

        self.assertEqual(run(), run())


if __name__ == "__main__":
    unittest.main()
