"""Real-time agents: pipelined networks with per-layer delay, trained with PPO or SAC."""

from lagless.realtime.architectures import (
    ARCHITECTURES,
    build_network,
    make_actor,
    register_architecture,
)
from lagless.realtime.fused import fuse
from lagless.realtime.observations import ObsLayout
from lagless.realtime.recurrent import UNBOUNDED_DELAY

__all__ = [
    "ARCHITECTURES",
    "UNBOUNDED_DELAY",
    "ObsLayout",
    "build_network",
    "fuse",
    "make_actor",
    "register_architecture",
]
