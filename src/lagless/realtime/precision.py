"""``--precision bf16``: one autocast context for acting and learning, weights stay float32."""

from __future__ import annotations

import torch


def bf16_autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast for matmuls and convolutions on ``device`` when ``enabled``."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)
