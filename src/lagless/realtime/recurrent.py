"""An ordinary recurrent (LSTM) actor: the reference for agents with memory and no delay."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from lagless.realtime.episode_state import reset_state
from lagless.realtime.module_device import DeviceAware
from lagless.realtime.observations import ObsLayout

UNBOUNDED_DELAY = 2**31 - 1  # max_delay of a network with memory: any past observation counts


class LSTMNet(DeviceAware):
    """Encoder stages, one LSTM layer, then the head; all computed within the step (delay 0).

    State is ``(h, c)``; ``episode_start`` zeroes it before the step, so nothing from a
    previous episode leaks into a new one.
    """

    min_delay = 0
    max_delay = UNBOUNDED_DELAY

    def __init__(self, layout: ObsLayout, encoder: list[nn.Module], hidden: int, head: nn.Module):
        super().__init__()
        self.layout = layout
        self.encoder = nn.Sequential(*encoder)
        in_dim = encoder[-1].out_dim if encoder else layout.flat_dim
        self.lstm = nn.LSTM(in_dim, hidden)
        for name, p in self.lstm.named_parameters():
            if "bias" in name:
                nn.init.zeros_(p)
            else:
                nn.init.orthogonal_(p, 1.0)
        self.head = head
        self.hidden = hidden
        self.out_dim = head.out_dim
        self.delays = [0]

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu"):
        z = torch.zeros(batch_size, self.hidden, device=device)
        return (z, z.clone())

    reset_state = staticmethod(reset_state)  # zero (h, c) where an episode starts

    def forward(self, obs, state, episode_start: torch.Tensor | None = None):
        x = self.layout.flatten(obs, batch_dims=1, device=self.device)
        starts = None if episode_start is None else episode_start.reshape(1, -1)
        out, state = self.forward_sequence(x.unsqueeze(0), state, starts)
        return out[0], state

    def forward_sequence(self, obs, state, episode_start: torch.Tensor | None = None):
        x = self.layout.flatten(obs, batch_dims=2, device=self.device)
        feats = self.encoder(x)  # no recurrence in the encoder: all steps at once
        h, c = state
        outs = []
        # nn.LSTM runs a whole stretch of steps in one call; split only where an episode starts
        for a, b in _segments(episode_start, x.shape[0]):
            if episode_start is not None:
                h, c = self.reset_state((h, c), episode_start[a].to(x.device))
            y, (h1, c1) = self._lstm(feats[a:b], h, c)
            h, c = h1[0], c1[0]
            outs.append(y)
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        return self.head(out), (h, c)

    def _lstm(self, x, h, c):
        """The LSTM call; on a CPU always in float32: oneDNN has no bfloat16 LSTM on every CPU
        (it fails with 'could not create a primitive descriptor' on some)."""
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return self._lstm_call(x.float(), h.float(), c.float())
        return self._lstm_call(x, h, c)

    def _lstm_call(self, x, h, c):
        """One step (acting) goes through the single-step cell kernel on the same weights: on a
        CPU ``nn.LSTM``'s oneDNN path costs about 100 us per call at batch 1 against about
        20 us for the cell, while for sequences (training) it is the faster one."""
        if x.shape[0] == 1:
            lstm = self.lstm
            h1, c1 = torch.lstm_cell(x[0], (h, c), lstm.weight_ih_l0, lstm.weight_hh_l0,
                                     lstm.bias_ih_l0, lstm.bias_hh_l0)
            return h1.unsqueeze(0), (h1.unsqueeze(0), c1.unsqueeze(0))
        return self.lstm(x, (h.unsqueeze(0), c.unsqueeze(0)))


def _segments(episode_start: torch.Tensor | None, T: int) -> list[tuple[int, int]]:
    """[start, end) stretches of time in which episodes start, if at all, only at the first step."""
    if episode_start is None or T == 1:
        return [(0, T)]
    later = torch.nonzero(episode_start[1:].reshape(T - 1, -1).any(dim=1)).flatten() + 1
    return list(itertools.pairwise([0, *later.tolist(), T]))
