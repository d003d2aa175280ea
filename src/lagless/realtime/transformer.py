"""A gated transformer (GTrXL-style) with an explicit memory of past steps: the ALD learner.

Parisotto et al. (2020) stabilise transformers for RL with pre-norm sublayers and GRU-type
gates in place of residual additions, the update gate's bias set to about 2 so that each
block starts close to the identity. Each layer attends, causally, to its own inputs of the
last ``memory`` steps (the cached memory) and of the current step.

The state is the cache: per layer the inputs of the last ``memory`` steps ``[B, M, H]`` plus
a validity mask ``[B, M]``. Steps from before an episode start are never attended to, so
acting one step at a time with the cache gives the same outputs as ``forward_sequence`` over
the whole stretch (a test checks this). Positions enter as a learned per-head bias on the
attention logits for each distance 0..memory (relative position bias, as in T5: Raffel et
al., 2020), which works the same in both modes. It starts as ALiBi's linear penalty (Press et
al., 2022), a recency preference, and can learn to single out one distance, which a linear
penalty cannot: "the observation k steps ago" (POPGym's RepeatPrevious) needs that. TrXL uses
sinusoidal relative encodings instead.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lagless.realtime.module_device import DeviceAware
from lagless.realtime.observations import ObsLayout

GATE_BIAS = 2.0  # GTrXL's update-gate bias: blocks start near the identity map


class GRUGate(nn.Module):
    """g(x, y) = (1 - z) * x + z * h, with z biased toward keeping x (GTrXL, eq. 8-11)."""

    def __init__(self, dim: int, bias: float = GATE_BIAS):
        super().__init__()
        self.w = nn.Linear(dim, 3 * dim, bias=False)  # W_r, W_z, W_g applied to y
        self.u = nn.Linear(dim, 2 * dim, bias=False)  # U_r, U_z applied to x
        self.u_g = nn.Linear(dim, dim, bias=False)  # U_g applied to r * x
        self.gate_bias = nn.Parameter(torch.full((dim,), bias))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        wr, wz, wg = self.w(y).chunk(3, dim=-1)
        ur, uz = self.u(x).chunk(2, dim=-1)
        r = torch.sigmoid(wr + ur)
        z = torch.sigmoid(wz + uz - self.gate_bias)
        h = torch.tanh(wg + self.u_g(r * x))
        return (1 - z) * x + z * h


class GatedBlock(nn.Module):
    """Pre-norm multi-head attention over memory + sequence, then a pre-norm MLP, each gated."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim))
        self.gate1, self.gate2 = GRUGate(dim), GRUGate(dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``x [B, T, H]``, ``memory [B, M, H]``, ``bias [B, heads, T, M + T]`` (-inf where masked)."""
        B, T, H = x.shape
        ctx = self.norm1(torch.cat([memory, x], dim=1))
        q, k, v = self.qkv(ctx).chunk(3, dim=-1)
        q = q[:, -T:]

        def split(t):
            return t.reshape(B, t.shape[1], self.heads, H // self.heads).transpose(1, 2)

        att = nn.functional.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=bias)
        y = self.proj(att.transpose(1, 2).reshape(B, T, H))
        x = self.gate1(x, torch.relu(y))
        return self.gate2(x, torch.relu(self.mlp(self.norm2(x))))


class GTrXLNet(DeviceAware):
    """Embedding, ``blocks`` gated transformer blocks with a cached memory, and the head."""

    min_delay = 0

    def __init__(self, layout: ObsLayout, blocks: int, dim: int, heads: int, memory: int, head: nn.Module):
        super().__init__()
        if dim % heads:
            raise ValueError(f"the width ({dim}) must be a multiple of the heads ({heads})")
        self.layout = layout
        self.embed = nn.Linear(layout.flat_dim, dim)
        self.blocks = nn.ModuleList(GatedBlock(dim, heads) for _ in range(blocks))
        self.head = head
        self.dim, self.heads, self.memory = dim, heads, memory
        self.out_dim = head.out_dim
        self.max_delay = memory
        self.delays = list(range(memory + 1))
        self.positions = "learned bias per distance"  # part of the checkpoint layout id
        # [heads, memory + 1], started at ALiBi's slopes (a geometric series per head) times the distance
        slopes = torch.tensor([2 ** (-8 * (i + 1) / heads) for i in range(heads)])
        self.distance_bias = nn.Parameter(-slopes.view(-1, 1) * torch.arange(memory + 1.0).view(1, -1))

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu"):
        """Per block the cached inputs ``[B, M, H]``, then the cache's validity ``[B, M]`` (all empty)."""
        mems = tuple(torch.zeros(batch_size, self.memory, self.dim, device=device) for _ in self.blocks)
        return (*mems, torch.zeros(batch_size, self.memory, device=device))

    @staticmethod
    def reset_state(state, episode_start: torch.Tensor):
        keep = (~episode_start.bool()).float()
        return tuple(s * keep.view(-1, *([1] * (s.dim() - 1))) for s in state)

    def forward(self, obs, state, episode_start: torch.Tensor | None = None):
        x = self.layout.flatten(obs, batch_dims=1, device=self.device)
        starts = None if episode_start is None else episode_start.reshape(1, -1)
        out, state = self.forward_sequence(x.unsqueeze(0), state, starts)
        return out[0], state

    def _bias(self, valid: torch.Tensor, starts: torch.Tensor, T: int) -> torch.Tensor:
        """Additive attention mask ``[B, heads, T, M + T]``: causal, within ``memory`` steps, one episode."""
        B, M = valid.shape
        dev = valid.device
        seg = torch.cumsum(starts.long(), dim=1)  # [B, T]: episode starts seen up to each step
        t = torch.arange(T, device=dev)
        # distance from query t to key: memory slot j is (M - j) steps before the sequence
        key_pos = torch.cat([torch.arange(-M, 0, device=dev), t])  # [M + T]
        dist = t.view(T, 1) - key_pos.view(1, M + T)  # [T, M + T]
        ok = (dist >= 0) & (dist <= M)
        ok = ok.unsqueeze(0).expand(B, T, M + T).clone()
        ok[:, :, :M] &= (valid.bool().unsqueeze(1) & (seg == 0).unsqueeze(2))
        ok[:, :, M:] &= seg.unsqueeze(2) == seg.unsqueeze(1)
        bias = self.distance_bias[:, dist.clamp(0, M)].unsqueeze(0)  # [1, heads, T, M + T]
        return bias.masked_fill(~ok.unsqueeze(1), float("-inf"))

    def forward_sequence(self, obs, state, episode_start: torch.Tensor | None = None):
        """``obs [T, B, ...]``, ``episode_start [T, B]`` -> ``(out [T, B, out], state after the last step)``."""
        x = self.layout.flatten(obs, batch_dims=2, device=self.device)
        T, B = x.shape[:2]
        starts = (torch.zeros(B, T, dtype=torch.bool, device=x.device) if episode_start is None
                  else episode_start.to(x.device).bool().T)
        *mems, valid = state
        bias = self._bias(valid, starts, T)
        h = self.embed(x).transpose(0, 1)  # [B, T, H]
        new_mems = []
        for block, mem in zip(self.blocks, mems):
            new_mems.append(torch.cat([mem, h], dim=1)[:, -self.memory:])
            h = block(h, mem, bias)
        seg = torch.cumsum(starts.long(), dim=1)
        still = (seg[:, -1:] == 0).float()  # no start in this stretch: the old memory stays valid
        seq_valid = (seg == seg[:, -1:]).float()  # steps of the episode in progress at the end
        new_valid = torch.cat([valid * still, seq_valid], dim=1)[:, -self.memory:]
        return self.head(h.transpose(0, 1)), (*new_mems, new_valid)


def init_transformer(net: GTrXLNet) -> GTrXLNet:
    """Xavier weights for the projections (transformers' usual start); the gates keep their bias."""
    for name, p in net.named_parameters():
        if p.dim() == 2 and not name.startswith("head") and name != "distance_bias":
            nn.init.xavier_uniform_(p, gain=1 / math.sqrt(2) if "qkv" in name else 1.0)
    return net
