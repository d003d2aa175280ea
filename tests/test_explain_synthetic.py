"""The planted-behaviour generator: deterministic, well formed, and its patterns really differ."""

import numpy as np
import pytest

from lagless.errors import LaglessError
from lagless.explain.segments import find_segments
from lagless.explain.synthetic import BEHAVIOUR_NAMES, MOVES, planted_behaviours


def test_deterministic_for_a_seed():
    a, la = planted_behaviours(2000, seed=3)
    b, lb = planted_behaviours(2000, seed=3)
    c, _ = planted_behaviours(2000, seed=4)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    assert not np.array_equal(a.actions, c.actions)


def test_shapes_episodes_and_switches():
    data, labels = planted_behaviours(5000, num_behaviours=5, seed=0, episode_length=(100, 200),
                                      switch_every=(20, 40))
    assert data.num_steps == len(labels) == 5000
    assert labels.dtype == np.int64 and set(np.unique(labels)) == set(range(5))
    assert data.observations.shape == (5000, 8) and data.observations.dtype == np.float32
    assert data.discrete_actions and data.num_actions == len(MOVES)
    assert data.meta["behaviour_names"] == BEHAVIOUR_NAMES[:5]
    bounds = data.episode_bounds()
    lengths = bounds[:, 1] - bounds[:, 0]
    assert lengths[:-1].min() >= 100 and lengths.max() <= 200
    assert data.final_observations.shape == (len(bounds), 8)
    # A planted run is 20-40 steps long unless an episode boundary cuts it.
    seg = find_segments(labels, data.episode_ids())
    episode_start = np.isin(seg.start, bounds[:, 0])
    episode_end = np.isin(seg.end, bounds[:, 1])
    inner = ~episode_start & ~episode_end
    assert (seg.end - seg.start)[inner].min() >= 20
    assert (seg.end - seg.start).max() <= 40


def test_patterns_differ_in_actions_and_reward():
    data, labels = planted_behaviours(8000, seed=1)
    freq = np.stack([np.bincount(data.actions[labels == b], minlength=9) / (labels == b).sum()
                     for b in range(4)])
    assert freq[0, 1] > 0.9  # drift east
    assert freq[3, 0] > 0.9  # hold still
    assert freq[1, [3, 5, 7, 1]].min() > 0.2  # circle: N, W, S, E
    assert freq[2, [2, 8]].min() > 0.4  # zig-zag: NE, SE
    east = np.array([data.rewards[labels == b].mean() for b in range(4)])
    assert east[0] > 0.8 and abs(east[3]) < 0.1


def test_bad_arguments_are_user_errors():
    with pytest.raises(LaglessError, match="num_behaviours"):
        planted_behaviours(100, num_behaviours=0)
    with pytest.raises(LaglessError, match="num_steps"):
        planted_behaviours(0)
    with pytest.raises(LaglessError, match="episode_length"):
        planted_behaviours(100, episode_length=(50, 10))
