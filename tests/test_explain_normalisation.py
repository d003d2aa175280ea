"""Observation normalisation: a grid of 0/1 cells shares one std whatever its dtype, so a
rarely lit cell does not become a huge feature; float features keep their own."""

import numpy as np
import pytest

from lagless.explain.episodes import EpisodeData
from lagless.explain.vqvae_train import observation_stats


def _data(obs: np.ndarray) -> EpisodeData:
    n = len(obs)
    term = np.zeros(n, bool)
    term[-1] = True
    return EpisodeData(obs, np.zeros(n, np.int64), np.zeros(n, np.float32), term, np.zeros(n, bool))


def _rare_grid(rng, n=2000) -> np.ndarray:
    grid = rng.random((n, 4, 5)) < 0.3
    grid[:, 0, 0] = rng.random(n) < 0.005  # a cell that is rarely lit
    return grid


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.float32, np.float64])
def test_binary_grid_shares_one_std_whatever_the_dtype(dtype):
    grid = _rare_grid(np.random.default_rng(0))
    mean, std = observation_stats(_data(grid.astype(dtype)), np.random.default_rng(1))
    assert std.shape == (20,)
    assert np.allclose(std.numpy(), std[0].item())  # one std for every cell
    assert 0.3 < std[0].item() < 0.5  # the grid's, not the rare cell's (about 0.07)
    normalised = (grid[:, 0, 0].astype(np.float32) - mean[0].item()) / std[0].item()
    assert normalised.max() < 3.0


def test_float_features_keep_their_own_std():
    rng = np.random.default_rng(0)
    obs = np.stack([rng.normal(0, 5, 2000), rng.normal(0, 0.1, 2000), rng.random(2000) < 0.5], 1)
    _, std = observation_stats(_data(obs.astype(np.float32)), np.random.default_rng(1))
    assert std[0].item() == pytest.approx(5, rel=0.1)
    assert std[1].item() == pytest.approx(0.1, rel=0.1)
    assert std[2].item() == pytest.approx(0.5, rel=0.1)  # a 0/1 column among floats: its own
