"""The two attribution methods as plain array functions: similarity and counterfactual.

(a) Similarity (Rishav et al. 2025): how close the agent's action distribution at a state is
to each behaviour's cloned policy there; the most similar behaviour explains the action.
(b) Counterfactual (Deshmukh et al. 2023): how far the action of a policy trained on all the
data moves when one behaviour's segments are left out of its training data; the behaviour
whose removal moves it most explains the action.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIMILARITY_DISCRETE = "1 - Jensen-Shannon divergence (base 2) between action distributions"
SIMILARITY_CONTINUOUS = "exp(-|mean_agent - mean_k|^2 / (2 s^2)), s = mean per-dimension std of the data's actions"
DISTANCE_DISCRETE = "total variation between action distributions"
DISTANCE_CONTINUOUS = "L2 distance between action means"
CONTINUOUS_CHANGE = 0.1  # a continuous greedy action 'changes' when it moves by > 0.1 s


def js_similarity(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """1 - Jensen-Shannon divergence (base 2, so in [0, 1]) between rows of ``p`` and ``q``."""
    p = _normalise(p)
    q = _normalise(q)
    m = 0.5 * (p + q)
    return 1.0 - 0.5 * (_kl(p, m) + _kl(q, m))


def _normalise(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, None)
    return p / np.maximum(p.sum(axis=-1, keepdims=True), 1e-12)


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    ratio = np.where(p > 0, p / np.maximum(q, 1e-300), 1.0)
    return np.sum(p * np.log2(ratio), axis=-1)


def gaussian_similarity(mu_a: np.ndarray, mu_b: np.ndarray, scale: float) -> np.ndarray:
    """Gaussian kernel on the distance between action means, in (0, 1]."""
    d2 = np.sum((np.asarray(mu_a, np.float64) - np.asarray(mu_b, np.float64)) ** 2, axis=-1)
    return np.exp(-d2 / (2.0 * max(scale, 1e-6) ** 2))


def action_distance(p: np.ndarray, q: np.ndarray, discrete: bool) -> np.ndarray:
    """Total variation (discrete) or L2 distance of the means (continuous), row by row."""
    if discrete:
        return 0.5 * np.abs(_normalise(p) - _normalise(q)).sum(axis=-1)
    return np.linalg.norm(np.asarray(p, np.float64) - np.asarray(q, np.float64), axis=-1)


def greedy_changed(p: np.ndarray, q: np.ndarray, discrete: bool, scale: float) -> np.ndarray:
    """Whether the greedy action differs: another argmax, or a mean moved by > 0.1 * scale."""
    if discrete:
        return np.argmax(p, axis=-1) != np.argmax(q, axis=-1)
    return action_distance(p, q, discrete=False) > CONTINUOUS_CHANGE * max(scale, 1e-6)


def similarity_scores(agent: np.ndarray, behaviour_dists: list[np.ndarray | None], discrete: bool,
                      scale: float) -> np.ndarray:
    """(n, K) similarity of the agent to each behaviour's policy; NaN for a behaviour without one."""
    n = len(agent)
    out = np.full((n, len(behaviour_dists)), np.nan)
    for k, dist in enumerate(behaviour_dists):
        if dist is not None:
            out[:, k] = js_similarity(agent, dist) if discrete else gaussian_similarity(agent, dist, scale)
    return out


def counterfactual_scores(full: np.ndarray, full_values: np.ndarray, minus: list[np.ndarray | None],
                          minus_values: list[np.ndarray | None], discrete: bool, scale: float):
    """(action change (n, K), value change (n, K), greedy changed (n, K)); NaN/False where absent."""
    n, k_count = len(full), len(minus)
    change = np.full((n, k_count), np.nan)
    value = np.full((n, k_count), np.nan)
    flipped = np.zeros((n, k_count), dtype=bool)
    for k, (dist, v) in enumerate(zip(minus, minus_values)):
        if dist is None:
            continue
        change[:, k] = action_distance(full, dist, discrete)
        value[:, k] = np.abs(np.asarray(full_values, np.float64) - np.asarray(v, np.float64))
        flipped[:, k] = greedy_changed(full, dist, discrete, scale)
    return change, value, flipped


def most_attributed(scores: np.ndarray) -> np.ndarray:
    """(n,) index of the highest score per row, ignoring NaN (-1 if a row has none)."""
    filled = np.where(np.isnan(scores), -np.inf, scores)
    best = np.argmax(filled, axis=1)
    return np.where(np.isfinite(filled).any(axis=1), best, -1)


def attribution_frequency(attributed: np.ndarray, num_behaviours: int) -> np.ndarray:
    """(K,) fraction of queries attributed to each behaviour."""
    if len(attributed) == 0:
        return np.zeros(num_behaviours)
    counts = np.bincount(attributed[attributed >= 0], minlength=num_behaviours)[:num_behaviours]
    return counts / len(attributed)


@dataclass
class Scores:
    """Both methods' per-query, per-behaviour scores and the behaviour each attributes to."""

    similarity: np.ndarray  # (n, K)
    action_change: np.ndarray  # (n, K)
    value_change: np.ndarray  # (n, K)
    greedy_changed: np.ndarray  # (n, K) bool
    by_similarity: np.ndarray  # (n,)
    by_counterfactual: np.ndarray  # (n,)


def score(agent: np.ndarray, cloned, discrete: bool, scale: float) -> Scores:
    """Score the agent's distributions ``agent`` against the cloned policies (``ClonedOutputs``)."""
    similarity = similarity_scores(agent, cloned.own, discrete, scale)
    change, value, flipped = counterfactual_scores(cloned.full, cloned.full_values, cloned.minus,
                                                   cloned.minus_values, discrete, scale)
    return Scores(similarity, change, value, flipped, most_attributed(similarity), most_attributed(change))


def _nanmean(x: np.ndarray) -> float | None:
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else None


def behaviour_summary(scores: Scores, steps_per_behaviour: list[int],
                      embedding: list[float | None]) -> list[dict]:
    """Per behaviour: attribution frequency by each method, action contrast, action/value change."""
    count = len(steps_per_behaviour)
    sim = attribution_frequency(scores.by_similarity, count)
    cf = attribution_frequency(scores.by_counterfactual, count)
    has_minus = ~np.isnan(scores.action_change).all(axis=0) if len(scores.action_change) else np.zeros(count, bool)
    return [{
        "id": k, "steps": int(steps_per_behaviour[k]),
        "similarity_frequency": float(sim[k]), "counterfactual_frequency": float(cf[k]),
        "action_contrast": float(scores.greedy_changed[:, k].mean()) if has_minus[k] else None,
        "mean_action_change": _nanmean(scores.action_change[:, k]),
        "mean_value_change": _nanmean(scores.value_change[:, k]),
        "embedding_distance": embedding[k],
    } for k in range(count)]
