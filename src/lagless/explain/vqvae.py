"""A small causal-transformer VQ-VAE that turns every (state, action) step into a codebook entry.

Behaviour discovery (Rishav et al. 2025) clusters these codes. The encoder reads a window of
per-step (state, action) embeddings (actions one-hot when discrete) with causal attention, so
a step's code depends only on the past and present of its episode. Quantisation uses an EMA
codebook (a running k-means, steadier than learning code vectors by gradient) with a
commitment loss and restarts of dead codes from recent encoder outputs.

The decoder predicts the next state from the quantised code and the current state, as a
residual on the normalised current state, so the code has to carry what the step does to
the world rather than the state itself. With ``horizon`` H > 1 it also predicts the H - 1
states after that (from the same window; the paper's decoder predicts future states): a
code then says where the agent is heading, not only what its last action did, which keeps
the same action in different behaviours on different codes. ``recon`` and the reported
reconstruction MSE are always for the next state alone, in normalised units.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save
from torch import nn

from lagless import __version__
from lagless.errors import LaglessError
from lagless.runs import atomic_write_bytes, atomic_write_json

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "model.json"
FORMAT = "lagless.explain.vqvae"
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # bounds of the policy head's log std (normalised actions)


@dataclass
class VQVAEConfig:
    """Everything needed to rebuild the network; saved as ``model.json``."""

    obs_dim: int
    num_actions: int  # discrete action count, or the size of a continuous action
    discrete_actions: bool = True
    window: int = 32
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    code_dim: int = 32
    codebook_size: int = 64
    ema_decay: float = 0.99
    commitment: float = 0.25
    decoder_hidden: int = 128
    horizon: int = 4  # future states the decoder predicts: s[t+1] .. s[t+horizon]
    action_weight: float = 0.0  # weight of predicting a[t+1..t+horizon] (0: no policy head)
    state_weight: float = 0.0  # weight of reconstructing s[t] from the code alone (0: no state head)
    decoder_sees_action: bool = False  # the state decoder also reads a[t], so codes need not carry it


class EMAQuantizer(nn.Module):
    """Nearest-neighbour vector quantisation with a codebook kept as an EMA of assigned vectors."""

    def __init__(self, codebook_size: int, code_dim: int, decay: float, eps: float = 1e-5) -> None:
        super().__init__()
        self.decay, self.eps = decay, eps
        embed = torch.randn(codebook_size, code_dim) * 0.1
        self.register_buffer("codebook", embed.clone())
        self.register_buffer("ema_count", torch.ones(codebook_size))
        self.register_buffer("ema_sum", embed.clone())

    def assign(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of ``z`` (M, code_dim)."""
        d = (z.pow(2).sum(1, keepdim=True) - 2 * z @ self.codebook.T
             + self.codebook.pow(2).sum(1)[None])
        return d.argmin(1)

    @torch.no_grad()
    def ema_update(self, z: torch.Tensor, codes: torch.Tensor) -> None:
        """Move each used code towards the mean of the vectors assigned to it (running k-means)."""
        onehot = F.one_hot(codes, self.codebook.shape[0]).type(z.dtype)
        self.ema_count.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(onehot.T @ z, alpha=1 - self.decay)
        n = self.ema_count.sum()
        # Laplace smoothing keeps counts positive so no code divides by zero.
        count = (self.ema_count + self.eps) / (n + self.codebook.shape[0] * self.eps) * n
        self.codebook.copy_(self.ema_sum / count[:, None])

    @torch.no_grad()
    def restart_dead(self, z: torch.Tensor, min_count: float, generator: torch.Generator) -> int:
        """Re-seed codes whose EMA count fell below ``min_count`` with random recent inputs."""
        dead = torch.nonzero(self.ema_count < min_count).flatten()
        if len(dead) == 0 or len(z) == 0:
            return 0
        pick = torch.randint(len(z), (len(dead),), generator=generator)
        self.codebook[dead] = z[pick]
        self.ema_sum[dead] = z[pick]
        self.ema_count[dead] = 1.0
        return len(dead)


class VQVAE(nn.Module):
    """Causal transformer encoder -> EMA vector quantiser -> next-state decoder."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        c = self.config = config
        if c.d_model % c.heads:
            raise LaglessError(f"d_model ({c.d_model}) must be a multiple of heads ({c.heads})")
        self.register_buffer("obs_mean", torch.zeros(c.obs_dim))
        self.register_buffer("obs_std", torch.ones(c.obs_dim))
        self.input = nn.Linear(c.obs_dim + c.num_actions, c.d_model)
        self.position = nn.Parameter(torch.randn(c.window, c.d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(c.d_model, c.heads, dim_feedforward=4 * c.d_model,
                                           dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.to_code = nn.Sequential(nn.LayerNorm(c.d_model), nn.Linear(c.d_model, c.code_dim))
        self.quantizer = EMAQuantizer(c.codebook_size, c.code_dim, c.ema_decay)
        self.decoder = nn.Sequential(
            nn.Linear(c.code_dim + c.obs_dim + (c.num_actions if c.decoder_sees_action else 0),
                      c.decoder_hidden), nn.GELU(),
            nn.Linear(c.decoder_hidden, c.decoder_hidden), nn.GELU(),
            nn.Linear(c.decoder_hidden, c.horizon * c.obs_dim))
        if c.action_weight > 0:
            # Predicts a[t+k] from step t's code, s[t+k] and k: the code must say how the agent
            # acts in the coming steps (its policy), not only what it just did.
            self.register_buffer("act_mean", torch.zeros(c.num_actions))
            self.register_buffer("act_std", torch.ones(c.num_actions))
            self.policy_head = nn.Sequential(
                nn.Linear(c.code_dim + c.obs_dim + c.horizon, c.decoder_hidden), nn.GELU(),
                nn.Linear(c.decoder_hidden, c.decoder_hidden), nn.GELU(),
                nn.Linear(c.decoder_hidden, c.num_actions * (1 if c.discrete_actions else 2)))
        if c.state_weight > 0:
            # Rebuilds the current state from the code alone: codes then also say where the
            # agent is, so behaviours that differ only by region of the state are separable.
            self.state_head = nn.Sequential(nn.Linear(c.code_dim, c.decoder_hidden), nn.GELU(),
                                            nn.Linear(c.decoder_hidden, c.obs_dim))
        self.register_buffer("causal_mask", torch.triu(torch.full((c.window, c.window), float("-inf")), 1))

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.obs_mean.copy_(mean)
        self.obs_std.copy_(std)

    def set_action_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        if hasattr(self, "act_mean"):
            self.act_mean.copy_(mean)
            self.act_std.copy_(std)

    def normalise(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def _action_features(self, actions: torch.Tensor) -> torch.Tensor:
        if self.config.discrete_actions:
            return F.one_hot(actions.long().clamp(0, self.config.num_actions - 1),
                             self.config.num_actions).float()
        return actions.float()

    def encode_tensors(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Pre-quantisation embedding (B, L, code_dim) of each step; padding must come last."""
        length = obs.shape[1]
        if length > self.config.window:
            raise LaglessError(f"windows of {length} steps are longer than the model's {self.config.window}")
        x = torch.cat([self.normalise(obs), self._action_features(actions)], dim=-1)
        h = self.input(x) + self.position[:length]
        # Causal attention: padding sits after the real steps, so it never reaches them.
        h = self.encoder(h, mask=self.causal_mask[:length, :length], is_causal=True)
        return self.to_code(h)

    def encode(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre-quantisation embeddings (B, L, code_dim), codes (B, L)) of a window batch."""
        z = self.encode_tensors(batch_field(batch, "obs"), batch_field(batch, "actions"))
        codes = self.quantizer.assign(z.reshape(-1, z.shape[-1])).reshape(z.shape[:-1])
        return z, codes

    def decode(self, code_vectors: torch.Tensor, obs: torch.Tensor,
               actions: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted normalised states s[t+1..t+horizon] (..., horizon, obs_dim), each the current
        normalised state plus a learned change; ``actions`` (a[t]) is read when the config says so."""
        current = self.normalise(obs)
        parts = [code_vectors, current]
        if self.config.decoder_sees_action:
            if actions is None:
                raise LaglessError("this VQ-VAE's decoder reads the current action: pass actions")
            parts.append(self._action_features(actions))
        change = self.decoder(torch.cat(parts, dim=-1))
        return current.unsqueeze(-2) + change.unflatten(-1, (self.config.horizon, self.config.obs_dim))

    def future_targets(self, batch: Any, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised s[t+k] (B, length, horizon, D) of the first ``length`` steps, and where
        they are known (B, length, horizon).

        k = 1 is the batch's next observation; later ones come from the batch's later steps
        (which never cross an episode). A batch longer than ``length`` is look-ahead: it gives
        the last encoded steps their targets too.
        """
        obs, mask = self.normalise(batch_field(batch, "obs")), batch_field(batch, "mask").bool()
        full = obs.shape[1]
        targets = obs.new_zeros(obs.shape[0], length, self.config.horizon, obs.shape[-1])
        known = mask.new_zeros(obs.shape[0], length, self.config.horizon)
        targets[:, :, 0] = self.normalise(batch_field(batch, "next_obs")[:, :length])
        known[:, :, 0] = batch_field(batch, "next_mask")[:, :length].bool() & mask[:, :length]
        for k in range(2, min(self.config.horizon, full - 1) + 1):
            n = min(length, full - k)
            targets[:, :n, k - 1] = obs[:, k:k + n]
            known[:, :n, k - 1] = mask[:, k:k + n]  # padding comes last, so step t is real too
        return targets, known

    def forward(self, batch: Any) -> dict[str, torch.Tensor]:
        """Losses and codes of a batch; in training mode the EMA codebook is updated too.

        The first ``window`` steps are encoded; steps after them (a batch of window + horizon
        steps) only serve as targets. ``recon`` is the next-state MSE; ``loss`` uses every
        known future state.
        """
        obs, mask = batch_field(batch, "obs"), batch_field(batch, "mask").bool()
        actions = batch_field(batch, "actions")
        length = min(obs.shape[1], self.config.window)
        obs_in, actions_in, mask_in = obs[:, :length], actions[:, :length], mask[:, :length]
        z = self.encode_tensors(obs_in, actions_in)
        flat = z[mask_in]
        codes = self.quantizer.assign(flat.detach())
        if self.training:
            self.quantizer.ema_update(flat.detach(), codes)
        q = self.quantizer.codebook[codes]
        commitment = F.mse_loss(flat, q)
        q_st = flat + (q - flat).detach()  # straight-through gradient to the encoder
        pred = self.decode(q_st, obs_in[mask_in], actions_in[mask_in])
        targets, known = self.future_targets(batch, length)
        err = (pred - targets[mask_in]).pow(2).mean(-1)
        known = known[mask_in].float()
        future = (err * known).sum() / known.sum().clamp(min=1.0)
        recon = (err[:, 0] * known[:, 0]).sum() / known[:, 0].sum().clamp(min=1.0)
        loss = future + self.config.commitment * commitment
        out = {"recon": recon, "commitment": commitment, "codes": codes, "z": flat}
        if self.config.action_weight > 0:
            out["policy"] = self.policy_loss(batch, q_st, mask_in)
            loss = loss + self.config.action_weight * out["policy"]
        if self.config.state_weight > 0:
            out["state"] = (self.state_head(q_st) - self.normalise(obs_in[mask_in])).pow(2).mean()
            loss = loss + self.config.state_weight * out["state"]
        out["loss"] = loss
        return out

    def policy_loss(self, batch: Any, code_vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Error of predicting a[t+k] (k = 1..horizon, look-ahead included) from step t's code
        and s[t+k]: cross-entropy for discrete actions, and for continuous ones the negative log
        likelihood of a diagonal Gaussian in normalised units (mean and spread both predicted:
        steering straight and wandering have the same mean next action, not the same spread).
        ``mask`` (B, L) marks the encoded steps whose ``code_vectors`` are given."""
        obs, actions = batch_field(batch, "obs"), batch_field(batch, "actions")
        full_mask = batch_field(batch, "mask").bool()
        c, (b, length), full = self.config, mask.shape, obs.shape[1]
        codes = obs.new_zeros(b, length, c.code_dim)
        codes[mask] = code_vectors
        total, count = obs.new_zeros(()), obs.new_zeros(())
        for k in range(1, min(c.horizon, full - 1) + 1):
            n = min(length, full - k)
            known = full_mask[:, k:k + n] & mask[:, :n]
            if not known.any():
                continue
            ahead = F.one_hot(torch.full((int(known.sum()),), k - 1), c.horizon).float()
            x = torch.cat([codes[:, :n][known], self.normalise(obs[:, k:k + n][known]), ahead], dim=-1)
            pred, target = self.policy_head(x), actions[:, k:k + n][known]
            if c.discrete_actions:
                err = F.cross_entropy(pred, target.long().clamp(0, c.num_actions - 1), reduction="sum")
            else:  # Gaussian likelihood: the spread of the next actions tells policies apart too
                err = gaussian_nll_terms(pred, (target.float() - self.act_mean) / self.act_std).mean(-1).sum()
            total, count = total + err, count + known.sum()
        return total / count.clamp(min=1.0)


def gaussian_nll_terms(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-dimension negative log-likelihood (without the constant) of ``target`` under a
    diagonal Gaussian whose mean and log std are the two halves of ``pred``'s last axis, the
    log std clamped to [LOG_STD_MIN, LOG_STD_MAX] so that a near-constant action cannot blow up."""
    mean, log_std = pred.chunk(2, dim=-1)
    log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
    return 0.5 * ((target - mean) * torch.exp(-log_std)).pow(2) + log_std


def batch_field(batch: Any, name: str) -> torch.Tensor:
    """A field of a window batch, whether the batcher yields a mapping or an object."""
    value = batch[name] if isinstance(batch, dict) else getattr(batch, name)
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


def save_vqvae(model: VQVAE, out_dir: str | Path) -> None:
    """Write ``model.safetensors`` (weights and buffers) and ``model.json`` (its config)."""
    out = Path(out_dir)
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write_bytes(out / MODEL_FILE, save(tensors, metadata={"format": FORMAT}))
    atomic_write_json(out / CONFIG_FILE, {"format": FORMAT, "lagless_version": __version__,
                                          "config": asdict(model.config)})


def load_vqvae(out_dir: str | Path) -> VQVAE:
    """The VQ-VAE saved in ``out_dir`` by ``lagless explain discover``, in eval mode."""
    out = Path(out_dir)
    if not (out / CONFIG_FILE).is_file() or not (out / MODEL_FILE).is_file():
        raise LaglessError(f"{out} holds no VQ-VAE ({CONFIG_FILE} and {MODEL_FILE}): "
                           "run 'lagless explain discover' into it first")
    try:
        meta = json.loads((out / CONFIG_FILE).read_text())
        config = VQVAEConfig(**meta["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise LaglessError(f"{out / CONFIG_FILE} is not a VQ-VAE config ({e}); run discovery again") from None
    model = VQVAE(config)
    try:
        model.load_state_dict(load_file(str(out / MODEL_FILE)))
    except (RuntimeError, OSError) as e:
        raise LaglessError(f"{out / MODEL_FILE} does not match {CONFIG_FILE} ({e}); run discovery again") from None
    return model.eval()
