"""discover.json says how sure discovery is: the eigengap's margin and over-segmentation signs."""

import numpy as np

from lagless.explain.confidence import discovery_confidence, eigengap_choice, segmentation_check
from lagless.explain.segments import find_segments


def test_clear_and_unclear_eigengaps():
    clear = eigengap_choice(np.array([0, 0.01, 0.02, 0.03, 0.6, 0.62, 0.65]), 6)
    assert clear["best"] == 4 and clear["clear"] and clear["gap_ratio"] > 10
    assert set(clear["gaps"]) == {"2", "3", "4", "5", "6"}
    shaky = eigengap_choice(np.array([0, 0.1, 0.3, 0.32, 0.52, 0.6]), 5)
    assert shaky["best"] in (2, 4) and shaky["runner_up"] in (2, 4) and not shaky["clear"]
    assert eigengap_choice(np.array([0.0, 0.5]), 10)["best"] is None


def _segments(labels, episodes=None):
    labels = np.asarray(labels)
    episodes = np.zeros(len(labels), dtype=np.int64) if episodes is None else np.asarray(episodes)
    return find_segments(labels, episodes)


def test_long_segments_raise_no_warning():
    labels = np.repeat([0, 1, 2, 0, 1], 40)
    check = segmentation_check(_segments(labels))
    assert check["median_length"] == 40 and check["short_share"] == 0
    out = discovery_confidence(np.array([0, 0.01, 0.02, 0.7, 0.8]), 4, False, 3, _segments(labels))
    assert out["warnings"] == []


def test_alternating_phases_and_short_runs_are_flagged():
    # one behaviour cut into two alternating phases (A B A B ...) between long runs of C
    phases = np.tile(np.repeat([0, 1], 3), 10)
    labels = np.concatenate([np.full(60, 2), phases, np.full(60, 2), phases])
    check = segmentation_check(_segments(labels))
    assert check["alternation_share"] > 0.8
    out = discovery_confidence(np.array([0, 0.01, 0.02, 0.7, 0.8]), 4, False, 3, _segments(labels))
    assert any("A B A" in w for w in out["warnings"])
    short = np.concatenate([np.full(100, 0), [1], np.full(100, 0), [2], np.full(100, 3), [1, 2],
                            np.full(100, 3)])
    flagged = discovery_confidence(np.array([0, 0.01, 0.02, 0.7]), 3, True, 4, _segments(short))
    assert any("over-segmentation" in w for w in flagged["warnings"])


def test_alternation_does_not_cross_episodes():
    labels = np.array([0] * 10 + [1] * 10 + [0] * 10)
    episodes = np.array([0] * 20 + [1] * 10)
    assert segmentation_check(_segments(labels, episodes))["alternation_share"] == 0


def test_merges_and_forced_counts():
    values = np.array([0, 0.01, 0.02, 0.03, 0.6, 0.62])
    labels = np.repeat([0, 1, 2], 50)
    merged = discovery_confidence(values, 5, False, 3, _segments(labels))
    assert any("merged" in w for w in merged["warnings"])
    forced = discovery_confidence(np.array([0, 0.1, 0.3, 0.32, 0.52, 0.6]), 5, True, 3, _segments(labels))
    assert forced["warnings"] == []
