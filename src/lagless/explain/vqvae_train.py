"""Training of the discovery VQ-VAE: updates on randomly sampled windows, as many as the data's size asks.

Updates grow with the square root of the dataset's size, capped (``DiscoverConfig.updates_for``),
not with epochs over every window; only one batch of windows is gathered at a time, so memory
stays flat however many steps there are.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm import tqdm

from lagless.explain.discover_config import DiscoverConfig
from lagless.explain.episodes import EpisodeData
from lagless.explain.vqvae import VQVAE, VQVAEConfig
from lagless.explain.windows import WindowBatcher
from lagless.runs import MetricsLogger

logger = logging.getLogger(__name__)

STAT_SAMPLES = 50_000  # steps sampled for the observation mean and std
RESTART_EVERY = 50  # updates between dead-code restarts
RESTART_UNTIL = 0.8  # no restarts in the last 20% of training, so codes settle
DEAD_FRACTION = 0.03  # a code is dead below this fraction of the average code's EMA count


def observation_stats(data: EpisodeData, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the flattened observations over a random sample.

    Float features get their own std (constant ones: 1). Grids of booleans or unsigned
    integers (MinAtar, Atari) share one std over all cells: a per-cell std would blow a
    rarely lit cell up to values of 100 and let it dominate the loss. So do observations
    stored as floats whose every sampled value is 0 or 1 (a MinAtar grid cast to float32).
    """
    n = data.num_steps
    idx = np.sort(rng.choice(n, size=min(n, STAT_SAMPLES), replace=False))
    sample = data.observations[idx].reshape(len(idx), -1).astype(np.float64)
    mean, std = sample.mean(0), sample.std(0)
    kind = data.observations.dtype
    grid = kind == np.bool_ or np.issubdtype(kind, np.unsignedinteger)
    if grid or ((sample == 0) | (sample == 1)).all():
        std[:] = sample.std()
    std[std < 1e-6] = 1.0
    return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)


def action_stats(data: EpisodeData) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of each continuous action dimension (constant ones: std 1)."""
    actions = np.asarray(data.actions, dtype=np.float64).reshape(data.num_steps, -1)
    mean, std = actions.mean(0), actions.std(0)
    std[std < 1e-6] = 1.0
    return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)


def random_windows(bounds: np.ndarray, episode: np.ndarray, count: int, window: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` windows (starts, lengths) at uniformly random steps, inside their episodes.

    ``bounds`` and ``episode`` are the data's ``episode_bounds()`` and ``episode_ids()``.

    A window starting too close to its episode's end is moved back so it is full length
    where the episode is long enough.
    """
    t = rng.integers(0, len(episode), size=count)
    first, end = bounds[episode[t], 0], bounds[episode[t], 1]
    starts = np.maximum(first, np.minimum(t, end - window))
    lengths = np.minimum(window, end - starts)
    return starts.astype(np.int64), lengths.astype(np.int64)


def build_model(data: EpisodeData, config: DiscoverConfig) -> VQVAE:
    obs_dim = int(np.prod(data.observations.shape[1:]))
    return VQVAE(VQVAEConfig(
        obs_dim=obs_dim, num_actions=data.num_actions, discrete_actions=data.discrete_actions,
        window=config.window, d_model=config.d_model, layers=config.layers, heads=config.heads,
        code_dim=config.code_dim, codebook_size=config.codebook_size,
        ema_decay=config.ema_decay, commitment=config.commitment, horizon=config.horizon,
        action_weight=config.action_weight, state_weight=config.state_weight,
        decoder_sees_action=config.decoder_sees_action))


def train_vqvae(data: EpisodeData, config: DiscoverConfig,
                metrics: MetricsLogger | None = None) -> VQVAE:
    """A VQ-VAE trained for ``config.updates_for(steps)`` updates; deterministic for ``config.seed``."""
    updates = config.updates_for(data.num_steps)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = build_model(data, config)
    model.set_normalisation(*observation_stats(data, rng))
    if not data.discrete_actions:
        model.set_action_normalisation(*action_stats(data))
    batcher = WindowBatcher(data)
    bounds, episode = data.episode_bounds(), data.episode_ids()

    look_ahead = config.window + config.horizon  # targets for the window's last steps too

    def random_batch() -> dict[str, torch.Tensor]:
        starts, lengths = random_windows(bounds, episode, config.batch_size, config.window, rng)
        lengths = np.minimum(look_ahead, bounds[episode[starts], 1] - starts)
        return batcher.batch(starts, lengths, look_ahead)

    # Initialise the codebook from encoder outputs of real steps, so no code starts far away.
    first = random_batch()
    with torch.no_grad():
        z = model.encode_tensors(first["obs"][:, :config.window], first["actions"][:, :config.window])
        model.quantizer.restart_dead(z[first["mask"][:, :config.window]], float("inf"), generator)

    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    log_every = max(1, updates // 50)
    average_count = config.batch_size * config.window / config.codebook_size
    model.train()
    bar = tqdm(total=updates, desc="training VQ-VAE", unit="update", disable=not config.progress)
    for update in range(1, updates + 1):
        out = model(random_batch())
        optimiser.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        restarted = 0
        if update % RESTART_EVERY == 0 and update <= RESTART_UNTIL * updates:
            restarted = model.quantizer.restart_dead(out["z"].detach(), DEAD_FRACTION * average_count,
                                                     generator)
        if metrics is not None and (update % log_every == 0 or update == updates):
            metrics.log(update, {"explain/recon_mse": out["recon"].item(),
                                 "explain/commitment": out["commitment"].item(),
                                 "explain/batch_perplexity": perplexity(out["codes"], config.codebook_size),
                                 "explain/codes_restarted": restarted})
        bar.update(1)
        bar.set_postfix(recon=f"{out['recon'].item():.4f}", refresh=False)
    bar.close()
    logger.info("trained the VQ-VAE for %d updates", updates)
    return model.eval()


def perplexity(codes: torch.Tensor | np.ndarray, codebook_size: int) -> float:
    """exp(entropy) of the code histogram: the effective number of codes in use."""
    counts = np.bincount(np.asarray(codes).ravel(), minlength=codebook_size).astype(np.float64)
    if counts.sum() == 0:
        return 0.0
    p = counts[counts > 0] / counts.sum()
    return float(np.exp(-(p * np.log(p)).sum()))
