"""Spectral clustering of a small weighted graph, with the eigengap choosing the cluster count.

Standard normalised spectral clustering (Ng, Jordan and Weiss): eigenvectors of the
normalised Laplacian I - D^-1/2 W D^-1/2 for the K smallest eigenvalues, rows scaled to unit
length, then k-means. K is where the gap between consecutive eigenvalues is largest; at
least 2, since one cluster would discover nothing (``behaviours=1`` still forces one).
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.cluster import KMeans

logger = logging.getLogger(__name__)


def normalised_laplacian_spectrum(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ascending eigenvalues and eigenvectors of I - D^-1/2 W D^-1/2 (isolated nodes: row of I)."""
    degree = weights.sum(1)
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)), 0.0)
    laplacian = np.eye(len(weights)) - inv_sqrt[:, None] * weights * inv_sqrt[None, :]
    values, vectors = np.linalg.eigh((laplacian + laplacian.T) / 2)
    return np.clip(values, 0.0, None), vectors


def eigengap_count(eigenvalues: np.ndarray, max_clusters: int) -> int:
    """K in [2, max_clusters] with the largest gap eigenvalues[K] - eigenvalues[K-1]."""
    n = len(eigenvalues)
    top = min(max_clusters, n - 1)
    if top < 2:
        return min(n, 2) if n else 0
    gaps = eigenvalues[2: top + 1] - eigenvalues[1: top]
    return int(np.argmax(gaps)) + 2


def kmeans_rows(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means labels of the unit-length rows of ``vectors`` (several seeded restarts)."""
    rows = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    if k >= len(rows):
        return np.arange(len(rows))
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(rows)


def merge_small_clusters(labels: np.ndarray, weights: np.ndarray, counts: np.ndarray,
                         min_fraction: float) -> np.ndarray:
    """Merge, smallest first, clusters under ``min_fraction`` of the steps into the cluster they
    share the most edge weight with (or the largest cluster if they share none)."""
    labels = labels.copy()
    total = counts.sum()
    while True:
        ids = np.unique(labels)
        if len(ids) <= 1:
            return labels
        size = np.array([counts[labels == i].sum() for i in ids])
        small = int(np.argmin(size))
        if size[small] >= min_fraction * total:
            return labels
        members = labels == ids[small]
        link = np.array([weights[np.ix_(members, labels == i)].sum() if i != ids[small] else -1.0
                         for i in ids])
        target = ids[int(np.argmax(link))] if link.max() > 0 else ids[int(np.argmax(
            np.where(np.arange(len(ids)) == small, -1, size)))]
        labels[members] = target


def relabel_by_size(labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Ids 0..K-1 with 0 the cluster with the most steps (ties: smallest old id)."""
    ids = np.unique(labels)
    size = np.array([counts[labels == i].sum() for i in ids])
    order = ids[np.lexsort((ids, -size))]
    new = np.empty(int(ids.max()) + 1, dtype=np.int64)
    new[order] = np.arange(len(order))
    return new[labels]


def spectral_behaviours(weights: np.ndarray, counts: np.ndarray, *, behaviours: int | None = None,
                        max_behaviours: int = 10, min_fraction: float = 0.02,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """(cluster id per node, Laplacian eigenvalues, number of clusters) of a weighted graph.

    ``counts`` (steps per node) size the clusters for merging and ordering. A forced
    ``behaviours`` K is kept exactly (clamped to the number of nodes), without merging.
    """
    n = len(weights)
    values, vectors = normalised_laplacian_spectrum(weights)
    if behaviours is not None:
        k = min(behaviours, n)
        if k < behaviours:
            logger.warning("only %d codes are in use, so %d behaviours instead of %d", n, k, behaviours)
    else:
        k = eigengap_count(values, max_behaviours)
    labels = kmeans_rows(vectors[:, :k], k, seed) if k > 1 else np.zeros(n, dtype=np.int64)
    if behaviours is None:
        labels = merge_small_clusters(labels, weights, counts, min_fraction)
    labels = relabel_by_size(labels, counts)
    return labels, values, int(labels.max()) + 1
