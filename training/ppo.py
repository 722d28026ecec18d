"""Proximal Policy Optimization (Schulman et al., 2017, arXiv:1707.06347) in numpy.

A compact implementation for a discrete action space: a tanh MLP policy and a separate tanh
MLP value function, clipped surrogate objective, generalized advantage estimation, Adam, and
backpropagation written out by hand. See training/README.md for why it is not a library.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


class Mlp:
    """Fully connected network with tanh hidden layers and a linear output layer."""

    def __init__(self, sizes: list[int], rng: np.random.Generator, out_gain: float) -> None:
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            gain = out_gain if index == len(sizes) - 2 else np.sqrt(2.0)
            self.weights.append(orthogonal((fan_in, fan_out), gain, rng))
            self.biases.append(np.zeros(fan_out))

    def params(self) -> list[np.ndarray]:
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Return the output and the activations that backward needs."""
        activations = [x]
        for index, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = x @ w + b
            if index < len(self.weights) - 1:
                x = np.tanh(x)
            activations.append(x)
        return x, activations

    def backward(self, activations: list[np.ndarray], grad_out: np.ndarray) -> list[np.ndarray]:
        """Return gradients in params() order, given the loss gradient at the output."""
        grads: list[np.ndarray] = []
        grad = grad_out
        for index in reversed(range(len(self.weights))):
            if index < len(self.weights) - 1:
                grad = grad * (1.0 - activations[index + 1] ** 2)
            grads.append(grad.sum(axis=0))
            grads.append(activations[index].T @ grad)
            grad = grad @ self.weights[index].T
        # Collected last layer first as (bias, weight); reversed, they follow params() order.
        grads.reverse()
        return grads


def orthogonal(shape: tuple[int, int], gain: float, rng: np.random.Generator) -> np.ndarray:
    """Orthogonal initialisation, as common PPO implementations use."""
    a = rng.standard_normal(shape)
    q, r = np.linalg.qr(a if shape[0] >= shape[1] else a.T)
    q = q * np.sign(np.diag(r))
    return gain * (q if shape[0] >= shape[1] else q.T)


class Adam:
    def __init__(self, params: list[np.ndarray], lr: float) -> None:
        self.params = params
        self.lr = lr
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: list[np.ndarray], beta1: float = 0.9, beta2: float = 0.999) -> None:
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            m_hat = m / (1 - beta1**self.t)
            v_hat = v / (1 - beta2**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


def clip_by_global_norm(grads: list[np.ndarray], max_norm: float) -> list[np.ndarray]:
    norm = np.sqrt(sum(float((g * g).sum()) for g in grads))
    if norm > max_norm:
        return [g * (max_norm / norm) for g in grads]
    return grads


class RunningStats:
    """Running mean and variance (Welford's algorithm)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)

    def std(self) -> float:
        if self.count < 2:
            return 1.0
        return max(float(np.sqrt(self.m2 / (self.count - 1))), 1e-6)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class PpoConfig:
    seed: int = 7
    total_steps: int = 1_000_000
    rollout_steps: int = 4_096
    epochs: int = 8
    minibatch: int = 512
    hidden: int = 64
    lr: float = 1e-3
    gamma: float = 1.0
    gae_lambda: float = 0.95
    clip: float = 0.2
    entropy_start: float = 0.01
    entropy_end: float = 0.0
    value_coef: float = 0.5
    max_grad_norm: float = 5.0
    # Divide rewards by the running standard deviation of episode returns, so the value
    # function learns targets of unit scale whatever the cost units.
    normalize_rewards: bool = True


@dataclass
class Policy:
    """Trained actor weights: everything export needs."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    seed: int
    history: list[dict[str, float]] = field(default_factory=list)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        x = features.astype(np.float64)
        for index, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = x @ w + b
            if index < len(self.weights) - 1:
                x = np.tanh(x)
        return softmax(x)

    def params(self) -> list[np.ndarray]:
        """Weights and biases in the order of Mlp.params()."""
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    def digest(self) -> str:
        """Short hash of the float32 weights, as stored in the exported model."""
        h = hashlib.sha256()
        for array in [*self.weights, *self.biases]:
            h.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        return h.hexdigest()[:12]


def load_weights(mlp: Mlp, policy: Policy) -> None:
    """Copy the policy's weights into `mlp` in place; raise ValueError when the shapes differ."""
    shapes = [w.shape for w in mlp.weights]
    given = [w.shape for w in policy.weights]
    if shapes != given:
        raise ValueError(f"initial policy has layers {given}, the network has {shapes}")
    for target, source in zip(mlp.params(), policy.params()):
        target[...] = source


StepFn = Callable[[int], tuple[np.ndarray, float, bool, dict]]


def train(
    reset: Callable[[], np.ndarray],
    step: StepFn,
    n_features: int,
    n_actions: int,
    config: PpoConfig,
    reward_scale: float = 1.0,
    log: Callable[[str], None] = print,
    initial: Policy | None = None,
) -> Policy:
    """Train a policy on one environment given as reset and step callables.

    Progress lines report the mean cost of recent episodes, -reward * reward_scale. With
    `initial`, the actor starts from its weights (a warm start) and the critic from scratch.
    """
    rng = np.random.default_rng(config.seed)
    actor = Mlp([n_features, config.hidden, config.hidden, n_actions], rng, out_gain=0.01)
    critic = Mlp([n_features, config.hidden, config.hidden, 1], rng, out_gain=1.0)
    if initial is not None:
        # Set after the random initialisation, so the generator's stream is the same as
        # without a warm start.
        load_weights(actor, initial)
    actor_opt = Adam(actor.params(), config.lr)
    critic_opt = Adam(critic.params(), config.lr)

    n = config.rollout_steps
    obs_buf = np.zeros((n, n_features))
    act_buf = np.zeros(n, dtype=np.int64)
    logp_buf = np.zeros(n)
    rew_buf = np.zeros(n)
    done_buf = np.zeros(n)
    val_buf = np.zeros(n)

    obs = reset()
    episode_cost = 0.0
    episode_return = 0.0
    return_stats = RunningStats()
    finished_costs: list[float] = []
    history: list[dict[str, float]] = []
    updates = max(1, config.total_steps // n)
    started = time.monotonic()

    for update in range(updates):
        progress = update / updates
        lr = config.lr * (1.0 - progress)
        actor_opt.lr = critic_opt.lr = lr
        entropy_coef = config.entropy_start + (config.entropy_end - config.entropy_start) * progress

        for t in range(n):
            logits, _ = actor.forward(obs[None, :])
            probs = softmax(logits)[0]
            action = int(rng.choice(n_actions, p=probs))
            value, _ = critic.forward(obs[None, :])
            next_obs, reward, done, _ = step(action)
            obs_buf[t] = obs
            act_buf[t] = action
            logp_buf[t] = np.log(probs[action] + 1e-12)
            rew_buf[t] = reward
            done_buf[t] = float(done)
            val_buf[t] = value[0, 0]
            episode_cost -= reward * reward_scale
            episode_return += reward
            if done:
                finished_costs.append(episode_cost)
                return_stats.add(episode_return)
                episode_cost = 0.0
                episode_return = 0.0
                obs = reset()
            else:
                obs = next_obs

        last_value = critic.forward(obs[None, :])[0][0, 0]
        scale = return_stats.std() if config.normalize_rewards else 1.0
        advantages = np.zeros(n)
        gae = 0.0
        for t in reversed(range(n)):
            next_value = last_value if t == n - 1 else val_buf[t + 1]
            nonterminal = 1.0 - done_buf[t]
            delta = rew_buf[t] / scale + config.gamma * next_value * nonterminal - val_buf[t]
            gae = delta + config.gamma * config.gae_lambda * nonterminal * gae
            advantages[t] = gae
        returns = advantages + val_buf

        stats = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "clip_fraction": 0.0}
        batches = 0
        for _ in range(config.epochs):
            order = rng.permutation(n)
            for start in range(0, n, config.minibatch):
                idx = order[start : start + config.minibatch]
                stats_batch = _update(
                    actor, critic, actor_opt, critic_opt, config, entropy_coef,
                    obs_buf[idx], act_buf[idx], logp_buf[idx], advantages[idx], returns[idx],
                )
                for key, value in stats_batch.items():
                    stats[key] += value
                batches += 1

        recent = finished_costs[-500:]
        row = {
            "update": update + 1,
            "steps": (update + 1) * n,
            "episodes": len(finished_costs),
            "mean_cost": float(np.mean(recent)) if recent else float("nan"),
            **{key: value / batches for key, value in stats.items()},
            "seconds": time.monotonic() - started,
        }
        history.append(row)
        log(
            f"update {row['update']:3d}/{updates}  steps {row['steps']:7d}  "
            f"episodes {row['episodes']:6d}  cost(last 500) {row['mean_cost']:7.1f}  "
            f"entropy {row['entropy']:.3f}  clip {row['clip_fraction']:.3f}  "
            f"{row['seconds']:6.1f} s"
        )

    return Policy(
        weights=[w.copy() for w in actor.weights],
        biases=[b.copy() for b in actor.biases],
        seed=config.seed,
        history=history,
    )


def _update(
    actor: Mlp,
    critic: Mlp,
    actor_opt: Adam,
    critic_opt: Adam,
    config: PpoConfig,
    entropy_coef: float,
    obs: np.ndarray,
    actions: np.ndarray,
    old_logp: np.ndarray,
    advantages: np.ndarray,
    returns: np.ndarray,
) -> dict[str, float]:
    batch = len(actions)
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

    logits, actor_acts = actor.forward(obs)
    probs = softmax(logits)
    logp_all = np.log(probs + 1e-12)
    logp = logp_all[np.arange(batch), actions]
    ratio = np.exp(logp - old_logp)
    clipped = np.clip(ratio, 1 - config.clip, 1 + config.clip)
    # The surrogate takes the unclipped term where it is the smaller one; only there does the
    # gradient flow.
    use_unclipped = ratio * adv <= clipped * adv
    policy_loss = -np.minimum(ratio * adv, clipped * adv).mean()
    entropy = -(probs * logp_all).sum(axis=1)

    one_hot = np.zeros_like(probs)
    one_hot[np.arange(batch), actions] = 1.0
    # d(-ratio * adv)/d logits = -ratio * adv * (one_hot - probs), where the unclipped term is used.
    coef = np.where(use_unclipped, -ratio * adv, 0.0)[:, None]
    grad_logits = coef * (one_hot - probs)
    # d(-entropy)/d logits = probs * (logp + entropy).
    grad_logits += entropy_coef * probs * (logp_all + entropy[:, None])
    grad_logits /= batch
    actor_grads = clip_by_global_norm(actor.backward(actor_acts, grad_logits), config.max_grad_norm)
    actor_opt.step(actor_grads)

    values, critic_acts = critic.forward(obs)
    error = values[:, 0] - returns
    value_loss = 0.5 * (error**2).mean()
    grad_values = (config.value_coef * error / batch)[:, None]
    critic_grads = clip_by_global_norm(
        critic.backward(critic_acts, grad_values), config.max_grad_norm
    )
    critic_opt.step(critic_grads)

    return {
        "policy_loss": float(policy_loss),
        "value_loss": float(value_loss),
        "entropy": float(entropy.mean()),
        "clip_fraction": float((np.abs(ratio - 1) > config.clip).mean()),
    }
