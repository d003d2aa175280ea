"""Small behaviour-cloned policies with a value head, trained on any subset of a dataset's steps.

Attribution trains many of them (one on all the data, one per behaviour, one per behaviour
left out), so one function trains them all: a fixed number of updates on minibatches drawn
from a set of step indices. Observations stay in their stored dtype and are cast per batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lagless.errors import LaglessError
from lagless.explain.episodes import EpisodeData

GAMMA = 0.99
NORM_SAMPLE = 20_000  # steps used to estimate the observation mean and std


def discounted_returns(rewards: np.ndarray, bounds: np.ndarray, gamma: float = GAMMA) -> np.ndarray:
    """(N,) float32 discounted return-to-go of every step, computed within its own episode."""
    from scipy.signal import lfilter

    out = np.zeros(len(rewards), dtype=np.float64)
    r = np.asarray(rewards, dtype=np.float64)
    for start, end in bounds:
        out[start:end] = lfilter([1.0], [1.0, -gamma], r[start:end][::-1])[::-1]
    return out.astype(np.float32)


def flat_float(observations: np.ndarray, steps: np.ndarray) -> torch.Tensor:
    """The observations of ``steps`` as a float32 ``(n, D)`` tensor (cast here, per batch)."""
    x = np.asarray(observations[steps], dtype=np.float32)
    return torch.from_numpy(x.reshape(len(steps), -1))


@dataclass
class CloningData:
    """What every cloned policy learns from: the dataset, its action targets and value targets."""

    observations: np.ndarray  # (N, *obs_shape), stored dtype
    actions: np.ndarray  # (N,) int or (N, A) float
    returns: np.ndarray  # (N,) float32 discounted returns-to-go
    discrete: bool
    out_dim: int  # number of discrete actions, or the action size
    obs_mean: np.ndarray  # (D,) float32
    obs_std: np.ndarray  # (D,) float32
    return_scale: float

    @classmethod
    def from_episodes(cls, data: EpisodeData, *, num_actions: int | None = None, seed: int = 0,
                      gamma: float = GAMMA) -> CloningData:
        """Targets and normalisation statistics for ``data``; ``num_actions`` may exceed the data's."""
        if data.num_steps == 0:
            raise LaglessError("the dataset has no steps: record or load a non-empty dataset")
        returns = discounted_returns(data.rewards, data.episode_bounds(), gamma)
        rng = np.random.default_rng(seed)
        n = data.num_steps
        sample = np.sort(rng.choice(n, size=min(n, NORM_SAMPLE), replace=False))
        x = flat_float(data.observations, sample).numpy()
        std = x.std(axis=0)
        out_dim = data.num_actions if num_actions is None else max(int(num_actions), data.num_actions)
        return cls(
            observations=data.observations, actions=data.actions, returns=returns,
            discrete=data.discrete_actions, out_dim=int(out_dim),
            obs_mean=x.mean(axis=0).astype(np.float32),
            obs_std=np.where(std > 1e-6, std, 1.0).astype(np.float32),
            return_scale=float(max(np.abs(returns).std(), 1e-3)),
        )


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one CPU thread: matrices this small lose more to thread hand-offs than they
    gain (10x slower with two threads on a busy two-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, out_dim))


class BCPolicy(nn.Module):
    """State -> action logits (discrete) or Gaussian mean (continuous), plus a separate value MLP.

    The value network is separate so that fitting returns never disturbs the cloned actions.
    Inputs are raw flat observations; the module normalises them with the data's statistics.
    """

    def __init__(self, obs_mean: np.ndarray, obs_std: np.ndarray, out_dim: int, *, discrete: bool,
                 hidden: int = 64, return_scale: float = 1.0):
        super().__init__()
        dim = int(obs_mean.shape[0])
        self.discrete = discrete
        self.return_scale = float(return_scale)
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean, dtype=torch.float32))
        self.register_buffer("obs_std", torch.as_tensor(obs_std, dtype=torch.float32))
        self.policy = _mlp(dim, hidden, out_dim)
        self.value = _mlp(dim, hidden, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits or means ``(B, out)``, values ``(B,)`` in units of ``return_scale``)."""
        z = (x - self.obs_mean) / self.obs_std
        return self.policy(z), self.value(z).squeeze(-1)


def train_policy(source: CloningData, steps: np.ndarray, *, updates: int, batch_size: int = 256,
                 hidden: int = 64, lr: float = 1e-3, seed: int = 0, bar=None) -> BCPolicy:
    """A policy cloned from ``steps`` with ``updates`` Adam steps; the same seed gives the same weights.

    Every policy starts from the same initial weights for a given seed, so two policies differ
    only through their data, which keeps counterfactual differences from being training noise.
    """
    steps = np.asarray(steps, dtype=np.int64)
    if len(steps) == 0:
        raise LaglessError("cannot clone a policy from zero steps: a behaviour has no steps")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        policy = BCPolicy(source.obs_mean, source.obs_std, source.out_dim, discrete=source.discrete,
                          hidden=hidden, return_scale=source.return_scale)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    for _ in range(updates):
        batch = np.sort(steps[rng.integers(0, len(steps), size=batch_size)])  # O(batch), not O(N)
        out, value = policy(flat_float(source.observations, batch))
        if source.discrete:
            loss = F.cross_entropy(out, torch.as_tensor(source.actions[batch], dtype=torch.long))
        else:
            target = torch.as_tensor(np.asarray(source.actions[batch], dtype=np.float32))
            loss = F.mse_loss(out, target.reshape(out.shape))
        target_value = torch.as_tensor(source.returns[batch]) / policy.return_scale
        loss = loss + F.mse_loss(value, target_value)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if bar is not None:
            bar.update(1)
    policy.eval()
    return policy


@torch.inference_mode()
def predict(policy: BCPolicy, observations: np.ndarray, steps: np.ndarray,
            batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(action probabilities or means ``(n, out)``, values ``(n,)``) of ``policy`` at ``steps``."""
    dists, values = [], []
    for i in range(0, len(steps), batch_size):
        out, value = policy(flat_float(observations, steps[i:i + batch_size]))
        dists.append(torch.softmax(out, -1) if policy.discrete else out)
        values.append(value * policy.return_scale)
    if not dists:
        return np.zeros((0, policy.policy[-1].out_features), np.float32), np.zeros(0, np.float32)
    return torch.cat(dists).numpy(), torch.cat(values).numpy()


@dataclass
class ClonedOutputs:
    """At the query states: the full-data policy, each behaviour's and each leave-one-out policy."""

    full: np.ndarray  # (n, out) probabilities or means
    full_values: np.ndarray  # (n,)
    own: list[np.ndarray | None]  # per behaviour; None if it has no steps
    minus: list[np.ndarray | None]  # per behaviour left out; None if nothing else remains
    minus_values: list[np.ndarray | None]


def clone_policies(source: CloningData, members: list[np.ndarray], queries: np.ndarray, *, updates: int,
                   batch_size: int = 256, hidden: int = 64, seed: int = 0,
                   progress: bool = True) -> ClonedOutputs:
    """Train the 1 + 2K policies attribution needs, one at a time, keeping only their outputs."""
    from tqdm.auto import tqdm

    everything = np.arange(len(source.actions))
    rests = [np.setdiff1d(everything, m, assume_unique=True) for m in members]
    count = 1 + sum(len(m) > 0 for m in members) + sum(len(r) > 0 for r in rests)
    train = {"updates": updates, "batch_size": batch_size, "hidden": hidden, "seed": seed}
    obs = source.observations
    with single_thread(), tqdm(total=updates * count, desc="cloning policies", unit="update",
                               disable=not progress) as bar:
        full, full_values = predict(train_policy(source, everything, bar=bar, **train), obs, queries)
        own = [predict(train_policy(source, m, bar=bar, **train), obs, queries)[0] if len(m) else None
               for m in members]
        minus: list[np.ndarray | None] = []
        minus_values: list[np.ndarray | None] = []
        for rest in rests:
            dist, value = predict(train_policy(source, rest, bar=bar, **train), obs, queries) if len(rest) \
                else (None, None)
            minus.append(dist)
            minus_values.append(value)
    return ClonedOutputs(full, full_values, own, minus, minus_values)
