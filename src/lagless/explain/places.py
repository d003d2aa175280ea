"""Places: regions of the state space that trajectories rarely leave, found from states alone.

Some behaviours are where the agent is rather than how it acts: the same walk in four rooms,
the levels of a game. Codes that carry the policy do not see them, and a policy test cannot
split them (the state tells them apart). Here the normalised states are clustered
(k-means, ``CLUSTERS`` clusters fitted on a sample of steps) and the clusters form a graph
by how often a step's cluster is followed by another within ``lags`` steps of its episode
(the code graph's transition counts). Where trajectories move through the state space
continuously (a point on a torus, a walk on a grid) every cut of that graph is crossed
often and its normalised Laplacian has no clear eigengap; where they stay in a region until
they jump to another, the regions stand out with a large gap. Measured on the planted-
behaviour suite (docs/explain.md, "Discovery", step 5): largest gap 0.06-0.28 where
behaviours are not places, 0.41-0.54 for the rooms (0.32-0.49 on a 4,800-step set);
``MIN_GAP`` sits between.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans

from lagless.explain.code_graph import transition_counts
from lagless.explain.episodes import EpisodeData
from lagless.explain.policy_refine import Steps
from lagless.explain.spectral import eigengap_count, spectral_behaviours

CLUSTERS = 32  # state clusters: fine enough that a place holds several
MIN_GAP = 0.35  # eigengap of the cluster graph from which its groups are places
FIT_STEPS = 20_000  # k-means is fitted on at most this many steps, then labels every step
CHUNK = 50_000  # steps labelled at a time (a million MinAtar states would not fit at once)


@dataclass
class Places:
    labels: np.ndarray  # (N,) place of each step (meaningful when ``found``)
    clusters: np.ndarray  # (N,) state cluster of each step
    eigenvalues: np.ndarray  # ascending, of the cluster graph's normalised Laplacian
    count: int  # places the eigengap chose (small ones merged)
    gap: float  # that eigengap
    found: bool  # gap >= MIN_GAP: the trajectories keep to places

    def to_json(self) -> dict:
        return {"found": self.found, "places": self.count, "eigengap": round(self.gap, 4),
                "min_eigengap": MIN_GAP, "state_clusters": int(self.clusters.max()) + 1,
                "eigenvalues": [round(float(v), 6) for v in self.eigenvalues[:12]]}


def find_places(data: EpisodeData, lags: int, *, max_places: int = 10, min_fraction: float = 0.02,
                seed: int = 0) -> Places:
    """The places of ``data`` (see the module doc); ``found`` says whether it has any."""
    steps = Steps(data)
    n = len(steps)
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(n, size=min(n, FIT_STEPS), replace=False))
    features = steps.batch(fit_rows)[0].numpy()
    k = min(CLUSTERS, len(np.unique(features, axis=0)))
    if k < 3:  # too few distinct states to hold places
        return Places(np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(1), 1, 0.0, False)
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(features)
    clusters = np.concatenate([kmeans.predict(steps.batch(np.arange(lo, min(n, lo + CHUNK)))[0].numpy())
                               for lo in range(0, n, CHUNK)]).astype(np.int64)
    used = np.unique(clusters)
    weights = transition_counts(clusters, steps.episode, used, lags)
    node_place, eigenvalues, count = spectral_behaviours(
        weights, np.bincount(clusters)[used].astype(np.float64), max_behaviours=max_places,
        min_fraction=min_fraction, seed=seed)
    best = eigengap_count(eigenvalues, max_places)
    gap = float(eigenvalues[best] - eigenvalues[best - 1]) if len(eigenvalues) > best else 0.0
    lookup = np.zeros(int(used.max()) + 1, dtype=np.int64)
    lookup[used] = node_place
    return Places(lookup[clusters], clusters, eigenvalues, count, gap, gap >= MIN_GAP and count >= 2)
