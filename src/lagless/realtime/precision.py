"""``--precision bf16``: one autocast context for acting and learning, weights stay float32."""

from __future__ import annotations

import torch

from lagless.errors import LaglessError

PRECISIONS = ("fp32", "bf16")
PRECISION_HELP = ("fp32, or bf16: matmuls and convolutions of acting and learning in bfloat16 (weights, "
                  "optimizer, output layers and losses stay float32); fast on CPUs with AMX or AVX-512 BF16 "
                  "and on recent GPUs")


def check_precision(value: str) -> None:
    """A one-line error for a precision lagless does not know."""
    if value not in PRECISIONS:
        raise LaglessError(f"unknown precision '{value}': choose one of {', '.join(PRECISIONS)}")


def bf16_autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast for matmuls and convolutions on ``device`` when ``enabled``."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)
