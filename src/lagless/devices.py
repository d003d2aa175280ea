"""``--device auto|cpu|cuda[:N]``: one place turns the flag into a torch device or a clear error."""

from __future__ import annotations

import re

import torch

from lagless.errors import LaglessError

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(text: str) -> torch.device:
    """``auto`` is the first GPU when one exists, else the CPU; ``cuda`` without CUDA is an error."""
    if not isinstance(text, str) or not _DEVICE_RE.match(text):
        raise LaglessError(f"unknown device '{text}': use auto, cpu, cuda or cuda:N")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise LaglessError(f"--device {text}: this machine has no CUDA GPU (or torch was built "
                               "without CUDA); use --device cpu or auto")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise LaglessError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) "
                               f"exist (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    return device
