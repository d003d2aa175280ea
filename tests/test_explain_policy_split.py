"""Behaviours split as policies: one label over two policies is split in two, a label over
one policy (steady or a random walk) is not, and correct labels stay as they are."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from steering_data import runs, steering

from lagless.explain.policy_refine import RefineSettings
from lagless.explain.policy_split import SplitSettings, split_behaviours

REFINE = RefineSettings(seed=0, updates=120, rounds=2)
FAST = SplitSettings(updates=400, em_updates=150, seed=0)


def test_one_label_over_two_policies_is_split():
    truth = runs(6000, np.random.default_rng(7))
    data = steering(truth, 200, seed=7)
    one = np.zeros(len(truth), np.int64)
    labels, info = split_behaviours(data, one.copy(), one, REFINE, FAST)
    assert info["behaviours"] == 2, info
    assert info["tests"][0][3] > FAST.min_gain
    assert adjusted_rand_score(truth, labels) > 0.8


@pytest.mark.parametrize("behaviour", [0, 1], ids=["steady", "random-turns"])
def test_one_policy_is_not_split(behaviour):
    n = 6000
    data = steering(np.full(n, behaviour, np.int64), 200, seed=8)
    one = np.zeros(n, np.int64)
    labels, info = split_behaviours(data, one.copy(), one, REFINE, FAST)
    assert info["behaviours"] == 1, info
    assert info["tests"][0][3] < FAST.min_gain
    assert (labels == 0).all()


def test_correct_labels_are_not_split():
    truth = runs(6000, np.random.default_rng(9))
    data = steering(truth, 200, seed=9)
    labels, info = split_behaviours(data, truth.copy(), truth.copy(), REFINE, FAST)
    assert info["behaviours"] == 2, info
    assert len(info["tests"]) == 2  # each behaviour tested once
    assert adjusted_rand_score(truth, labels) > 0.95
