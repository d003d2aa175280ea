"""Zeroing a network's state where an episode starts, shared by every stateful network."""

from __future__ import annotations

import torch


def reset_state(state: tuple[torch.Tensor, ...], episode_start: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Zero each state tensor's rows for the batch entries whose episode starts now."""
    keep = (~episode_start.bool()).float().unsqueeze(-1)
    return tuple(s * keep for s in state)
