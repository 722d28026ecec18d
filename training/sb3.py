"""PPO from Stable-Baselines3 on the `aro-sim` environment, on the CPU.

The policy is SB3's MlpPolicy with the network of the numpy PPO in `training.ppo`: a 41-64-64-7
tanh actor and a separate 41-64-64-1 critic, orthogonal initialisation. Rewards are divided by
the running standard deviation of episode returns (VecNormalize with gamma 1, observations left
as they are, so the exported network reads the features unchanged). The learning rate falls
linearly to zero and the entropy coefficient from `entropy_start` to `entropy_end`.

Every source of randomness is seeded: Python, numpy and torch through SB3's set_random_seed,
each environment's generator of episode seeds (seed + index), and torch runs deterministic
algorithms on one thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, Callable

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from training.env import AroSimEnv
from training.ppo import Policy, PpoConfig

# Progress lines average the cost of this many recent episodes, as the numpy PPO does.
RECENT_EPISODES = 500


@dataclass
class Sb3Config(PpoConfig):
    """PPO settings of training.ppo, with its rollout of 4,096 transitions split over n_envs."""

    n_envs: int = 8
    rollout_steps: int = 512


def library_versions() -> dict[str, str]:
    return {"stable-baselines3": version("stable-baselines3"), "torch": version("torch")}


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, and make torch deterministic on one thread."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    set_random_seed(seed)


def make_env(config: Sb3Config) -> VecNormalize:
    """Return n_envs simulator environments (one `aro-sim` process each) with reward scaling."""
    venv = DummyVecEnv([AroSimEnv for _ in range(config.n_envs)])
    return VecNormalize(
        venv, norm_obs=False, norm_reward=config.normalize_rewards, gamma=config.gamma
    )


def build(config: Sb3Config, env: VecNormalize) -> PPO:
    """Return the untrained PPO model on `env`, seeded."""
    seed_everything(config.seed)
    initial_lr = config.lr
    return PPO(
        "MlpPolicy",
        env,
        learning_rate=lambda remaining: initial_lr * remaining,
        n_steps=config.rollout_steps,
        batch_size=config.minibatch,
        n_epochs=config.epochs,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip,
        ent_coef=config.entropy_start,
        vf_coef=config.value_coef,
        max_grad_norm=config.max_grad_norm,
        policy_kwargs={
            "net_arch": {
                "pi": [config.hidden, config.hidden],
                "vf": [config.hidden, config.hidden],
            },
            "activation_fn": torch.nn.Tanh,
            "ortho_init": True,
        },
        seed=config.seed,
        device="cpu",
        verbose=0,
    )


def actor_layers(model: PPO) -> list[torch.nn.Linear]:
    """Return the actor's linear layers: the policy MLP's hidden layers, then the head."""
    hidden = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    return [*hidden, model.policy.action_net]


def to_policy(model: PPO, seed: int) -> Policy:
    """Return the actor's weights as a numpy Policy (weights [in, out]), which export writes."""
    layers = actor_layers(model)
    return Policy(
        weights=[layer.weight.detach().numpy().T.astype(np.float64) for layer in layers],
        biases=[layer.bias.detach().numpy().astype(np.float64) for layer in layers],
        seed=seed,
    )


def load_policy(model: PPO, policy: Policy) -> None:
    """Copy the weights of `policy` into the actor; raise ValueError when the shapes differ."""
    layers = actor_layers(model)
    shapes = [tuple(layer.weight.shape[::-1]) for layer in layers]
    given = [w.shape for w in policy.weights]
    if shapes != given:
        raise ValueError(f"initial policy has layers {given}, the network has {shapes}")
    with torch.no_grad():
        for layer, w, b in zip(layers, policy.weights, policy.biases):
            layer.weight.copy_(torch.as_tensor(w.T, dtype=torch.float32))
            layer.bias.copy_(torch.as_tensor(b, dtype=torch.float32))


def probabilities(model: PPO, features: np.ndarray) -> np.ndarray:
    """Return the action probabilities of the torch network, float32 [batch, n_actions]."""
    with torch.no_grad():
        obs = torch.as_tensor(features, dtype=torch.float32)
        return model.policy.get_distribution(obs).distribution.probs.numpy()


class Progress(BaseCallback):
    """Progress printer: one line per update, and the rows for the training record."""

    def __init__(self, config: Sb3Config, reward_scale: float, log: Callable[[str], None]) -> None:
        super().__init__()
        self.config = config
        self.reward_scale = reward_scale
        self.log = log
        self.history: list[dict[str, Any]] = []
        # SB3 collects whole rollouts until it has at least total_steps transitions.
        self.updates = max(1, -(-config.total_steps // (config.n_envs * config.rollout_steps)))
        self.costs: list[float] = []
        self.running = np.zeros(config.n_envs)
        self.pending: dict[str, Any] | None = None
        self.started = time.monotonic()

    def _on_step(self) -> bool:
        original = self.training_env.get_original_reward()
        self.running -= original * self.reward_scale
        for index in np.flatnonzero(self.locals["dones"]):
            self.costs.append(float(self.running[index]))
            self.running[index] = 0.0
        return True

    def _on_rollout_end(self) -> None:
        # Set the entropy coefficient of the update that follows this rollout.
        progress = len(self.history) / self.updates
        config = self.config
        self.model.ent_coef = config.entropy_start + (
            config.entropy_end - config.entropy_start
        ) * progress
        recent = self.costs[-RECENT_EPISODES:]
        self.pending = {
            "update": len(self.history) + 1,
            "steps": self.num_timesteps,
            "episodes": len(self.costs),
            "mean_cost": float(np.mean(recent)) if recent else float("nan"),
        }

    def _on_rollout_start(self) -> None:
        self._finish_update()

    def _on_training_end(self) -> None:
        self._finish_update()

    def _finish_update(self) -> None:
        """Complete the pending row with the losses of the update that ran after its rollout."""
        if self.pending is None:
            return
        values = self.model.logger.name_to_value
        row = {
            **self.pending,
            "policy_loss": float(values["train/policy_gradient_loss"]),
            "value_loss": float(values["train/value_loss"]),
            "entropy": -float(values["train/entropy_loss"]),
            "clip_fraction": float(values["train/clip_fraction"]),
            "seconds": time.monotonic() - self.started,
        }
        self.pending = None
        self.history.append(row)
        self.log(
            f"update {row['update']:3d}/{self.updates}  steps {row['steps']:7d}  "
            f"episodes {row['episodes']:6d}  cost(last {RECENT_EPISODES}) "
            f"{row['mean_cost']:7.1f}  entropy {row['entropy']:.3f}  "
            f"clip {row['clip_fraction']:.3f}  {row['seconds']:6.1f} s"
        )


def train(
    config: Sb3Config,
    reward_scale: float,
    log: Callable[[str], None] = print,
    initial: Policy | None = None,
) -> tuple[PPO, list[dict[str, Any]]]:
    """Train PPO for config.total_steps steps; return the model and one row per update.

    With `initial`, the actor starts from its weights (a warm start) and the critic from its
    seeded initialisation.
    """
    env = make_env(config)
    try:
        model = build(config, env)
        if initial is not None:
            load_policy(model, initial)
        progress = Progress(config, reward_scale, log)
        model.learn(total_timesteps=config.total_steps, callback=progress, log_interval=None)
    finally:
        env.close()
    return model, progress.history
