"""The graph over VQ codes in use, whose clusters are the behaviours.

Edge weight = a * similarity of the code vectors + (1 - a) * how often the two codes follow
each other within an episode, each part scaled to a total weight of 1 so that ``a`` is the
share of edge weight that comes from similarity.

- Similarity: a Gaussian kernel on the Euclidean distance between code vectors,
  exp(-d^2 / (2 s^2)), with s^2 the median squared distance from a code to its nearest other
  code. This local bandwidth links codes that split one cluster of steps (near-duplicates)
  strongly and unrelated codes hardly at all; a global bandwidth or cosine would link
  everything to everything and blur the clusters.
- Transitions: counts of steps of one episode whose codes go i -> j within ``lags`` steps
  (t -> t+1, ..., t -> t+lags), self-transitions excluded, symmetrised (C + C^T).
  Normalised cut on these counts looks for sets of codes that the data rarely leaves, which
  is what a behaviour is. Counting only consecutive steps (lags = 1) links the codes of one
  behaviour as a chain when they follow a slowly changing quantity (a heading, a current),
  and a chain is easy to cut; counting every pair a few steps apart links them all to each
  other, so only the switches between behaviours stay weak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lagless.explain.spectral import spectral_behaviours


@dataclass
class CodeGraph:
    codes: np.ndarray  # (C,) code ids in use, ascending
    weights: np.ndarray  # (C, C) symmetric, zero diagonal, total weight 1
    counts: np.ndarray  # (C,) steps per code
    behaviour_of_code: np.ndarray  # (C,) behaviour id of each code in use
    eigenvalues: np.ndarray  # ascending eigenvalues of the normalised Laplacian
    num_behaviours: int
    similarity_weight: float

    def label_codes(self, codes: np.ndarray) -> np.ndarray:
        """Behaviour id of each step from its code."""
        lookup = np.zeros(int(self.codes.max()) + 1, dtype=np.int64)
        lookup[self.codes] = self.behaviour_of_code
        return lookup[codes]

    def to_json(self) -> dict:
        return {"codes": self.codes.tolist(), "weights": self.weights.tolist(),
                "behaviour_of_code": self.behaviour_of_code.tolist(),
                "eigenvalues": self.eigenvalues.tolist(), "similarity_weight": self.similarity_weight}


def code_similarity(vectors: np.ndarray) -> np.ndarray:
    """Gaussian kernel on distances, in [0, 1], zero diagonal (see module doc for the bandwidth)."""
    sq = ((vectors[:, None, :] - vectors[None, :, :]) ** 2).sum(-1)
    if len(vectors) < 2:
        return np.zeros_like(sq)
    nearest = np.sort(sq + np.diag(np.full(len(sq), np.inf)), axis=1)[:, 0]
    scale = float(np.median(nearest))
    sim = np.exp(-sq / (2 * max(scale, 1e-12)))
    np.fill_diagonal(sim, 0.0)
    return sim


def transition_counts(codes: np.ndarray, episode_ids: np.ndarray, used: np.ndarray,
                      lags: int = 1) -> np.ndarray:
    """Symmetrised counts of code changes i <-> j from a step to each of the next ``lags``
    steps of its episode."""
    index = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
    index[used] = np.arange(len(used))
    c = len(used)
    counts = np.zeros(c * c, dtype=np.float64)
    for lag in range(1, lags + 1):
        a, b = index[codes[:-lag]], index[codes[lag:]]
        keep = (episode_ids[:-lag] == episode_ids[lag:]) & (a != b)
        counts += np.bincount(a[keep] * c + b[keep], minlength=c * c)
    counts = counts.reshape(c, c)
    return counts + counts.T


def _unit_total(weights: np.ndarray) -> np.ndarray:
    total = weights.sum()
    return weights / total if total > 0 else weights


def build_code_graph(codes: np.ndarray, episode_ids: np.ndarray, codebook: np.ndarray, *,
                     similarity_weight: float = 0.5, lags: int = 1, behaviours: int | None = None,
                     max_behaviours: int = 10, min_fraction: float = 0.02,
                     seed: int = 0) -> CodeGraph:
    """Graph over the codes used in ``codes`` (N,), clustered into behaviours.

    ``behaviours`` forces the number of clusters (no merging); otherwise the eigengap picks
    it and clusters with fewer than ``min_fraction`` of the steps are merged.
    """
    used = np.flatnonzero(np.bincount(codes, minlength=len(codebook)))
    counts = np.bincount(codes, minlength=len(codebook))[used]
    weights = (similarity_weight * _unit_total(code_similarity(codebook[used]))
               + (1 - similarity_weight) * _unit_total(transition_counts(codes, episode_ids, used, lags)))
    behaviour_of_code, eigenvalues, k = spectral_behaviours(
        weights, counts, behaviours=behaviours, max_behaviours=max_behaviours,
        min_fraction=min_fraction, seed=seed)
    return CodeGraph(codes=used, weights=weights, counts=counts, behaviour_of_code=behaviour_of_code,
                     eigenvalues=eigenvalues, num_behaviours=k, similarity_weight=similarity_weight)
