"""Fixed-length windows of steps that never cross an episode boundary, batched lazily.

A window is just ``(start, length)``; batches gather their steps with one fancy-indexing
call each, so a 1M-step dataset is never copied into all of its windows (nor cast to float
as a whole). Padding slots have ``mask`` False and ``step_index`` -1.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from lagless.errors import LaglessError
from lagless.explain.episodes import EpisodeData

__all__ = ["WindowBatcher", "episode_windows", "iter_window_batches", "num_batches", "training_windows"]


def _bounds(data_or_bounds: EpisodeData | np.ndarray) -> np.ndarray:
    if isinstance(data_or_bounds, EpisodeData):
        return data_or_bounds.episode_bounds()
    bounds = np.asarray(data_or_bounds, dtype=np.int64)
    if bounds.ndim != 2 or bounds.shape[1] != 2:
        raise LaglessError(f"episode bounds must be an (E, 2) array of [start, end), got shape {bounds.shape}")
    return bounds


def _check_length(length: int) -> None:
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise LaglessError(f"window length must be an integer >= 1, got {length!r}")


def _chunks(first: np.ndarray, begin: np.ndarray, end: np.ndarray, length: int):
    """Windows at ``first + k*length`` clipped to each episode's [begin, end), all k that overlap it."""
    counts = -(-(end - first) // length)  # ceil
    episode = np.repeat(np.arange(len(first)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    lo = first[episode] + k * length
    starts = np.maximum(lo, begin[episode])
    ends = np.minimum(lo + length, end[episode])
    return starts.astype(np.int64), (ends - starts).astype(np.int64)


def episode_windows(data_or_bounds: EpisodeData | np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths): each episode cut into consecutive chunks of at most ``length`` steps.

    Windows stay inside one episode and cover every step exactly once, in order.
    """
    _check_length(length)
    bounds = _bounds(data_or_bounds)
    bounds = bounds[bounds[:, 1] > bounds[:, 0]]
    return _chunks(bounds[:, 0], bounds[:, 0], bounds[:, 1], int(length))


def training_windows(data_or_bounds: EpisodeData | np.ndarray, length: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`episode_windows`, but each episode's cut points shift by a random offset, so
    a model sees different step contexts every epoch; still no crossing and full coverage."""
    _check_length(length)
    bounds = _bounds(data_or_bounds)
    bounds = bounds[bounds[:, 1] > bounds[:, 0]]
    shift = rng.integers(0, int(length), size=len(bounds))
    return _chunks(bounds[:, 0] - shift, bounds[:, 0], bounds[:, 1], int(length))


def num_batches(windows: int | np.ndarray, batch_size: int) -> int:
    """Number of batches for ``windows`` (a count or the starts array)."""
    count = windows if isinstance(windows, (int, np.integer)) else len(windows)
    return -(-int(count) // int(batch_size))


class WindowBatcher:
    """Precomputes, once per dataset, where each step's next observation is (O(N) ints)."""

    def __init__(self, data: EpisodeData):
        self.data = data
        n = data.num_steps
        self.obs = data.observations.reshape(n, -1)  # a view for contiguous arrays
        has_next = data.has_next()
        self.next_index = np.where(has_next, np.arange(n) + 1, -1)
        self.final = None
        self.final_row = np.full(n, -1, dtype=np.int64)
        if data.final_observations is not None:
            self.final = np.asarray(data.final_observations).reshape(len(data.final_observations), -1)
            last = np.flatnonzero(~has_next)
            self.final_row[last] = data.episode_ids()[last]
        self.discrete = data.discrete_actions

    def batch(self, starts: np.ndarray, lengths: np.ndarray, length: int) -> dict[str, torch.Tensor]:
        """One batch of windows as float32/long/bool tensors, padded to ``length``."""
        offsets = np.arange(length)
        mask = offsets[None, :] < lengths[:, None]
        index = np.where(mask, starts[:, None] + offsets[None, :], 0)
        obs = self.obs[index].astype(np.float32)
        obs[~mask] = 0.0
        nxt = self.next_index[index]
        row = self.final_row[index]
        next_obs = np.zeros_like(obs)
        inside = mask & (nxt >= 0)
        next_obs[inside] = self.obs[nxt[inside]]
        from_final = mask & (row >= 0)
        if self.final is not None and from_final.any():
            next_obs[from_final] = self.final[row[from_final]]
        actions = self.data.actions[index]
        if self.discrete:
            actions = torch.from_numpy(np.where(mask, actions, 0).astype(np.int64))
        else:
            actions = torch.from_numpy(np.where(mask[..., None], actions, 0.0).astype(np.float32))
        return {
            "obs": torch.from_numpy(obs),
            "actions": actions,
            "next_obs": torch.from_numpy(next_obs),
            "next_mask": torch.from_numpy(inside | from_final),
            "mask": torch.from_numpy(mask),
            "step_index": torch.from_numpy(np.where(mask, index, -1).astype(np.int64)),
        }

    def batches(self, starts: np.ndarray, lengths: np.ndarray, length: int, *, batch_size: int,
                shuffle: bool = False, seed: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """Batches over the windows, in order or shuffled with ``seed``."""
        _check_length(length)
        if batch_size < 1:
            raise LaglessError(f"batch size must be >= 1, got {batch_size}")
        starts = np.asarray(starts, dtype=np.int64)
        lengths = np.asarray(lengths, dtype=np.int64)
        if starts.shape != lengths.shape or starts.ndim != 1:
            raise LaglessError(f"starts {starts.shape} and lengths {lengths.shape} must be equal 1-D arrays")
        if len(lengths) and (lengths.max() > length or lengths.min() < 1):
            raise LaglessError(f"window lengths must lie in 1..{length}, got {lengths.min()}..{lengths.max()}")
        if len(starts) and (starts.min() < 0 or (starts + lengths).max() > self.data.num_steps):
            raise LaglessError(f"windows reach outside the dataset's {self.data.num_steps} steps")
        order = np.random.default_rng(seed).permutation(len(starts)) if shuffle else np.arange(len(starts))
        for i in range(0, len(order), batch_size):
            pick = order[i : i + batch_size]
            yield self.batch(starts[pick], lengths[pick], length)


def iter_window_batches(data: EpisodeData, starts: np.ndarray, lengths: np.ndarray, length: int, *,
                        batch_size: int, shuffle: bool = False, seed: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """Yields dicts ``obs (B,L,D)``, ``actions (B,L)`` long or ``(B,L,A)`` float, ``next_obs``,
    ``next_mask``, ``mask`` (False = padding) and ``step_index`` (-1 = padding)."""
    yield from WindowBatcher(data).batches(starts, lengths, length, batch_size=batch_size,
                                           shuffle=shuffle, seed=seed)
