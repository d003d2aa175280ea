"""The one in-memory form of an episode dataset that every explain step reads.

Steps are stored flat, in order, the way D4RL and a flat ``.npz`` store them: step ``t``
pairs ``observations[t]`` with ``actions[t]``; an episode ends at a step whose
``terminations`` or ``truncations`` flag is set (a trailing unfinished episode still counts).
Arrays keep their stored dtype (MinAtar grids stay uint8/bool) so 1M steps fit in memory;
code converts to float per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class EpisodeData:
    observations: np.ndarray  # (N, *obs_shape)
    actions: np.ndarray  # (N,) integer for discrete actions, (N, A) float for continuous
    rewards: np.ndarray  # (N,) float32
    terminations: np.ndarray  # (N,) bool
    truncations: np.ndarray  # (N,) bool
    # Optional: the observation after an episode's last step, one per episode (Minari keeps it).
    final_observations: np.ndarray | None = None
    meta: dict = field(default_factory=dict)  # e.g. env id, source, agent run dir

    @property
    def num_steps(self) -> int:
        return len(self.actions)

    @property
    def discrete_actions(self) -> bool:
        return self.actions.ndim == 1 and np.issubdtype(self.actions.dtype, np.integer)

    @property
    def num_actions(self) -> int:
        """Number of discrete actions (max id + 1, or meta["num_actions"]); action size if continuous."""
        if not self.discrete_actions:
            return int(self.actions.shape[1])
        return int(self.meta.get("num_actions", int(self.actions.max()) + 1 if len(self.actions) else 0))

    def episode_bounds(self) -> np.ndarray:
        """(E, 2) int64 array of [start, end) per episode, in order."""
        done = np.logical_or(self.terminations, self.truncations)
        ends = np.flatnonzero(done) + 1
        if len(ends) == 0 or ends[-1] != self.num_steps:
            ends = np.append(ends, self.num_steps)
        starts = np.concatenate([[0], ends[:-1]])
        keep = ends > starts
        return np.stack([starts[keep], ends[keep]], axis=1).astype(np.int64)

    def episode_ids(self) -> np.ndarray:
        """(N,) episode index of every step."""
        bounds = self.episode_bounds()
        ids = np.zeros(self.num_steps, dtype=np.int64)
        ids[bounds[1:, 0]] = 1
        return np.cumsum(ids)

    def has_next(self) -> np.ndarray:
        """(N,) bool: step t's next observation is observations[t + 1] (same episode)."""
        out = np.ones(self.num_steps, dtype=bool)
        out[self.episode_bounds()[:, 1] - 1] = False
        return out
