"""The layers ("stages") that a network is built from: one stage fires once per agent step.

A convolutional stage runs exactly one convolution, so a pipelined CNN never runs several
convolutions in series within one step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lagless.realtime.observations import ObsLayout

CONV_CHANNELS = 16  # MinAtar's reference network: one 3x3 conv with 16 channels


def init_linear(layer: nn.Linear, std: float = math.sqrt(2.0)) -> nn.Linear:
    """Orthogonal weights and zero bias, as in CleanRL's PPO."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.zeros_(layer.bias)
    return layer


class LinearStage(nn.Module):
    """A dense layer with ReLU: ``relu(W x + b)``."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear = init_linear(nn.Linear(in_dim, out_dim))
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place: the matmul's backward does not need its output. On a 3-D input nn.Linear
        # returns a view, and relu_ on a view makes the backward clone and copy the gradient
        # per layer; a 2-D matmul reshaped back avoids that (same values, 2% faster in SAC)
        y = self.linear(x.reshape(-1, x.shape[-1]))
        return torch.relu_(y).reshape(*x.shape[:-1], y.shape[-1])


class ConvStage(nn.Module):
    """One 3x3 convolution over the image part of a flat observation; extras pass through.

    Output: ``[relu(conv(image)) flattened in HWC order | extras]``.
    """

    FLATTEN = "hwc"  # part of the network layout id: a different order reads saved weights wrongly

    def __init__(self, layout: ObsLayout, channels: int = CONV_CHANNELS):
        super().__init__()
        assert layout.image_shape is not None
        self.layout = layout
        h, w, c = layout.image_shape
        self.conv = nn.Conv2d(c, channels, kernel_size=3, padding=1)
        nn.init.orthogonal_(self.conv.weight, math.sqrt(2.0))
        nn.init.zeros_(self.conv.bias)
        self.out_dim = channels * h * w + layout.extra_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w, c = self.layout.image_shape
        lead = x.shape[:-1]
        # the HWC image viewed as NCHW is channels-last memory: the conv keeps that layout, and
        # flattening its output in HWC order is then a view, not a copy
        image = x[..., : self.layout.image_dim].reshape(-1, h, w, c).permute(0, 3, 1, 2)
        feats = torch.relu_(self.conv(image)).permute(0, 2, 3, 1).reshape(*lead, -1)
        if self.layout.extra_dim == 0:
            return feats
        return torch.cat([feats, x[..., self.layout.image_dim :]], dim=-1)


class HeadStage(nn.Module):
    """The output layer: logits, an action mean, or a value. Small init for policies.

    It always computes in float32, also under a bfloat16 autocast: bfloat16 keeps 8 bits of
    mantissa, so a value of 20 would be rounded to a multiple of 0.125 and logits would move
    by more than PPO's ratio can tell from a real change. The layer is small; float32 is cheap.
    """

    def __init__(self, in_dim: int, out_dim: int, std: float):
        super().__init__()
        self.linear = init_linear(nn.Linear(in_dim, out_dim), std)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.linear(x.float())
