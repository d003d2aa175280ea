"""Behaviours that are two policies under one label get split.

The code graph can give two behaviours one label (a periodic behaviour and a straight one
whose single steps look alike). Each behaviour is tested as a policy: two sub-behaviours are
found by hard EM over its runs (fit two policies p(a | s, part), relabel by Viterbi with the
switch cost, parts shorter than ``min_segment_length`` merged away), started from two
guesses (whole runs, or stretches of a few steps, that one policy explains worse than
usual), the better fit kept. On
held-out episodes the split must then beat, by ``min_gain`` nats per step (switch costs
included), both one policy and the two policies mixed by the part as read from the state
alone. The second comparison matters: a split by state region (straight runs by heading, a
near-deterministic policy fitted better in halves) gains up to a nat per step over one
policy, as much as a real split, but nothing over that mixture, because the state tells the
part; a real second policy acts from the same states, so the state cannot tell it. The best
split whose parts both hold ``min_fraction`` of all steps is applied, every label is refined
again (``policy_refine``), and the search repeats until no behaviour splits.

Behaviours that differ only where they happen, or whose action follows from the state alike
(a Markov state that carries the pattern), are not split either: those stay with the code
graph.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from lagless.explain.episodes import EpisodeData
from lagless.explain.policy_refine import (
    RefineSettings,
    Steps,
    fit_policies,
    policy_scores,
    refine_behaviours,
    viterbi,
)
from lagless.explain.segments import smooth_labels

LOG_PROB_FLOOR = -20.0  # nats: one badly explained held-out step must not decide a test


@dataclass
class SplitSettings:
    min_gain: float = 0.1  # held-out nats per step two policies must gain (see split_test)
    min_fraction: float = 0.02  # each part of a split holds at least this share of all steps
    max_behaviours: int = 10
    updates: int = 1000  # updates of the policies compared on held-out episodes
    em_updates: int = 300  # updates per EM round that finds the two parts
    em_rounds: int = 3
    test_share: float = 1 / 3  # share of a behaviour's episodes held out
    min_segment_length: int = 5  # shorter parts of a run are merged into a neighbour
    seed: int = 0


def _path(scores: np.ndarray, runs: np.ndarray, switch_cost: float, min_length: int) -> np.ndarray:
    """Viterbi labels of ``scores`` over ``runs``, with parts shorter than ``min_length`` merged
    into a neighbour: a part must be a behaviour, not a few odd steps (the first step after a
    switch, an outlier a Gaussian policy cannot afford)."""
    return smooth_labels(viterbi(scores, runs, switch_cost), runs, min_length)


def _path_score(scores: np.ndarray, runs: np.ndarray, switch_cost: float, min_length: int
                ) -> tuple[np.ndarray, float]:
    """``_path`` labels and their score per step, switches included."""
    labels = _path(scores, runs, switch_cost, min_length)
    switches = int(((np.diff(labels) != 0) & (np.diff(runs) == 0)).sum())
    return labels, float((scores[np.arange(len(labels)), labels].sum() - switch_cost * switches) / len(labels))


def _floored(steps: Steps, model, rows: np.ndarray) -> np.ndarray:
    return np.maximum(policy_scores(steps, model, rows), LOG_PROB_FLOOR)


def _starts(explained: np.ndarray, runs: np.ndarray, min_length: int) -> list[np.ndarray]:
    """Two first guesses at the parts, from how well one policy explains each step: whole runs
    split at the median of their mean (a behaviour whose runs are each one policy), and steps
    split at the median of their mean over a few steps (one whose runs switch inside)."""
    per_run = np.bincount(runs, explained) / np.maximum(np.bincount(runs), 1)
    by_run = (per_run < np.median(per_run[np.bincount(runs) > 0])).astype(np.int64)[runs]
    local = _local_mean(explained, runs, 2 * min_length + 1)
    by_steps = _path(np.stack([local, np.full(len(local), np.median(local))], 1), runs, 1.0, min_length)
    return [part for part in (by_run, by_steps) if part.min() != part.max()]


def _local_mean(values: np.ndarray, runs: np.ndarray, width: int) -> np.ndarray:
    """Mean of ``values`` over a centred window of ``width`` steps, within each run."""
    out = np.empty(len(values))
    starts = np.flatnonzero(np.r_[True, np.diff(runs) != 0])
    for lo, hi in zip(starts, np.r_[starts[1:], len(values)]):
        sums = np.r_[0.0, np.cumsum(values[lo:hi])]
        at = np.arange(hi - lo)
        a, b = np.maximum(0, at - width // 2), np.minimum(hi - lo, at + width // 2 + 1)
        out[lo:hi] = (sums[b] - sums[a]) / (b - a)
    return out


class _PartOfStep:
    """A behaviour's steps whose 'action' is their part, so that ``fit_policies`` fits a
    classifier q(part | state) with the policies' network and batches."""

    discrete, num_actions = True, 2

    def __init__(self, steps: Steps, rows: np.ndarray, part: np.ndarray):
        self.steps, self.obs_dim = steps, steps.obs_dim
        self.part = np.zeros(len(steps), np.int64)
        self.part[rows] = part

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return self.steps.batch(rows)[0], torch.as_tensor(self.part[rows])


def _part_from_state(steps: Steps, rows: np.ndarray, part: np.ndarray, refine: RefineSettings,
                     rng: np.random.Generator, updates: int):
    """A classifier of ``part`` from the state alone, fitted on steps ``rows``; returns a
    function from rows to log q(part | state) of both parts (N, 2)."""
    model = fit_policies(_PartOfStep(steps, rows, part), rows, np.zeros(len(rows), np.int64), 1,
                         refine, rng, updates)

    @torch.no_grad()
    def read(at: np.ndarray) -> np.ndarray:
        obs = steps.batch(at)[0]
        return model.net(torch.cat([obs, torch.ones(len(at), 1)], -1)).log_softmax(-1).numpy()

    return read


def split_test(steps: Steps, labels: np.ndarray, behaviour: int, refine: RefineSettings,
               s: SplitSettings, seed: int) -> tuple[float | None, np.ndarray | None]:
    """Held-out gain (nats per step) of splitting ``behaviour`` in two (see the module doc),
    and the part (0 or 1) of each of its steps; (None, None) when too few steps to test."""
    rows = np.flatnonzero(labels == behaviour)
    episode = steps.episode[rows]
    runs = np.r_[0, np.cumsum((np.diff(rows) != 1) | (np.diff(episode) != 0))]
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    episodes = np.unique(episode)
    test = np.isin(episode, rng.choice(episodes, size=max(1, round(len(episodes) * s.test_share)), replace=False))
    train = ~test
    if train.sum() < 200 or test.sum() < 100 or len(episodes) < 3:
        return None, None
    fit_rows, fit_runs = rows[train], runs[train]
    one = fit_policies(steps, fit_rows, np.zeros(len(fit_rows), np.int64), 1, refine, rng, s.updates)
    explained = policy_scores(steps, one, fit_rows)[:, 0]
    best = None
    for part in _starts(explained, fit_runs, s.min_segment_length):
        for _ in range(s.em_rounds):
            two = fit_policies(steps, fit_rows, part, 2, refine, rng, s.em_updates)
            scores = policy_scores(steps, two, fit_rows)
            part, fit_score = _path_score(scores, fit_runs, refine.switch_cost, s.min_segment_length)
            if part.min() == part.max():
                break
        if part.min() != part.max() and (best is None or fit_score > best[0]):
            best = (fit_score, part)
    if best is None:
        return 0.0, None
    part = best[1]
    two = fit_policies(steps, fit_rows, part, 2, refine, rng, s.updates)
    test_rows = rows[test]
    test_scores = _floored(steps, two, test_rows)
    _, split_score = _path_score(test_scores, runs[test], refine.switch_cost, s.min_segment_length)
    # the two policies mixed by the part as the state alone tells it: where the state tells
    # it, the split is a region of the state space (a network fits each half better), not a
    # second policy, and this mixture scores as well as the split
    read = _part_from_state(steps, fit_rows, part, refine, rng, s.updates)(test_rows)
    read = np.log(0.9 * np.exp(read) + 0.05)  # a sure but wrong reading must not sink it
    as_read = np.logaddexp(read[:, 0] + test_scores[:, 0], read[:, 1] + test_scores[:, 1])
    baseline = max(float(_floored(steps, one, test_rows)[:, 0].mean()), float(as_read.mean()))
    gain = split_score - baseline
    parts = _path(policy_scores(steps, two, rows), runs, refine.switch_cost, s.min_segment_length)
    return gain, parts


def split_behaviours(data: EpisodeData, codes: np.ndarray, labels: np.ndarray,
                     refine: RefineSettings | None = None, settings: SplitSettings | None = None
                     ) -> tuple[np.ndarray, dict]:
    """``labels`` (already refined) with every behaviour that is two policies split, as the
    module doc says, and the tests made (behaviour, share of steps, gain) round by round."""
    refine = refine or RefineSettings()
    s = settings or SplitSettings()
    steps = Steps(data)
    labels = np.asarray(labels)
    before = int(labels.max()) + 1
    tests: list[list] = []
    untouched: dict[int, tuple] = {}  # behaviour -> its rows' fingerprint when it failed a test
    for round_ in range(s.max_behaviours):
        k = int(labels.max()) + 1
        if k >= s.max_behaviours:
            break
        best = None
        for b in range(k):
            rows = np.flatnonzero(labels == b)
            fingerprint = (len(rows), int(rows.sum()))
            if untouched.get(b) == fingerprint:
                continue
            gain, parts = split_test(steps, labels, b, refine, s, s.seed + 97 * round_ + b)
            tests.append([round_, b, round(len(rows) / len(labels), 4), None if gain is None else round(gain, 4)])
            small = parts is None or min(np.sum(parts == 0), np.sum(parts == 1)) < s.min_fraction * len(labels)
            if gain is None or gain < s.min_gain or small:
                untouched[b] = fingerprint
            elif best is None or gain > best[0]:
                best = (gain, rows[parts == 1])
        if best is None:
            break
        labels = labels.copy()
        labels[best[1]] = k
        labels, _ = refine_behaviours(data, codes, labels, replace(refine, seed=refine.seed + round_ + 1))
    return labels, {"behaviours_before": before, "behaviours": int(labels.max()) + 1,
                    "min_gain": s.min_gain, "tests": tests}
