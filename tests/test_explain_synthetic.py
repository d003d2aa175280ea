"""The planted-behaviour generators: deterministic, well formed, and their behaviours really differ
in the way each kind plants."""

import importlib.util

import numpy as np
import pytest

from lagless.errors import LaglessError
from lagless.explain.minatar_phases import (
    LAST_BREATH,
    SEAQUEST_PHASES,
    SHALLOW_OXYGEN,
    WATCHED_ROWS,
)
from lagless.explain.segments import find_segments
from lagless.explain.synthetic import (
    BEHAVIOUR_NAMES,
    CIRCLE_PERIOD,
    DURATION_PATTERNS,
    GENERATORS,
    MOVES,
    RELATIONS,
    ROOM_CENTRES,
    ROOM_HALF,
    make_synthetic,
    planted_behaviours,
)


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


# --------------------------------------------------------------------------- the generator suite
KINDS = list(GENERATORS)
EPISODES, STEPS = 20, 300


def installed(kind):
    """The kind, skipped where the optional package it plays (e.g. MinAtar) is missing."""
    needs = GENERATORS[kind].needs
    missing = needs is not None and importlib.util.find_spec(needs) is None
    return pytest.param(kind, marks=pytest.mark.skipif(missing, reason=f"needs pip install 'lagless[{needs}]'"))


SUITE = [installed(kind) for kind in KINDS]
needs_minatar = installed("minatar-seaquest").marks[0]


class _Suite(dict):
    def __missing__(self, kind):
        self[kind] = make_synthetic(kind, EPISODES, STEPS, seed=0)
        return self[kind]


@pytest.fixture(scope="module")
def suite():
    return _Suite()  # each kind made once, when a test first asks for it


def segment_table(data, labels):
    """(start, end, behaviour, touches an episode end) of every planted run."""
    seg = find_segments(labels, data.episode_ids())
    bounds = data.episode_bounds()
    cut = np.isin(seg.start, bounds[:, 0]) | np.isin(seg.end, bounds[:, 1])
    return seg.start, seg.end, seg.behaviour, cut


def test_the_suite_has_at_least_four_new_kinds():
    assert {"regions", "relation", "periodic", "durations"} <= set(GENERATORS)
    assert {GENERATORS[k].discrete for k in KINDS} == {True, False}


@pytest.mark.parametrize("kind", SUITE)
def test_suite_shapes_behaviours_and_segment_lengths(suite, kind):
    gen = GENERATORS[kind]
    data, labels = suite[kind]
    n = EPISODES * STEPS
    assert data.num_steps == len(labels) == n and labels.dtype == np.int64
    assert set(np.unique(labels)) == set(range(gen.num_behaviours)) == set(range(4))  # every one appears
    assert data.observations.dtype == np.float32 and data.observations.ndim == 2
    assert np.isfinite(data.observations).all() and np.isfinite(data.rewards).all()
    assert data.rewards.shape == (n,) and not data.terminations.any()
    bounds = data.episode_bounds()
    assert len(bounds) == EPISODES and np.all(bounds[:, 1] - bounds[:, 0] == STEPS)
    assert data.final_observations.shape == (EPISODES, data.observations.shape[1])
    if gen.discrete:
        assert data.discrete_actions and data.actions.max() < data.num_actions
    else:
        assert data.actions.shape == (n, 2) and data.actions.dtype == np.float32
    assert data.meta["kind"] == kind and data.meta["behaviour_names"] == list(gen.behaviour_names)
    if gen.segment_lengths is None:  # recorded from a game: run lengths are the game's
        return
    # Every run lasts its behaviour's planted length, unless an episode's start or end cuts it.
    start, end, behaviour, cut = segment_table(data, labels)
    for b, (lo, hi) in enumerate(gen.segment_lengths):
        lengths = (end - start)[behaviour == b]
        assert lengths.max() <= hi
        assert (end - start)[(behaviour == b) & ~cut].min() >= lo


@pytest.mark.parametrize("kind", SUITE)
def test_suite_deterministic_per_seed(suite, kind):
    a, la = suite[kind]
    b, lb = make_synthetic(kind, EPISODES, STEPS, seed=0)
    c, lc = make_synthetic(kind, EPISODES, STEPS, seed=1)
    np.testing.assert_array_equal(la, lb)
    for name in ("observations", "actions", "rewards", "truncations", "final_observations"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(la, lc) and not np.array_equal(a.observations, c.observations)


def test_regions_differ_by_state_region_only(suite):
    data, labels = suite["regions"]
    pos = data.observations[:, :2] * 10
    for b, centre in enumerate(ROOM_CENTRES):
        assert np.abs(pos[labels == b] - centre).max() < ROOM_HALF + 1  # its own room only (+ jitter)
    assert np.abs(ROOM_CENTRES[:, None] - ROOM_CENTRES[None]).max(-1)[~np.eye(4, dtype=bool)].min() > 2 * ROOM_HALF + 2
    # One policy everywhere: the action frequencies of any two behaviours are nearly equal.
    freq = np.stack([np.bincount(data.actions[labels == b], minlength=data.num_actions) / (labels == b).sum()
                     for b in range(4)])
    assert 0.5 * np.abs(freq[:, None] - freq[None]).sum(-1).max() < 0.15  # sampling noise only


def max_pairwise_tv(x, labels, bins=10):
    """Largest total-variation distance between two behaviours' histograms of the values x."""
    edges = np.quantile(x, np.linspace(0, 1, bins + 1))
    edges[-1] += 1e-6
    h = np.stack([np.histogram(x[labels == b], edges)[0] / (labels == b).sum() for b in np.unique(labels)])
    return 0.5 * np.abs(h[:, None] - h[None]).sum(-1).max()


def test_relation_differs_by_action_state_relation_not_by_state(suite):
    data, labels = suite["relation"]
    v, a = data.observations[:, 4:6], data.actions
    # Every state and action feature has about the same distribution under every behaviour (the
    # differences are sampling noise of slow processes: 0.1-0.25 at this size).
    for x in (*data.observations.T, *a.T, np.linalg.norm(a, axis=1)):
        assert max_pairwise_tv(x, labels) < 0.3
    for x in (*v.T, np.linalg.norm(a, axis=1)):
        assert max_pairwise_tv(x, labels) < 0.2
    # ... but the action relates to the current in four different ways.
    unit_v = v / np.linalg.norm(v, axis=1, keepdims=True)
    unit_a = a / np.linalg.norm(a, axis=1, keepdims=True)
    cos = (unit_v * unit_a).sum(1)
    cross = unit_v[:, 0] * unit_a[:, 1] - unit_v[:, 1] * unit_a[:, 0]
    with_, against, left, right = (labels == b for b in range(4))
    assert list(RELATIONS) == ["with the current", "against the current", "across, to the left",
                               "across, to the right"]
    assert np.median(cos[with_]) > 0.95 and np.median(cos[against]) < -0.95
    assert np.median(cross[left]) > 0.95 and np.median(cross[right]) < -0.95


def test_periodic_steps_differ_across_its_phases(suite):
    data, labels = suite["periodic"]
    a = data.actions
    start, end, behaviour, _ = segment_table(data, labels)
    half = CIRCLE_PERIOD // 2

    def lag_cos(b, lag):
        pairs = [(a[s:e - lag], a[s + lag:e]) for s, e, k in zip(start, end, behaviour) if k == b and e - s > lag]
        x, y = (np.concatenate(p) for p in zip(*pairs))
        return np.median((x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1))

    circle, straight = GENERATORS["periodic"].behaviour_names.index("circle"), 1
    assert lag_cos(circle, half) < -0.9 and lag_cos(circle, CIRCLE_PERIOD) > 0.9  # a half turn apart: opposite
    assert lag_cos(straight, half) > 0.9
    # One step of the circle looks like a step of straight: the same speed, any heading.
    speed = np.linalg.norm(a, axis=1)
    assert abs(speed[labels == circle].mean() - speed[labels == straight].mean()) < 0.05
    headings = np.arctan2(a[labels == circle, 1], a[labels == circle, 0])
    assert np.histogram(headings, bins=4, range=(-np.pi, np.pi))[0].min() > 0.2 * len(headings) / 4


def test_durations_differ_widely_and_are_noisy(suite):
    data, labels = suite["durations"]
    start, end, behaviour, cut = segment_table(data, labels)
    lengths = end - start
    medians = [np.median(lengths[(behaviour == b) & ~cut]) for b in range(4)]
    assert max(medians) >= 10 * min(medians)
    counts = np.bincount(behaviour, minlength=4)
    assert counts[0] >= 2 * counts[3]  # dashes are frequent, rests rare
    rest = labels == list(DURATION_PATTERNS).index("rest")
    assert 0.1 < (data.actions[rest] != 0).mean() < 0.2  # action noise
    radius = data.observations[:, 0] ** 2 + data.observations[:, 1] ** 2
    assert radius.std() > 0.1  # observation noise: (cos, sin) is off the unit circle


def seaquest_grid_phase(obs):
    """The phase of each step by the rule of ``lagless.explain.minatar_phases``, read from the
    recorded grid alone (rows, columns, channels of MinAtar Seaquest)."""
    grid = obs.reshape(-1, 10, 10, 10) > 0.5
    sub_row = grid[..., 0].any(2).argmax(1)  # channel 0: the submarine's front
    enemy_rows = (grid[..., 5] | grid[..., 6]).any(2)  # channels 5, 6: enemy fish and submarines
    oxygen = grid[:, 9, :, 7].sum(1)  # channel 7, bottom row: one cell per 20 units of oxygen
    divers = grid[:, 9, :, 8].sum(1)  # channel 8, bottom row: one cell per diver aboard
    wait = (sub_row == 0) & enemy_rows[:, 1:WATCHED_ROWS + 1].any(1)
    return np.select([wait, divers == 0, oxygen < SHALLOW_OXYGEN // 20], [3, 0, 2], default=1)


@needs_minatar
def test_minatar_seaquest_phases_follow_the_game_state(suite):
    data, labels = suite["minatar-seaquest"]
    assert GENERATORS["minatar-seaquest"].behaviour_names == SEAQUEST_PHASES
    assert data.observations.shape == (EPISODES * STEPS, 1000) and data.num_actions == 6
    assert set(np.unique(data.observations)) <= {0.0, 1.0}
    assert SHALLOW_OXYGEN % 20 == 0 and LAST_BREATH == 20  # thresholds the oxygen gauge shows
    # Every step's label is the rule applied to its recorded state, not a schedule.
    np.testing.assert_array_equal(labels, seaquest_grid_phase(data.observations))
    grid = data.observations.reshape(-1, 10, 10, 10)
    # Hand-checked steps: the first step of an episode is a new game, the submarine at the
    # surface (row 0, column 5) with no diver aboard, a full tank and no enemy: rescue.
    first = grid[0]
    assert first[0, 5, 0] == 1 and first[9, :, 8].sum() == 0 and first[9, :, 7].sum() == 10
    assert labels[0] == SEAQUEST_PHASES.index("rescue a diver")
    # A "wait" step: at the surface with an enemy fish or submarine in rows 1-3, and no-op.
    t = np.flatnonzero(labels == 3)[0]
    assert grid[t, 0, :, 0].any() and grid[t, 1:4, :, 5:7].any()
    # A "shallow" step: divers aboard, oxygen gauge of 3 cells or fewer, below the surface.
    t = np.flatnonzero(labels == 2)[0]
    assert grid[t, 9, :, 8].sum() >= 1 and grid[t, 9, :, 7].sum() <= 3 and not grid[t, 0, :, 0].any()
    # Every phase occurs, in runs of tens of steps for most steps, and the actions differ.
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    seg = find_segments(labels, data.episode_ids())
    lengths = seg.end - seg.start
    assert np.repeat(lengths, lengths).mean() > 40  # the run an average step is in
    for b in range(4):
        assert np.median(lengths[seg.behaviour == b]) >= 5
    freq = np.stack([np.bincount(data.actions[labels == b], minlength=6) / (labels == b).sum()
                     for b in range(4)])
    assert freq[3, 0] > 0.95  # wait: no-op (sticky actions repeat it)
    assert freq[0, [1, 3, 4]].sum() > 0.6 and freq[0, 5] < 0.05  # rescue: moves, no firing
    assert freq[1, 5] > 0.05 and freq[1, [2, 4]].sum() > 0.2  # hunt: fires, changes rows
    assert freq[2, 0] > 0.7 and freq[2, 2] > 0.05  # shallow: climbs, then waits under the surface


@needs_minatar
def test_minatar_seaquest_deterministic():
    a, la = make_synthetic("minatar-seaquest", 2, 500, seed=7)
    b, lb = make_synthetic("minatar-seaquest", 2, 500, seed=7)
    c, _ = make_synthetic("minatar-seaquest", 2, 500, seed=8)
    np.testing.assert_array_equal(la, lb)
    for name in ("observations", "actions", "rewards", "final_observations"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.observations, c.observations)
    assert a.meta["segment_lengths"] is None and a.meta["kind"] == "minatar-seaquest"


def test_minatar_seaquest_without_minatar_is_a_user_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "minatar", None)  # import minatar now raises ImportError
    monkeypatch.delitem(sys.modules, "minatar.environments", raising=False)
    monkeypatch.delitem(sys.modules, "minatar.environments.seaquest", raising=False)
    with pytest.raises(LaglessError, match=r"pip install 'lagless\[minatar\]'"):
        make_synthetic("minatar-seaquest", 1, 10)


def test_make_synthetic_bad_arguments():
    with pytest.raises(LaglessError, match="unknown synthetic kind"):
        make_synthetic("nope")
    with pytest.raises(LaglessError, match="at least 1"):
        make_synthetic("regions", episodes=0)
