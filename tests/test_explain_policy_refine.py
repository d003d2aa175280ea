"""Behaviours relabelled as policies: Viterbi is exact, labels that contradict the actions are
corrected, and labels the actions cannot decide stay with their codes."""

import itertools

import numpy as np
from sklearn.metrics import adjusted_rand_score
from steering_data import runs, steering

from lagless.explain.policy_refine import RefineSettings, refine_behaviours, viterbi

FAST = {"updates": 120, "rounds": 3}


def _brute_force(scores: np.ndarray, cost: float) -> float:
    n, k = scores.shape
    best = -np.inf
    for labels in itertools.product(range(k), repeat=n):
        labels = np.array(labels)
        best = max(best, scores[np.arange(n), labels].sum() - cost * (np.diff(labels) != 0).sum())
    return best


def test_viterbi_finds_the_best_labelling_of_every_episode():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(13, 3)) * 3
    episodes = np.array([0] * 5 + [1] * 1 + [2] * 7)
    labels = viterbi(scores, episodes, switch_cost=2.0)
    for e in range(3):
        rows = episodes == e
        got = scores[rows][np.arange(rows.sum()), labels[rows]].sum() - 2.0 * (np.diff(labels[rows]) != 0).sum()
        assert np.isclose(got, _brute_force(scores[rows], 2.0))


def test_labels_that_contradict_the_actions_are_corrected():
    truth = runs(6000, np.random.default_rng(3))
    data = steering(truth, 200, seed=3)
    noisy = truth.copy()
    flip = np.random.default_rng(4).random(len(truth)) < 0.2
    noisy[flip] = 1 - noisy[flip]
    codes = noisy.copy()  # codes as unreliable as the labels
    labels, info = refine_behaviours(data, codes, noisy, RefineSettings(seed=0, **FAST))
    assert info["behaviours"] == 2
    assert adjusted_rand_score(truth, labels) > adjusted_rand_score(truth, noisy) + 0.2


def test_labels_the_actions_cannot_decide_stay_with_their_codes():
    """One steady policy under two labels that follow the codes: the likelihood has no
    preference, so the code term keeps the labels where the codes put them."""
    rng = np.random.default_rng(5)
    data = steering(np.zeros(6000, np.int64), 200, seed=5)
    codes = np.repeat(rng.integers(0, 2, 6000 // 30), 30) * 3 + rng.integers(0, 3, 6000)
    given = (codes >= 3).astype(np.int64)
    labels, info = refine_behaviours(data, codes, given, RefineSettings(seed=0, **FAST))
    assert info["behaviours"] == 2
    assert adjusted_rand_score(given, labels) > 0.9
