"""Code graph and spectral clustering: eigengap K, small-cluster merging, forced K, edge weights."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from lagless.explain.code_graph import build_code_graph, code_similarity, transition_counts
from lagless.explain.spectral import (
    eigengap_count,
    merge_small_clusters,
    normalised_laplacian_spectrum,
    spectral_behaviours,
)


def block_graph(sizes, noise=0.02, seed=0):
    """Symmetric weights: ~1 inside blocks, ~``noise`` between, zero diagonal; and block ids."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    n = len(truth)
    same = truth[:, None] == truth[None, :]
    w = np.where(same, rng.uniform(0.6, 1.0, (n, n)), rng.uniform(0.0, noise, (n, n)))
    w = (w + w.T) / 2
    np.fill_diagonal(w, 0.0)
    return w, truth


@pytest.mark.parametrize("sizes", [(4, 5, 6), (3, 4, 5, 4, 6)])
def test_eigengap_finds_the_blocks(sizes):
    w, truth = block_graph(sizes)
    labels, eigenvalues, k = spectral_behaviours(w, np.ones(len(truth)), max_behaviours=10)
    assert k == len(sizes)
    assert adjusted_rand_score(truth, labels) == 1.0
    assert np.all(np.diff(eigenvalues) >= -1e-12) and eigenvalues[0] == pytest.approx(0.0, abs=1e-9)
    assert eigengap_count(eigenvalues, 10) == len(sizes)


def test_eigengap_respects_max_behaviours():
    w, _ = block_graph((3, 3, 3, 3, 3))
    values, _ = normalised_laplacian_spectrum(w)
    assert eigengap_count(values, 3) <= 3


def test_forced_number_of_behaviours():
    w, truth = block_graph((4, 5, 6))
    for k in (1, 2, 5):
        labels, _, found = spectral_behaviours(w, np.ones(len(truth)), behaviours=k)
        assert found == k and len(np.unique(labels)) == k
    # Asking for more clusters than nodes gives one per node.
    _, _, found = spectral_behaviours(w, np.ones(len(truth)), behaviours=100)
    assert found == len(truth)


def test_small_clusters_merge_into_the_most_connected():
    # Blocks 0, 1, 2 are big in steps; block 3 is tiny and tied to block 1.
    w, truth = block_graph((3, 3, 3, 2), noise=0.01)
    tiny, friend = truth == 3, truth == 1
    w[np.ix_(tiny, friend)] = w[np.ix_(friend, tiny)] = 0.3
    counts = np.where(tiny, 1, 100)
    merged = merge_small_clusters(truth, w, counts, min_fraction=0.05)
    assert set(merged[tiny]) == {1}
    np.testing.assert_array_equal(merged[~tiny], truth[~tiny])
    labels, _, k = spectral_behaviours(w, counts, min_fraction=0.05)
    assert k == 3 and len(set(labels[tiny] + 0) | set(labels[friend])) == 1
    # Ids are ordered by steps, so behaviour 0 is the largest.
    assert np.bincount(labels, weights=counts).argmax() == 0


def test_transitions_skip_self_and_episode_boundaries():
    codes = np.array([0, 0, 1, 1, 2, 0, 0, 1])
    episodes = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    used = np.array([0, 1, 2])
    t = transition_counts(codes, episodes, used)
    expected = np.zeros((3, 3))
    expected[0, 1] = expected[1, 0] = 2  # 0->1 at steps 1-2 and 6-7
    expected[1, 2] = expected[2, 1] = 1  # 1->2 once; 2->0 crosses an episode
    np.testing.assert_array_equal(t, expected)


def test_graph_weights_and_code_labels():
    rng = np.random.default_rng(0)
    codebook = rng.normal(size=(8, 4))
    codes = rng.choice([1, 3, 4, 6], size=300)
    episodes = np.repeat(np.arange(3), 100)
    sim = code_similarity(codebook)
    assert sim.min() >= 0 and sim.max() <= 1 and np.all(np.diag(sim) == 0)
    g = build_code_graph(codes, episodes, codebook, similarity_weight=0.3, seed=0)
    np.testing.assert_array_equal(g.codes, [1, 3, 4, 6])
    np.testing.assert_allclose(g.weights, g.weights.T)
    assert np.all(np.diag(g.weights) == 0) and g.weights.sum() == pytest.approx(1.0)
    labels = g.label_codes(codes)
    assert labels.shape == codes.shape
    np.testing.assert_array_equal(labels, g.behaviour_of_code[np.searchsorted(g.codes, codes)])
    js = g.to_json()
    assert js["similarity_weight"] == 0.3 and len(js["weights"]) == 4


def test_deterministic_for_a_seed():
    w, _ = block_graph((4, 4, 4), noise=0.3, seed=2)
    a = spectral_behaviours(w, np.ones(12), behaviours=3, seed=5)[0]
    b = spectral_behaviours(w, np.ones(12), behaviours=3, seed=5)[0]
    np.testing.assert_array_equal(a, b)
