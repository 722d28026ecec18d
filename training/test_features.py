"""Parity of `training.features` with the Rust `Observation::features`, through `aro-sim`.

Run: ARO_SIM=<target>/release/aro-sim .venv/bin/python -m unittest training.test_features
"""

from __future__ import annotations

import copy
import json
import math
import random
import unittest

import numpy as np

from training.env import SimError, SimProcess
from training.features import SOURCE_TYPES, SPEC_PATH, FeatureError, FeatureSpec, features, spec
from training.features_check import TOLERANCE

FAULT_KINDS = [
    "crash", "crash_loop", "hang", "unhealthy", "log_anomaly", "checksum_mismatch",
    "resource_exhaustion", "dependency_failure",
]
ACTIONS = ["observe", "restart", "replace", "rollback", "move", "scale_out", "escalate"]


def edge_observations() -> list[dict]:
    """Observations at and past the ends of every range, written the way Python would."""
    cases: list[dict] = []
    for attempt, previous in enumerate([None, *ACTIONS], start=1):
        for fault in FAULT_KINDS:
            case = {"fault": fault, "attempt": attempt, "previous_action": previous}
            case["tried"] = [] if previous is None else [previous]
            cases.append(case)
    base = {"fault": "hang", "attempt": 1}
    changes = [
        {},
        {"suspicion": None},
        {"incident_age_secs": None},
        {"since_deploy_secs": None, "uptime_secs": None},
        {"suspicion": 1e39},
        {"suspicion": -1e39},
        {"suspicion": 16},
        {"suspicion": 8.0001},
        {"since_deploy_secs": 0.1, "uptime_secs": 1e-40},
        {"since_deploy_secs": 604800, "uptime_secs": 604801.5},
        {"incident_age_secs": 3599.9},
        {"recent_exits": 2**32 - 1, "attempt": 2**32 - 1},
        {"attempt": 0},
        {"healthy_replicas": 0, "desired_replicas": 0},
        {"healthy_replicas": 5, "desired_replicas": 0},
        {"healthy_replicas": 2**32 - 1, "desired_replicas": 2**32 - 1},
        {"healthy_replicas": 1, "desired_replicas": 16777217},
        {"exit_code": 0, "signal": 0},
        {"exit_code": -(2**31), "signal": 2**31 - 1},
        {"signal": 4}, {"signal": 7}, {"signal": 11}, {"signal": 9}, {"signal": -11},
        {"oom_killed": True, "previous_failed": True, "rollback_available": True},
        {"node_peer_faults": 4, "workload_peer_faults": 6},
        {"tried": ACTIONS},
        {"unknown_field": "ignored, as Rust ignores it"},
    ]
    for change in changes:
        case = dict(base)
        case.update(change)
        cases.append(case)
    return cases


class SimParityTest(unittest.TestCase):
    def setUp(self) -> None:
        self.sim = SimProcess()

    def tearDown(self) -> None:
        self.sim.close()

    def assert_same(self, observation: dict, rust: list[float]) -> None:
        python = features(observation)
        self.assertEqual(len(python), len(rust))
        for name, want, got in zip(spec().names, rust, python):
            self.assertLessEqual(
                abs(want - got), TOLERANCE, f"{name}: Rust {want}, Python {got} for {observation}"
            )

    def test_episode_observations_match(self) -> None:
        rng = random.Random(3)
        checked = 0
        for seed in range(150):
            response = self.sim.request({"op": "reset", "seed": seed})
            self.assert_same(response["observation"], response["features"])
            checked += 1
            done = False
            while not done:
                response = self.sim.request({"op": "step", "action": rng.randrange(len(ACTIONS))})
                self.assert_same(response["observation"], response["features"])
                checked += 1
                done = response["done"]
        self.assertGreater(checked, 300)

    def test_edge_observations_match(self) -> None:
        cases = edge_observations()
        response = self.sim.request({"op": "features", "observations": cases})
        self.assertEqual(len(response["features"]), len(cases))
        for observation, rust in zip(cases, response["features"]):
            self.assert_same(observation, rust)

    def test_invalid_observations_are_rejected_by_both(self) -> None:
        invalid = [
            ({"fault": "meltdown", "attempt": 1}, "'fault' is 'meltdown'"),
            ({"fault": "crash"}, "required field 'attempt'"),
            ({"fault": "crash", "attempt": 1, "recent_exits": -1}, "'recent_exits' is -1"),
            ({"fault": "crash", "attempt": 1, "recent_exits": 2**32},
             "'recent_exits' is 4294967296"),
            ({"fault": "crash", "attempt": 1, "recent_exits": None}, "'recent_exits' is None"),
            ({"fault": "crash", "attempt": 1, "healthy_replicas": "2"},
             "'healthy_replicas' is '2'"),
            ({"fault": "crash", "attempt": 1, "exit_code": 2**31}, "'exit_code' is 2147483648"),
            ({"fault": "crash", "attempt": 1, "oom_killed": 1}, "'oom_killed' is 1"),
            ({"fault": "crash", "attempt": 1, "suspicion": "high"}, "'suspicion' is 'high'"),
            ({"fault": "crash", "attempt": 1, "tried": ["reboot"]}, "'tried' is ['reboot']"),
            ({"fault": "crash", "attempt": 1, "previous_action": "reboot"}, "'reboot'"),
        ]
        for observation, message in invalid:
            with self.subTest(observation=observation):
                with self.assertRaises(FeatureError) as raised:
                    features(observation)
                self.assertIn(message, str(raised.exception))
                with self.assertRaises(SimError):
                    self.sim.request({"op": "features", "observations": [observation]})


class SemanticsTest(unittest.TestCase):
    def test_infinity_clamps_like_rust(self) -> None:
        # JSON carries no infinity to Rust, so the expected values follow f32 arithmetic.
        names = spec().names
        vector = features({"fault": "hang", "attempt": 1, "suspicion": math.inf,
                           "incident_age_secs": -math.inf, "uptime_secs": math.inf})
        self.assertEqual(vector[names.index("suspicion")], 1.0)
        self.assertEqual(vector[names.index("incident_age")], 0.0)
        self.assertEqual(vector[names.index("uptime")], 1.0)
        self.assertEqual(vector[names.index("uptime_known")], 1.0)

    def test_nan_counts_as_unknown(self) -> None:
        names = spec().names
        vector = features({"fault": "hang", "attempt": 1, "since_deploy_secs": math.nan})
        self.assertEqual(vector[names.index("since_deploy")], 0.0)
        self.assertEqual(vector[names.index("since_deploy_known")], 0.0)

    def test_values_are_float32(self) -> None:
        vector = spec().vector({"fault": "crash", "attempt": 3, "since_deploy_secs": 600})
        self.assertEqual(vector.dtype, np.float32)
        self.assertEqual(vector.shape, (len(spec()),))

    def test_matrix_stacks_vectors(self) -> None:
        observations = edge_observations()[:5]
        matrix = spec().matrix(observations)
        self.assertEqual(matrix.shape, (5, len(spec())))
        np.testing.assert_array_equal(matrix[2], spec().vector(observations[2]))


class SpecTest(unittest.TestCase):
    def setUp(self) -> None:
        self.raw = json.loads(SPEC_PATH.read_text())

    def test_names_follow_the_file(self) -> None:
        self.assertEqual(spec().names, [f["name"] for f in self.raw["features"]])
        self.assertEqual(list(spec().fault_kinds), FAULT_KINDS)
        self.assertEqual(list(spec().actions), ACTIONS)

    def test_every_source_in_the_file_has_a_type(self) -> None:
        used = set()
        for feature in self.raw["features"]:
            transform = feature["transform"]
            used.update(transform[key] for key in ("source", "numerator", "denominator")
                        if key in transform)
        self.assertEqual(used, set(SOURCE_TYPES))

    def test_other_schema_version_is_rejected(self) -> None:
        raw = copy.deepcopy(self.raw)
        raw["schema_version"] = 2
        with self.assertRaisesRegex(FeatureError, "schema_version 2, expected 1"):
            FeatureSpec(raw)

    def test_unknown_transform_is_rejected(self) -> None:
        raw = copy.deepcopy(self.raw)
        raw["features"][3]["transform"] = {"kind": "sigmoid", "source": "suspicion"}
        message = "'fault_unhealthy' has unknown transform kind 'sigmoid'"
        with self.assertRaisesRegex(FeatureError, message):
            FeatureSpec(raw)

    def test_unknown_source_is_rejected(self) -> None:
        raw = copy.deepcopy(self.raw)
        raw["features"][8]["transform"]["source"] = "load_average"
        message = "'recent_exits' reads unknown source 'load_average'"
        with self.assertRaisesRegex(FeatureError, message):
            FeatureSpec(raw)

    def test_zero_scale_is_rejected(self) -> None:
        raw = copy.deepcopy(self.raw)
        raw["features"][8]["transform"]["scale"] = 0.0
        with self.assertRaisesRegex(FeatureError, "'recent_exits' has invalid scale 0.0"):
            FeatureSpec(raw)

    def test_duplicate_name_is_rejected(self) -> None:
        raw = copy.deepcopy(self.raw)
        raw["features"][1]["name"] = "fault_crash"
        with self.assertRaisesRegex(FeatureError, "'fault_crash' is listed twice"):
            FeatureSpec(raw)


if __name__ == "__main__":
    unittest.main()
