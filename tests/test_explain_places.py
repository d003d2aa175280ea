"""Places: regions of the state space that trajectories keep to are found from states alone,
and continuous motion through the state space is not mistaken for them."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from lagless.explain.places import MIN_GAP, find_places
from lagless.explain.synthetic import make_synthetic


def test_rooms_are_places():
    data, truth = make_synthetic("regions", episodes=12, steps=300, seed=3)
    places = find_places(data, lags=16, seed=0)
    assert places.found and places.count == 4 and places.gap >= MIN_GAP
    assert adjusted_rand_score(truth, places.labels) >= 0.95
    assert places.to_json()["places"] == 4


@pytest.mark.parametrize("kind", ["relation", "periodic"])
def test_motion_on_a_torus_has_no_places(kind):
    data, _ = make_synthetic(kind, episodes=12, steps=300, seed=3)
    places = find_places(data, lags=16, seed=0)
    assert not places.found and places.gap < MIN_GAP


def test_a_handful_of_states_has_no_places():
    data, _ = make_synthetic("relation", episodes=2, steps=300, seed=0)
    data.observations[:] = np.where(np.arange(len(data.observations))[:, None] % 2 == 0, 0.0, 1.0)
    places = find_places(data, lags=4, seed=0)
    assert not places.found
    assert len(places.labels) == data.num_steps
