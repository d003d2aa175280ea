"""The code graph keeps a behaviour whole when its first steps get codes of their own.

A code sums a window of steps, so the first steps of a behaviour, whose window still holds
the previous behaviour, can get other codes than its later steps (seen on 100k planted
steps: every behaviour split in two at 8 lags). Linking codes up to half a window apart,
the default, keeps each behaviour in one piece.
"""

import numpy as np
from sklearn.metrics import adjusted_rand_score

from lagless.explain.code_graph import build_code_graph
from lagless.explain.discover_config import DiscoverConfig


def early_late_codes(seed: int, episodes: int = 150, steps: int = 300, early: int = 12):
    """Codes of 4 behaviours, each with 4 codes for its first ``early`` steps and 4 after."""
    rng = np.random.default_rng(seed)
    codes, truth, episode_ids = [], [], []
    for episode in range(episodes):
        t, behaviour = 0, int(rng.integers(4))
        while t < steps:
            length = min(int(rng.integers(20, 61)), steps - t)
            for since in range(length):
                block = 2 * behaviour + (since >= early)  # 8 blocks of 4 codes
                codes.append(4 * block + int(rng.integers(4)))
            truth += [behaviour] * length
            episode_ids += [episode] * length
            t += length
            behaviour = int((behaviour + rng.integers(1, 4)) % 4)
    return np.array(codes), np.array(truth), np.array(episode_ids)


def test_default_lags_are_half_the_window():
    assert DiscoverConfig().lags() == 16
    assert DiscoverConfig(window=10).lags() == 5
    assert DiscoverConfig(transition_lags=3).lags() == 3


def test_half_window_lags_keep_early_and_late_codes_together():
    for seed in (0, 1):
        codes, truth, episode_ids = early_late_codes(seed)
        codebook = np.random.default_rng(seed).normal(size=(32, 8))  # similarity says nothing
        chain = build_code_graph(codes, episode_ids, codebook, similarity_weight=0.2, lags=1)
        assert chain.num_behaviours == 8  # consecutive steps only: early and late come apart
        graph = build_code_graph(codes, episode_ids, codebook, similarity_weight=0.2,
                                 lags=DiscoverConfig().lags())
        assert graph.num_behaviours == 4
        assert adjusted_rand_score(truth, graph.label_codes(codes)) > 0.95
