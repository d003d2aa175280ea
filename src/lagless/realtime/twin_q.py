"""Twin Q critics computed as one batched network: each layer is one ``baddbmm`` for both.

SAC evaluates two critics (and two targets) several times per update; stacking their
weights turns 2 x L small matmuls into L batched ones, which is what dominates an update's
cost on a CPU at these sizes.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn


class TwinQ(nn.Module):
    """``count`` independent MLPs ``Q(obs, action)`` with ReLU hidden layers, evaluated together."""

    def __init__(self, in_dim: int, hidden: int, layers: int, count: int = 2):
        super().__init__()
        dims = [in_dim] + [hidden] * (layers - 1) + [1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for d_in, d_out in itertools.pairwise(dims):
            bound = 1 / math.sqrt(d_in)  # nn.Linear's default initialisation, per critic
            self.weights.append(nn.Parameter(torch.empty(count, d_in, d_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(count, 1, d_out).uniform_(-bound, bound)))
        self.count = count

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``obs [..., D]`` and ``action [..., A]`` -> ``[count, ...]`` Q-values."""
        x = torch.cat([obs, action], dim=-1)
        lead = x.shape[:-1]
        x = x.reshape(1, -1, x.shape[-1]).expand(self.count, -1, -1)
        last = len(self.weights) - 1
        for i in range(last):  # indexing, not slicing: a sliced ParameterList is a new module per call
            x = torch.relu_(torch.baddbmm(self.biases[i], x, self.weights[i]))  # in place: not needed by backward
        with torch.autocast(x.device.type, enabled=False):  # Q-values in float32 under --precision bf16
            x = torch.baddbmm(self.biases[last], x.float(), self.weights[last])
        return x.reshape(self.count, *lead)
