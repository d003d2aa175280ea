"""The one config of a real-time PPO run: flags, Python API and ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass

from lagless.config import option
from lagless.errors import LaglessError
from lagless.realtime.precision import PRECISION_HELP, check_precision
from lagless.realtime.run_config import RLRunConfig

CRITICS = ("instant", "delayed")
MAX_AUTO_MINIBATCHES = 8


@dataclass
class PPOConfig(RLRunConfig):
    """PPO for real-time agents. Defaults follow purejaxrl's MinAtar settings, sized for a CPU.

    Discrete actions get a categorical policy, Box actions a Gaussian one (state-independent
    standard deviation, actions clipped to the bounds by the environment step).
    """

    critic: str = option("instant", "critic: 'instant' sees the current, undelayed observation "
                                    "(asymmetric actor-critic); 'delayed' has the actor's architecture",
                         fixed=True)
    rollout_steps: int = option(128, "steps per environment between updates", metavar="N")
    lr: float = option(5e-4, "Adam learning rate", metavar="LR")
    anneal_lr: bool = option(True, "decay the learning rate linearly to 0")
    gamma: float = option(0.99, "discount factor per agent step", metavar="G")
    gae_lambda: float = option(0.95, "GAE lambda", metavar="L")
    update_epochs: int = option(4, "passes over each rollout", metavar="N")
    num_minibatches: int = option(0, "minibatches per pass; environments are split among them so that "
                                     f"sequences stay whole (0: the largest divisor of --num-envs up to "
                                     f"{MAX_AUTO_MINIBATCHES})", metavar="N")
    clip_coef: float = option(0.2, "PPO clipping range", metavar="C")
    ent_coef: float = option(0.01, "entropy bonus coefficient", metavar="C")
    vf_coef: float = option(0.5, "value loss coefficient", metavar="C")
    max_grad_norm: float = option(0.5, "gradient norm clip", metavar="N")
    precision: str = option("fp32", PRECISION_HELP)

    def minibatches(self) -> int:
        """The minibatch count in use: the flag, or the largest divisor of num_envs up to 8."""
        if self.num_minibatches:
            return self.num_minibatches
        return max(d for d in range(1, MAX_AUTO_MINIBATCHES + 1) if self.num_envs % d == 0)

    def validate(self) -> PPOConfig:
        super().validate()
        for name in ("rollout_steps", "update_epochs"):
            if getattr(self, name) < 1:
                raise LaglessError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.num_minibatches < 0:
            raise LaglessError(f"--num-minibatches must be >= 0 (0: automatic), got {self.num_minibatches}")
        if self.critic not in CRITICS:
            raise LaglessError(f"unknown critic '{self.critic}': choose one of {', '.join(CRITICS)}")
        check_precision(self.precision)
        if self.num_envs % self.minibatches():
            divisors = [d for d in range(1, self.num_envs + 1) if self.num_envs % d == 0]
            raise LaglessError(f"--num-envs ({self.num_envs}) must be a multiple of --num-minibatches "
                               f"({self.num_minibatches}): each minibatch takes whole environments; pass "
                               f"--num-minibatches {max(d for d in divisors if d <= self.num_minibatches)} "
                               "(or 0 for automatic)")
        if not (0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1 and self.lr > 0):
            raise LaglessError("--gamma must be in (0, 1], --gae-lambda in [0, 1] and --lr > 0")
        return self
