"""Learn from recorded outcomes: advantage-weighted regression on an exported dataset.

The dataset is what `training.export_outcomes` writes: one row per command, with the
decision's feature vector, the action, the outcome and its times. Each decision that has a
feature vector (the policy's or the rules' first action of an incident; the ladder's
follow-ups carry none) becomes one example. Its return is minus the cost of the rest of its
incident, in the simulator's unit (seconds of downtime):

    cost of a command = action_secs + action cost of the action
                        (+ escalation_secs when it escalates: the time a person takes)

summed over the command and every later command of the same incident, up to the one that
recovered the target or escalated. Incidents that did not end that way are left out.

The fit is one step of advantage-weighted regression (Peng et al., 2019, "Advantage-Weighted
Regression", arXiv:1910.00177). A ridge regression of the return on the features is the
baseline. Each example's weight is exp(advantage / temperature), with the advantage and the
temperature in seconds of downtime. The actor minimises the weighted cross-entropy of the
logged actions. A very high temperature gives plain behaviour cloning.
The paper caps the weights; here they are divided by the largest one instead, which keeps
the ratios between examples exact.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from training.features import spec as feature_spec
from training.ppo import Adam, Mlp, Policy, clip_by_global_norm, load_weights, softmax


class DatasetError(ValueError):
    """A dataset row is invalid."""


@dataclass(frozen=True)
class Costs:
    """Cost parameters in seconds of downtime, as `aro-sim` reports them in its spec."""

    # Cost of each action in model output order; escalation's is the page.
    action_costs: tuple[float, ...]
    # Time a person takes to fix an escalated incident.
    escalation_secs: float

    @classmethod
    def from_spec(cls, sim_spec: dict[str, Any]) -> Costs:
        costs = sim_spec["costs"]
        return cls(tuple(float(c) for c in costs["action_costs"]), float(costs["escalation_secs"]))


@dataclass
class OfflineConfig:
    seed: int = 7
    epochs: int = 200
    minibatch: int = 256
    lr: float = 1e-3
    hidden: int = 64
    # Scale of the advantage in the weights exp(advantage / temperature), in seconds of
    # downtime: an action whose incident cost 30 s less than expected counts e times as much.
    temperature: float = 30.0
    # L2 penalty of the ridge regression baseline.
    ridge: float = 1.0
    max_grad_norm: float = 5.0


@dataclass
class Examples:
    """Decisions to learn from: features, the action taken and the return that followed."""

    features: np.ndarray
    actions: np.ndarray
    returns: np.ndarray
    command_ids: list[str]
    # Rows that were not used, by reason, for the training record.
    skipped: dict[str, int] = field(default_factory=dict)


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines dataset; raise DatasetError naming the line that is not JSON."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise DatasetError(f"{path} line {number} is not JSON: {error}") from None
    return rows


def _row_features(row: dict[str, Any], n_features: int) -> np.ndarray | None:
    """Return the row's feature vector, computed from its observation when it has no vector."""
    if row.get("features") is not None:
        vector = np.asarray(row["features"], dtype=np.float32)
    elif row.get("observation") is not None:
        vector = feature_spec().vector(row["observation"])
    else:
        return None
    if vector.shape != (n_features,):
        raise DatasetError(
            f"command {row.get('command_id')!r} has {vector.size} features, the feature "
            f"specification has {n_features}: it was recorded under another feature schema"
        )
    return vector


def examples(rows: Iterable[dict[str, Any]], costs: Costs) -> Examples:
    """Turn dataset rows into examples with returns from their incidents' outcomes."""
    actions = feature_spec().actions
    n_features = len(feature_spec())
    escalate = actions.index("escalate")
    incidents: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        incidents[row["incident_id"]].append(row)

    skipped: dict[str, int] = defaultdict(int)
    features, chosen, returns, ids = [], [], [], []
    for incident_id, commands in incidents.items():
        commands.sort(key=lambda row: row["attempt"])
        end = next((i for i, row in enumerate(commands)
                    if row["status"] == "recovered" or row["action"] == "escalate"), None)
        if end is None:
            skipped["incident not recovered or escalated"] += len(commands)
            continue
        skipped["after the end of the incident"] += len(commands) - end - 1
        cost_to_go = 0.0
        for row in reversed(commands[: end + 1]):
            index = row.get("action_index")
            if index is None or not 0 <= index < len(actions):
                raise DatasetError(
                    f"command {row['command_id']!r} has action {row['action']!r}, "
                    f"expected one of {list(actions)}"
                )
            cost_to_go += (row.get("action_secs") or 0.0) + costs.action_costs[index]
            if index == escalate:
                cost_to_go += costs.escalation_secs
            vector = _row_features(row, n_features)
            if vector is None:
                skipped["no feature vector (ladder)"] += 1
                continue
            features.append(vector)
            chosen.append(index)
            returns.append(-cost_to_go)
            ids.append(row["command_id"])
    return Examples(
        features=np.asarray(features, dtype=np.float32).reshape(len(features), n_features),
        actions=np.asarray(chosen, dtype=np.int64),
        returns=np.asarray(returns, dtype=np.float64),
        command_ids=ids,
        skipped={reason: count for reason, count in skipped.items() if count},
    )


def advantages(data: Examples, config: OfflineConfig) -> np.ndarray:
    """Return minus a ridge regression baseline of the return on the features, in seconds."""
    x = np.hstack([data.features.astype(np.float64), np.ones((len(data.returns), 1))])
    penalty = config.ridge * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0  # The intercept is not penalised.
    coefficients = np.linalg.solve(x.T @ x + penalty, x.T @ data.returns)
    return data.returns - x @ coefficients


def relative_weights(advantage: np.ndarray, temperature: float) -> np.ndarray:
    """exp(advantage / temperature), divided by its largest value so that none overflows.

    The loss divides by the sum of the weights, so the division changes nothing else.
    """
    scaled = advantage / temperature
    return np.exp(scaled - scaled.max())


def fit(data: Examples, config: OfflineConfig, n_actions: int,
        initial: Policy | None = None) -> tuple[Policy, dict[str, float]]:
    """Fit the actor to the weighted logged actions; start from `initial` when given."""
    if len(data.actions) == 0:
        raise DatasetError(
            "the dataset has no decision with a feature vector and an ended incident"
        )
    rng = np.random.default_rng(config.seed)
    n_features = data.features.shape[1]
    hidden = [config.hidden, config.hidden]
    if initial is not None:
        hidden = [w.shape[1] for w in initial.weights[:-1]]
    actor = Mlp([n_features, *hidden, n_actions], rng, out_gain=0.01)
    if initial is not None:
        load_weights(actor, initial)
    optimizer = Adam(actor.params(), config.lr)
    advantage = advantages(data, config)
    x = data.features.astype(np.float64)
    n = len(data.actions)
    for _ in range(config.epochs):
        order = rng.permutation(n)
        for start in range(0, n, config.minibatch):
            idx = order[start : start + config.minibatch]
            logits, activations = actor.forward(x[idx])
            probs = softmax(logits)
            w = relative_weights(advantage[idx], config.temperature)
            one_hot = np.zeros_like(probs)
            one_hot[np.arange(len(idx)), data.actions[idx]] = 1.0
            # d(-sum w log p(a)) / d logits = w (p - one_hot); normalised by the batch's weight.
            grad = w[:, None] * (probs - one_hot) / w.sum()
            grads = clip_by_global_norm(actor.backward(activations, grad), config.max_grad_norm)
            optimizer.step(grads)
    probs = softmax(actor.forward(x)[0])
    weights = relative_weights(advantage, config.temperature)
    log_likelihood = np.log(probs[np.arange(n), data.actions] + 1e-12)
    loss = float(-(weights * log_likelihood).sum() / weights.sum())
    policy = Policy(
        weights=[w.copy() for w in actor.weights],
        biases=[b.copy() for b in actor.biases],
        seed=config.seed,
    )
    stats = {
        "examples": n,
        "weighted_cross_entropy": loss,
        # Examples that carry the fit: n when all weights are equal, 1 when one dominates.
        "effective_examples": float(weights.sum() ** 2 / (weights**2).sum()),
        "agreement": float((probs.argmax(axis=1) == data.actions).mean()),
    }
    return policy, stats
