"""Behaviours as policies: relabel the code graph's behaviours by how each one acts.

The code graph labels a step by its code, and a code can mix behaviours (a step that looks
the same under two of them). Here a behaviour is also a policy: one small network gives
p(a_t | s_t, behaviour), and labels follow the likelihood (hard EM): fit the network to the
labelled steps, then relabel each episode by Viterbi over
log p(a_t | s_t, b) + w log p(code_t | b) with a cost per switch; repeat. The code term
(weight ``code_weight``) anchors the labels where the action follows from the state alike
under every behaviour: there the policy likelihood has no preference and labels would drift.
The number of behaviours stays the graph's (a behaviour can only empty out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lagless.explain.episodes import EpisodeData
from lagless.explain.vqvae import gaussian_nll_terms
from lagless.explain.vqvae_train import action_stats, observation_stats

CODE_PRIOR = 0.5  # pseudo-count of every (code, behaviour) pair


@dataclass
class RefineSettings:
    switch_cost: float = 8.0  # nats per behaviour switch within an episode
    code_weight: float = 0.3  # weight of log p(code | behaviour) in the labelling
    rounds: int = 4  # EM rounds
    updates: int = 150  # network updates per EM round
    hidden: int = 128
    batch_size: int = 256
    seed: int = 0


class Steps:
    """Normalised state features and actions of the data's steps, built batch by batch (a
    million MinAtar steps as float32 features would take 4 GB)."""

    def __init__(self, data: EpisodeData):
        self.data = data
        self.episode = data.episode_ids()
        self.obs_dim = int(np.prod(data.observations.shape[1:]))
        # the VQ-VAE's normalisation: one std shared by a grid's cells, so a rarely lit cell
        # does not become a feature of size 100
        self.obs_mean, self.obs_std = observation_stats(data, np.random.default_rng(0))
        self.discrete = data.discrete_actions
        if not self.discrete:
            self.act_mean, self.act_std = action_stats(data)
        self.num_actions = data.num_actions

    def __len__(self) -> int:
        return self.data.num_steps

    def _raw_obs(self, rows: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(self.data.observations[rows], dtype=np.float32).reshape(len(rows), -1))

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, actions) of steps ``rows``."""
        obs = (self._raw_obs(rows) - self.obs_mean) / self.obs_std
        acts = torch.as_tensor(np.asarray(self.data.actions)[rows])
        if self.discrete:
            return obs, acts.long()
        return obs, (acts.float().reshape(len(rows), -1) - self.act_mean) / self.act_std


class BehaviourPolicies(nn.Module):
    """p(a | s, b): one network with the behaviour one-hot as an input."""

    def __init__(self, obs_dim: int, num_actions: int, discrete: bool, behaviours: int, hidden: int):
        super().__init__()
        self.discrete, self.behaviours = discrete, behaviours
        out = num_actions if discrete else 2 * num_actions
        self.net = nn.Sequential(nn.Linear(obs_dim + behaviours, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, out))

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor, behaviour: torch.Tensor) -> torch.Tensor:
        out = self.net(torch.cat([obs, F.one_hot(behaviour, self.behaviours).float()], -1))
        if self.discrete:
            return -F.cross_entropy(out, actions, reduction="none")
        return -gaussian_nll_terms(out, actions).sum(-1)


def viterbi(scores: np.ndarray, episode_ids: np.ndarray, switch_cost: float) -> np.ndarray:
    """Labels maximising the summed ``scores`` (N, K) minus ``switch_cost`` per switch, every
    episode on its own (all episodes advance together, one time step at a time)."""
    n, k = scores.shape
    starts = np.flatnonzero(np.r_[True, episode_ids[1:] != episode_ids[:-1]])
    lengths = np.diff(np.r_[starts, n])
    best = scores[starts].copy()  # (E, K) best total ending in each label
    back = np.zeros((n, k), dtype=np.int64)
    for t in range(1, int(lengths.max())):
        live = np.flatnonzero(lengths > t)
        rows = starts[live] + t
        prev = best[live]
        top = prev.argmax(1)
        switch = prev[np.arange(len(live)), top] - switch_cost
        stay = prev >= switch[:, None]
        back[rows] = np.where(stay, np.arange(k)[None], top[:, None])
        best[live] = np.where(stay, prev, switch[:, None]) + scores[rows]
    labels = np.empty(n, dtype=np.int64)
    ends = starts + lengths - 1
    labels[ends] = best.argmax(1)
    for t in range(int(lengths.max()) - 1, 0, -1):
        live = np.flatnonzero(lengths > t)
        rows = starts[live] + t
        labels[rows - 1] = back[rows, labels[rows]]
    return labels


def _compact(labels: np.ndarray) -> tuple[np.ndarray, int]:
    used, inverse = np.unique(labels, return_inverse=True)
    return inverse.astype(np.int64), len(used)


def refine_behaviours(data: EpisodeData, codes: np.ndarray, labels: np.ndarray,
                      settings: RefineSettings | None = None) -> tuple[np.ndarray, dict]:
    """``labels`` (one behaviour per step, in the data's step order) relabelled by hard EM as
    the module doc says, and a summary of what changed."""
    s = settings or RefineSettings()
    labels, k = _compact(np.asarray(labels))
    steps = Steps(data)
    rng = np.random.default_rng(s.seed)
    torch.manual_seed(s.seed)
    start = labels
    every = np.arange(len(steps))
    for _ in range(s.rounds):
        model = fit_policies(steps, every, labels, k, s, rng)
        scores = policy_scores(steps, model) + s.code_weight * _code_scores(codes, labels, k)
        labels, k = _compact(viterbi(scores, steps.episode, s.switch_cost))
    return labels, {"behaviours_before": int(start.max()) + 1, "behaviours": k,
                    "steps_relabelled": float(np.mean(labels != start)) if k == start.max() + 1 else None,
                    "rounds": s.rounds, "switch_cost": s.switch_cost, "code_weight": s.code_weight}


def fit_policies(steps: Steps, rows: np.ndarray, labels: np.ndarray, k: int, s: RefineSettings,
                 rng: np.random.Generator, updates: int | None = None) -> BehaviourPolicies:
    """p(a | s, b) for ``k`` behaviours, fitted to steps ``rows`` whose behaviours are ``labels``
    (one per row), by ``updates`` (default ``s.updates``) Adam steps on random batches."""
    model = BehaviourPolicies(steps.obs_dim, steps.num_actions, steps.discrete, k, s.hidden)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    target = torch.as_tensor(labels)
    for _ in range(s.updates if updates is None else updates):
        pick = rng.integers(0, len(rows), size=s.batch_size)
        obs, acts = steps.batch(rows[pick])
        loss = -model.log_prob(obs, acts, target[pick]).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return model


@torch.no_grad()
def policy_scores(steps: Steps, model: BehaviourPolicies, rows: np.ndarray | None = None) -> np.ndarray:
    """log p(a_t | s_t, b) of steps ``rows`` (default: every step) under every behaviour (N, K)."""
    rows = np.arange(len(steps)) if rows is None else rows
    out = np.empty((len(rows), model.behaviours))
    for lo in range(0, len(rows), 8192):
        part = slice(lo, lo + 8192)
        obs, acts = steps.batch(rows[part])
        for b in range(model.behaviours):
            out[part, b] = model.log_prob(obs, acts, torch.full((len(obs),), b)).numpy()
    return out


def _code_scores(codes: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """log p(code_t | b) of every step under every behaviour, from the current labels."""
    counts = np.zeros((int(codes.max()) + 1, k))
    np.add.at(counts, (codes, labels), 1.0)
    p = (counts + CODE_PRIOR) / (counts.sum(0, keepdims=True) + CODE_PRIOR * len(counts))
    return np.log(p[codes])
