"""The trainer registry: ``lagless train --algo NAME`` and ``load_policy`` find trainers here.

Built-in trainers are imported on first use (their modules pull in their dependencies);
others register themselves with ``register_trainer``.
"""

from __future__ import annotations

import importlib

from lagless.errors import LaglessError
from lagless.trainers.base import Trainer

BUILTIN_TRAINERS = {  # name -> "module:Class", imported when first asked for
    "ppo": "lagless.realtime.ppo:PPOTrainer",
    "sac": "lagless.realtime.sac:SACTrainer",
    "ald": "lagless.ald.trainer:ALDTrainer",
}
_TRAINERS: dict[str, type[Trainer]] = {}
DEFAULT_TRAINER = "ppo"  # what `lagless train` runs without --algo


def register_trainer(cls: type[Trainer]) -> type[Trainer]:
    """Class decorator: make ``cls`` available as ``lagless train --algo cls.name``."""
    _TRAINERS[cls.name] = cls
    return cls


def trainer_names() -> list[str]:
    return sorted(set(BUILTIN_TRAINERS) | set(_TRAINERS))


def get_trainer(name: str) -> type[Trainer]:
    """The trainer class registered as ``name``, or a one-line error listing the choices."""
    if name not in _TRAINERS and name in BUILTIN_TRAINERS:
        module, cls = BUILTIN_TRAINERS[name].split(":")
        _TRAINERS[name] = getattr(importlib.import_module(module), cls)
    if name not in _TRAINERS:
        raise LaglessError(f"unknown algorithm '{name}': choose one of {', '.join(trainer_names())}")
    return _TRAINERS[name]
