"""Feature vector of an observation, interpreted from `models/features.json`.

The Rust crate `aro-policy` computes the same vector (`Observation::features`) for the
simulator and the brain. This module reads the same file, so the order, the transforms and
their constants come from one place. It mirrors the Rust arithmetic: every input is rounded
to float32 and every step is computed in float32, as in Rust.

An observation is a dict in the JSON form of the Rust `Observation` (`serde_json`). Missing
keys take the Rust defaults (0, false, none, an empty list). `null` or NaN in a time or an
optional code counts as unknown. Rust rejects `null` in a count or a flag, and so does this
module. The module needs numpy and nothing else, so it runs in the runtime
virtualenv, where numpy comes with onnxruntime.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

SPEC_PATH = Path(__file__).resolve().parent.parent / "models" / "features.json"

# The schema version this module interprets; a file with another version is rejected.
SCHEMA_VERSION = 1

U32_MAX = 2**32 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1

# Type of each numeric field of the Rust `Observation` that a transform can read, which
# decides its default when the key is missing and its valid values:
# "count" is a u32 (default 0), "seconds" an f32 where null means NaN (default 0),
# "optional_seconds" an Option<f32> and "optional_code" an Option<i32> (default none),
# "flag" a bool (default false).
SOURCE_TYPES: dict[str, str] = {
    "recent_exits": "count",
    "since_deploy_secs": "optional_seconds",
    "uptime_secs": "optional_seconds",
    "healthy_replicas": "count",
    "desired_replicas": "count",
    "attempt": "count",
    "previous_failed": "flag",
    "incident_age_secs": "seconds",
    "suspicion": "seconds",
    "exit_code": "optional_code",
    "signal": "optional_code",
    "oom_killed": "flag",
    "node_peer_faults": "count",
    "workload_peer_faults": "count",
    "rollback_available": "flag",
}

# Fields that the Rust `Observation` requires (no serde default).
REQUIRED_FIELDS = ("fault", "attempt")

ZERO = np.float32(0.0)
ONE = np.float32(1.0)


class FeatureError(ValueError):
    """An observation or a feature specification is invalid."""


def _bit(condition: bool) -> np.float32:
    return ONE if condition else ZERO


def _clamp(value: np.float32) -> np.float32:
    # f32::clamp(0, 1): NaN stays NaN, as in Rust.
    if value < ZERO:
        return ZERO
    if value > ONE:
        return ONE
    return value


@dataclass(frozen=True)
class Observation:
    """An observation after validation: the fault, the actions and every source as float32."""

    fault: str
    previous_action: str | None
    tried: frozenset[str]
    # Value of each source; None when unknown (missing, null or NaN).
    sources: Mapping[str, np.float32 | None]


Transform = Callable[[Observation], np.float32]


class FeatureSpec:
    """A parsed `models/features.json`: names, ranges and one transform per feature."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        version = spec.get("schema_version")
        if version != SCHEMA_VERSION:
            raise FeatureError(
                f"feature specification has schema_version {version!r}, expected {SCHEMA_VERSION}"
            )
        self.schema_version: int = version
        features = spec.get("features")
        if not isinstance(features, list) or not features:
            raise FeatureError("feature specification has no features list")
        self.names: list[str] = []
        self.ranges: list[tuple[float, float]] = []
        self._transforms: list[Transform] = []
        fault_kinds: list[str] = []
        actions: list[str] = []
        for feature in features:
            name = feature["name"]
            if name in self.names:
                raise FeatureError(f"feature {name!r} is listed twice")
            transform = feature["transform"]
            if transform["kind"] == "fault_is":
                fault_kinds.append(transform["value"])
            if transform["kind"] in ("previous_action_is", "tried"):
                if transform["value"] not in actions:
                    actions.append(transform["value"])
            self.names.append(name)
            low, high = feature["range"]
            self.ranges.append((float(low), float(high)))
            self._transforms.append(_build_transform(name, transform))
        # The one-hot features name every fault kind and every action, in enum order.
        self.fault_kinds: tuple[str, ...] = tuple(fault_kinds)
        self.actions: tuple[str, ...] = tuple(actions)

    @classmethod
    def load(cls, path: Path = SPEC_PATH) -> FeatureSpec:
        """Read and parse a feature specification file."""
        return cls(json.loads(Path(path).read_text()))

    def __len__(self) -> int:
        return len(self.names)

    def parse(self, observation: Mapping[str, Any]) -> Observation:
        """Validate an observation dict; raise FeatureError naming the field and the value."""
        if not isinstance(observation, Mapping):
            raise FeatureError(f"observation must be a JSON object, got {observation!r}")
        for field in REQUIRED_FIELDS:
            if field not in observation:
                raise FeatureError(f"observation is missing the required field {field!r}")
        fault = observation["fault"]
        if fault not in self.fault_kinds:
            raise FeatureError(
                f"observation field 'fault' is {fault!r}, expected one of {list(self.fault_kinds)}"
            )
        previous = observation.get("previous_action")
        if previous is not None and previous not in self.actions:
            raise FeatureError(
                f"observation field 'previous_action' is {previous!r}, "
                f"expected null or one of {list(self.actions)}"
            )
        tried = observation.get("tried", [])
        if not isinstance(tried, list) or any(action not in self.actions for action in tried):
            raise FeatureError(
                f"observation field 'tried' is {tried!r}, expected a list of {list(self.actions)}"
            )
        sources = {
            source: _read_source(source, kind, observation) for source, kind in SOURCE_TYPES.items()
        }
        return Observation(fault, previous, frozenset(tried), sources)

    def vector(self, observation: Mapping[str, Any]) -> np.ndarray:
        """Compute the float32 feature vector of an observation dict."""
        parsed = self.parse(observation)
        with np.errstate(over="ignore", invalid="ignore"):
            values = [transform(parsed) for transform in self._transforms]
        return np.array(values, dtype=np.float32)

    def matrix(self, observations: Iterable[Mapping[str, Any]]) -> np.ndarray:
        """Compute the feature vectors of several observations, one row each."""
        rows = [self.vector(observation) for observation in observations]
        return np.array(rows, dtype=np.float32).reshape(len(rows), len(self))


def _read_source(source: str, kind: str, observation: Mapping[str, Any]) -> np.float32 | None:
    """Read one source as Rust deserializes it: a missing key takes the serde default, and
    `null` is valid only where Rust accepts it (an option, or NaN in seconds)."""
    if source not in observation:
        return None if kind.startswith("optional") else ZERO
    value = observation[source]
    if kind == "flag":
        if not isinstance(value, bool):
            raise FeatureError(f"observation field {source!r} is {value!r}, expected true or false")
        return _bit(value)
    if kind == "count":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U32_MAX:
            raise FeatureError(
                f"observation field {source!r} is {value!r}, "
                f"expected an integer from 0 to {U32_MAX}"
            )
        return np.float32(value)
    if value is None:
        return None
    if kind == "optional_code":
        if isinstance(value, bool) or not isinstance(value, int) or not I32_MIN <= value <= I32_MAX:
            raise FeatureError(
                f"observation field {source!r} is {value!r}, expected null or an integer "
                f"from {I32_MIN} to {I32_MAX}"
            )
        return np.float32(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FeatureError(f"observation field {source!r} is {value!r}, expected a number or null")
    # A value past the float32 range becomes an infinity, as Rust's cast from f64 does.
    with np.errstate(over="ignore"):
        number = np.float32(value)
    return None if math.isnan(number) else number


def _source(name: str, transform: Mapping[str, Any], key: str = "source") -> str:
    source = transform.get(key)
    if source not in SOURCE_TYPES:
        raise FeatureError(
            f"feature {name!r} reads unknown {key} {source!r}, expected one of {list(SOURCE_TYPES)}"
        )
    return source


def _positive(name: str, transform: Mapping[str, Any], key: str) -> np.float32:
    value = np.float32(transform[key])
    if not (math.isfinite(value) and value > 0):
        raise FeatureError(
            f"feature {name!r} has invalid {key} {value}: must be finite and positive"
        )
    return value


def _build_transform(name: str, transform: Mapping[str, Any]) -> Transform:
    """Turn one transform of the file into a function; the kinds are those of the Rust enum."""
    kind = transform.get("kind")
    if kind == "fault_is":
        value = transform["value"]
        return lambda o: _bit(o.fault == value)
    if kind == "previous_action_is":
        value = transform["value"]
        return lambda o: _bit(o.previous_action == value)
    if kind == "tried":
        value = transform["value"]
        return lambda o: _bit(value in o.tried)
    if kind == "linear":
        source = _source(name, transform)
        offset = np.float32(transform["offset"])
        if not math.isfinite(offset):
            raise FeatureError(f"feature {name!r} has invalid offset {offset}: must be finite")
        scale = _positive(name, transform, "scale")

        def linear(o: Observation) -> np.float32:
            x = o.sources[source]
            return ZERO if x is None else _clamp((x - offset) / scale)

        return linear
    if kind == "log":
        source = _source(name, transform)
        maximum = _positive(name, transform, "max")
        denominator = np.log1p(maximum)

        def log(o: Observation) -> np.float32:
            x = o.sources[source]
            if x is None:
                return ZERO
            return np.log1p(min(max(x, ZERO), maximum)) / denominator

        return log
    if kind == "known":
        source = _source(name, transform)
        return lambda o: _bit(o.sources[source] is not None)
    if kind == "nonzero":
        source = _source(name, transform)
        return lambda o: _bit(o.sources[source] is not None and o.sources[source] != ZERO)
    if kind == "is_zero":
        source = _source(name, transform)
        return lambda o: _bit(o.sources[source] == ZERO)
    if kind == "ratio":
        numerator = _source(name, transform, "numerator")
        denominator = _source(name, transform, "denominator")

        def ratio(o: Observation) -> np.float32:
            n, d = o.sources[numerator], o.sources[denominator]
            if n is None or d is None or not d > ZERO:
                return ZERO
            return _clamp(n / d)

        return ratio
    if kind == "one_of":
        source = _source(name, transform)
        values = [np.float32(value) for value in transform["values"]]
        return lambda o: _bit(o.sources[source] is not None and o.sources[source] in values)
    raise FeatureError(f"feature {name!r} has unknown transform kind {kind!r}")


_SPEC: FeatureSpec | None = None


def spec() -> FeatureSpec:
    """Return the specification in `models/features.json`, parsed once."""
    global _SPEC
    if _SPEC is None:
        _SPEC = FeatureSpec.load()
    return _SPEC


def features(observation: Mapping[str, Any]) -> list[float]:
    """Compute the feature vector of an observation dict, as `Observation::features` does."""
    return [float(value) for value in spec().vector(observation)]
