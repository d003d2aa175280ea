"""Code (and optionally embed) every step of a dataset once, streaming windows in batches.

Windows overlap by ``overlap`` steps inside an episode: a window re-reads the last steps of
the previous one as context and only writes the steps after them, so every step is written
exactly once and, past an episode's first window, always with at least ``overlap`` steps of
history. Results go into preallocated (N,) arrays by global step index; no more than one
batch of windows is held at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from lagless.explain.episodes import EpisodeData
from lagless.explain.vqvae import VQVAE, batch_field
from lagless.explain.windows import episode_windows, iter_window_batches


@dataclass
class StepEncoding:
    codes: np.ndarray  # (N,) int64 code per step
    sq_error: np.ndarray  # (N,) float32 next-state MSE (normalised units); NaN where unknown
    embeddings: np.ndarray | None  # (N, code_dim) float32 pre-quantisation embeddings, if asked

    def reconstruction_mse(self) -> float:
        known = self.sq_error[np.isfinite(self.sq_error)]
        return float(known.mean()) if len(known) else float("nan")


def overlapping_windows(data: EpisodeData, window: int, overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of windows with stride ``window - overlap``, never crossing an episode.

    Without overlap these are the disjoint windows of ``episode_windows``.
    """
    if overlap == 0:
        return episode_windows(data, window)
    stride = window - overlap
    bounds = data.episode_bounds()
    sizes = bounds[:, 1] - bounds[:, 0]
    counts = 1 + np.maximum(0, -(-(sizes - window) // stride))  # ceil division
    episode = np.repeat(np.arange(len(bounds)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    starts = bounds[episode, 0] + k * stride
    lengths = np.minimum(window, bounds[episode, 1] - starts)
    return starts.astype(np.int64), lengths.astype(np.int64)


@torch.inference_mode()
def encode_steps(model: VQVAE, data: EpisodeData, *, overlap: int | None = None,
                 batch_size: int = 256, embeddings: bool = False, progress: bool = False) -> StepEncoding:
    """Code of every step (and its embedding, if asked), with the model's window length.

    ``overlap`` defaults to half the window.
    """
    window = model.config.window
    overlap = window // 2 if overlap is None else overlap
    starts, lengths = overlapping_windows(data, window, overlap)
    episode_start = np.zeros(data.num_steps + 1, dtype=bool)
    episode_start[data.episode_bounds()[:, 0]] = True
    n = data.num_steps
    codes = np.full(n, -1, dtype=np.int64)
    sq_error = np.full(n, np.nan, dtype=np.float32)
    emb = np.zeros((n, model.config.code_dim), dtype=np.float32) if embeddings else None
    model.eval()
    bar = tqdm(total=n, desc="coding steps", unit="step", disable=not progress)
    for batch in iter_window_batches(data, starts, lengths, window, batch_size=batch_size):
        step = batch_field(batch, "step_index").long()
        owned = batch_field(batch, "mask").bool().clone()
        later = ~torch.as_tensor(episode_start[step[:, 0].numpy()])
        owned[later, :overlap] = False  # context re-read from the previous window
        z, c = model.encode(batch)
        q = model.quantizer.codebook[c[owned]]
        obs = batch_field(batch, "obs")[owned]
        pred = model.decode(q, obs, batch_field(batch, "actions")[owned])
        err = (pred[:, 0] - model.normalise(batch_field(batch, "next_obs")[owned])).pow(2).mean(-1)
        err[~batch_field(batch, "next_mask")[owned].bool()] = float("nan")
        idx = step[owned].numpy()
        codes[idx] = c[owned].numpy()
        sq_error[idx] = err.numpy()
        if emb is not None:
            emb[idx] = z[owned].numpy()
        bar.update(len(idx))
    bar.close()
    if (codes < 0).any():
        raise RuntimeError(f"{int((codes < 0).sum())} steps were not coded; the windows do not cover them")
    return StepEncoding(codes=codes, sq_error=sq_error, embeddings=emb)
