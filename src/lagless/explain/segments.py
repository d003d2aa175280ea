"""Segments (maximal runs of one behaviour within an episode) and per-behaviour statistics.

Smoothing: a code can flip for a step or two inside a long behaviour (noise, or the causal
encoder catching up after a switch). With ``min_length`` > 1, runs shorter than it are merged,
shortest first, into the longer of their neighbours in the same episode (the earlier one on
a tie), and neighbours that then share a label join. A run that is its whole episode stays.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from lagless.explain.episodes import EpisodeData

TOP_ACTIONS = 3


@dataclass
class Segments:
    episode: np.ndarray  # (S,) episode index
    start: np.ndarray  # (S,) first global step
    end: np.ndarray  # (S,) one past the last global step
    behaviour: np.ndarray  # (S,)

    def __len__(self) -> int:
        return len(self.start)

    def to_json(self) -> list[dict]:
        return [{"episode": int(e), "start": int(s), "end": int(t), "behaviour": int(b)}
                for e, s, t, b in zip(self.episode, self.start, self.end, self.behaviour)]


def find_segments(labels: np.ndarray, episode_ids: np.ndarray) -> Segments:
    """Maximal runs of one label that do not cross an episode boundary, in step order."""
    n = len(labels)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Segments(empty, empty, empty, empty)
    change = np.flatnonzero((labels[1:] != labels[:-1]) | (episode_ids[1:] != episode_ids[:-1])) + 1
    start = np.concatenate([[0], change]).astype(np.int64)
    end = np.concatenate([change, [n]]).astype(np.int64)
    return Segments(episode=episode_ids[start].astype(np.int64), start=start, end=end,
                    behaviour=labels[start].astype(np.int64))


def smooth_labels(labels: np.ndarray, episode_ids: np.ndarray, min_length: int) -> np.ndarray:
    """``labels`` with runs shorter than ``min_length`` merged into a neighbour (see module doc)."""
    if min_length <= 1 or len(labels) == 0:
        return labels.copy()
    seg = find_segments(labels, episode_ids)
    start, end = seg.start.tolist(), seg.end.tolist()
    label, episode = seg.behaviour.tolist(), seg.episode.tolist()
    count = len(start)
    prev = list(range(-1, count - 1))
    nxt = list(range(1, count + 1))
    nxt[-1] = -1
    alive = [True] * count
    heap = [(end[i] - start[i], start[i], i) for i in range(count) if end[i] - start[i] < min_length]
    heapq.heapify(heap)

    def neighbour(j: int, i: int) -> bool:
        return j >= 0 and alive[j] and episode[j] == episode[i]

    def absorb(keep: int, gone: int) -> None:
        """Run ``keep`` takes over its adjacent run ``gone``."""
        start[keep], end[keep] = min(start[keep], start[gone]), max(end[keep], end[gone])
        alive[gone] = False
        before, after = (prev[gone], nxt[gone])
        if before == keep:
            nxt[keep] = after
            if after >= 0:
                prev[after] = keep
        else:
            prev[keep] = before
            if before >= 0:
                nxt[before] = keep

    while heap:
        length, _, i = heapq.heappop(heap)
        if not alive[i] or end[i] - start[i] != length:
            continue
        p, q = prev[i], nxt[i]
        has_p, has_q = neighbour(p, i), neighbour(q, i)
        if not has_p and not has_q:
            continue
        target = p if has_p and (not has_q or end[p] - start[p] >= end[q] - start[q]) else q
        absorb(target, i)
        other = nxt[target] if target == p else prev[target]
        if neighbour(other, target) and label[other] == label[target]:
            absorb(target, other)
        if end[target] - start[target] < min_length:
            heapq.heappush(heap, (end[target] - start[target], start[target], target))

    out = np.empty_like(labels)
    for i in range(count):
        if alive[i]:
            out[start[i]:end[i]] = label[i]
    return out


def behaviour_stats(data: EpisodeData, labels: np.ndarray, segments: Segments,
                    num_behaviours: int) -> list[dict]:
    """Per behaviour: steps, segments, mean segment length, mean return of its segments, and
    typical actions (top actions with frequencies, or mean and std of continuous actions)."""
    cum = np.concatenate([[0.0], np.cumsum(data.rewards, dtype=np.float64)])
    seg_return = cum[segments.end] - cum[segments.start]
    seg_length = segments.end - segments.start
    steps = np.bincount(labels, minlength=num_behaviours)
    out = []
    for b in range(num_behaviours):
        mine = segments.behaviour == b
        actions = data.actions[labels == b]
        out.append({
            "id": b,
            "steps": int(steps[b]),
            "segments": int(mine.sum()),
            "mean_length": float(seg_length[mine].mean()) if mine.any() else 0.0,
            "mean_return": float(seg_return[mine].mean()) if mine.any() else None,
            "typical_actions": _typical_actions(actions, data),
        })
    return out


def _typical_actions(actions: np.ndarray, data: EpisodeData) -> list[dict] | dict:
    if len(actions) == 0:
        return [] if data.discrete_actions else {"mean": None, "std": None}
    if not data.discrete_actions:
        values = actions.reshape(len(actions), -1).astype(np.float64)
        return {"mean": values.mean(0).tolist(), "std": values.std(0).tolist()}
    freq = np.bincount(actions.astype(np.int64), minlength=data.num_actions) / len(actions)
    top = np.argsort(-freq, kind="stable")[:TOP_ACTIONS]
    return [{"action": int(a), "frequency": float(freq[a])} for a in top if freq[a] > 0]
