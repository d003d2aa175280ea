"""A trained agent as acting code sees it, whatever algorithm trained it.

``eval``, ``record``, ``explain attribute`` (and the real-time runner) hold a ``Policy``: the
actor network with its state and delays, the action head, and (where the trainer has one) a
state-value critic. ``lagless.trainers.load_policy`` builds it from a run directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from lagless.realtime.fused import FusedPipelinedNet
from lagless.realtime.precision import bf16_autocast


@dataclass
class PolicyStep:
    """One acting step for a batch: what the environment receives, and what explain records."""

    action: np.ndarray  # environment-ready (clipped or scaled as the head decides)
    probs: np.ndarray | None  # action probabilities for Discrete actions
    value: np.ndarray | None  # the critic's state value, if the trainer has one


def _steps(n: int) -> str:
    from lagless.realtime.recurrent import UNBOUNDED_DELAY

    return "inf" if n >= UNBOUNDED_DELAY else str(n)


class Policy:
    """Actor + action head (+ optional value critic), with explicit state and episode starts."""

    def __init__(self, config: Any, actor: nn.Module, head: nn.Module, *,
                 observation_space: spaces.Space, action_space: spaces.Space,
                 critic: nn.Module | None = None, bf16: bool = False, kind: str = "",
                 step: int = 0, checkpoint: Path | None = None, arch: str | None = None):
        self.config = config
        self.arch = arch or config.arch  # the architecture that acts
        self.actor, self.head, self.critic = actor, head, critic
        self.observation_space, self.action_space = observation_space, action_space
        self.layout = actor.layout
        self.min_delay, self.max_delay = actor.min_delay, actor.max_delay
        self.discrete = bool(head.discrete)
        self.bf16 = bf16
        self.kind, self.step, self.checkpoint = kind, step, checkpoint
        # the environment's own lag (--obs-delay) comes before the network's: the whole delay is the sum
        self.obs_delay = int(getattr(config, "obs_delay", 0) or 0)

    @property
    def delay_range(self) -> tuple[int, int]:
        """(min, max) steps from an observation to the actions it affects: network + sensor (--obs-delay)."""
        return self.min_delay + self.obs_delay, self.max_delay + self.obs_delay

    def describe_delay(self) -> str:
        """E.g. ``delay 2..5 (network 1..4 + sensor 1)``; the network's ``inf`` for recurrent ones."""
        lo, hi = self.delay_range
        text = f"delay {_steps(lo)}..{_steps(hi)}"
        if self.obs_delay:
            text += f" (network {_steps(self.min_delay)}..{_steps(self.max_delay)} + sensor {self.obs_delay})"
        if not isinstance(self.actor, FusedPipelinedNet):
            return text
        return text + (", fused executor, C++ step" if self.actor.runs_native else ", fused executor")

    @property
    def device(self) -> torch.device:
        return self.actor.device

    def _precision(self):
        return bf16_autocast(self.device, self.bf16)

    def initial_state(self, batch_size: int):
        """(actor state, critic state) at an episode start, on the policy's device."""
        critic = () if self.critic is None else self.critic.initial_state(batch_size, self.device)
        return self.actor.initial_state(batch_size, self.device), critic

    def flatten(self, obs, batch_dims: int = 1) -> torch.Tensor:
        return self.layout.flatten(obs, batch_dims=batch_dims, device=self.device)

    @torch.inference_mode()
    def act(self, obs, state, episode_start: torch.Tensor, greedy: bool = False,
            with_value: bool = False) -> tuple[PolicyStep, Any]:
        """One step for a batch of observations (env format or flat); returns (step, new state)."""
        actor_state, critic_state = state
        x = self.flatten(obs)
        starts = episode_start.to(self.device)
        with self._precision():
            out, actor_state = self.actor(x, actor_state, starts)
            value = None
            if with_value and self.critic is not None:
                value, critic_state = self.critic(x, critic_state, starts)
        action, _ = self.head.sample(out, greedy)
        probs = self.head.probs(out)
        step = PolicyStep(self.head.env_action(action),
                          None if probs is None else probs.cpu().numpy(),
                          None if value is None else value.float().reshape(-1).cpu().numpy())
        return step, (actor_state, critic_state)

    @torch.inference_mode()
    def outputs_sequence(self, x: torch.Tensor, state, episode_start: torch.Tensor):
        """Action probabilities (Discrete) and values (if any) for a ``[T, B, D]`` block of steps."""
        actor_state, critic_state = state
        x, starts = x.to(self.device), episode_start.to(self.device)
        with self._precision():
            out, actor_state = self.actor.forward_sequence(x, actor_state, starts)
            values = None
            if self.critic is not None:
                values, critic_state = self.critic.forward_sequence(x, critic_state, starts)
        probs = self.head.probs(out)
        return probs, (None if values is None else values.float().squeeze(-1)), (actor_state, critic_state)
