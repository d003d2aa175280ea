"""What an algorithm provides to plug into ``lagless train --algo NAME``.

The shared loop (``lagless.trainers.loop``) owns the run directory, metrics, checkpoints,
RNG state, progress bar, signals and plots; a trainer owns its models, optimizers and one
unit of work (``iterate``). Models are built by a classmethod from the config and the
environment's spaces, so ``load_policy`` can rebuild an agent without a trainer or a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from gymnasium import spaces
from torch import nn

from lagless.realtime.policy import Policy


@dataclass
class Iteration:
    """What one call of ``Trainer.iterate`` did: agent steps, finished episodes, metrics."""

    steps: int
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Base class of a registered trainer; subclasses set the class attributes and methods."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    description: ClassVar[str] = ""

    # -- models, without a run (also used by load_policy) ---------------------------------
    @classmethod
    def build_models(cls, config: Any, observation_space: spaces.Space, action_space: spaces.Space,
                     device: torch.device) -> dict[str, nn.Module]:
        """Every module the checkpoint holds, by name (the name is its tensor prefix)."""
        raise NotImplementedError

    @classmethod
    def layout_id(cls, config: Any, models: dict[str, nn.Module]) -> str:
        """How the models read saved tensors; a checkpoint with another id is refused."""
        raise NotImplementedError

    @classmethod
    def make_policy(cls, config: Any, models: dict[str, nn.Module], observation_space: spaces.Space,
                    action_space: spaces.Space) -> Policy:
        """The acting side of the models (eval, record, explain)."""
        raise NotImplementedError

    # -- training ------------------------------------------------------------------------
    def __init__(self, config: Any, models: dict[str, nn.Module], envs, device: torch.device):
        self.config, self.models, self.envs, self.device = config, models, envs, device

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def start(self, global_step: int) -> None:
        """Begin (or, after a resume, restart) acting at ``global_step``: reset environments."""
        raise NotImplementedError

    def iterate(self, global_step: int) -> Iteration:
        """One unit of work (a rollout and its update, a batch of steps with their updates)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the trainer started beyond the run's environments (worker processes)."""

    def state_meta(self) -> dict[str, Any]:
        """JSON state beyond tensors (counters) for the checkpoint."""
        return {}

    def load_state_meta(self, meta: dict[str, Any]) -> None:
        pass

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors beyond models and optimizers (a replay buffer); keys under ``extra.``."""
        return {}

    def load_extra_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass
