"""The one config of a real-time SAC run: flags, Python API and ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass

from lagless.config import option
from lagless.errors import LaglessError
from lagless.realtime.precision import PRECISION_HELP, check_precision
from lagless.realtime.run_config import RLRunConfig

DEFAULT_SEQ_LEN = 8  # training steps per replayed sequence for actors with state
LSTM_BURN_IN = 16  # an LSTM's state never becomes exact; this many steps make it realistic


@dataclass
class SACConfig(RLRunConfig):
    """SAC for real-time agents. Defaults follow Stable-Baselines3's and CleanRL's MuJoCo settings
    (256x256 networks, batch 256, lr 3e-4, automatic entropy tuning), with 5,000 random steps first.

    The actor may be any registered architecture: replayed sequences carry its state, with a
    burn-in prefix so a pipelined actor's registers are exactly what acting had. The twin
    critics are ordinary networks that see the current observation and the action.
    """

    env: str = option("HalfCheetah-v5", "Gymnasium environment id (Box actions)", metavar="ID", fixed=True)
    arch: str = option("instant", "actor architecture: instant, chain, skip, obs_to_all, res_skip, lstm, transformer",
                       metavar="NAME", fixed=True)
    layers: int = option(3, "layers in the actor, head included; each adds one step of delay "
                            "in pipelined architectures", metavar="N", fixed=True)
    hidden: int = option(256, "width of the actor's hidden layers", metavar="H", fixed=True)
    total_steps: int = option(1_000_000, "agent steps to train, summed over environments", metavar="S")
    num_envs: int = option(1, "parallel environments", metavar="E")
    checkpoint_every: int = option(100_000, "agent steps between checkpoints (they hold the replay)",
                                   metavar="S")
    critic_layers: int = option(3, "layers in each critic, output included", metavar="N", fixed=True)
    critic_hidden: int = option(256, "width of the critics' hidden layers", metavar="H", fixed=True)
    buffer_size: int = option(1_000_000, "replay capacity in transitions", metavar="N", fixed=True)
    batch_size: int = option(256, "transitions per update (sequences x --seq-len)", metavar="B")
    seq_len: int = option(0, "training steps per replayed sequence (0: 1 for a stateless actor, "
                             f"{DEFAULT_SEQ_LEN} otherwise)", metavar="K")
    burn_in: int = option(-1, "steps replayed before a sequence only to set the actor's state "
                              f"(-1: the actor's delay, or {LSTM_BURN_IN} for an LSTM)", metavar="B")
    learning_starts: int = option(5_000, "random-action steps before learning starts", metavar="S")
    updates_per_step: float = option(1.0, "gradient updates per agent step (summed over environments)",
                                     metavar="U")
    lr: float = option(3e-4, "Adam learning rate of actor, critics and entropy coefficient", metavar="LR")
    gamma: float = option(0.99, "discount factor per agent step", metavar="G")
    target_update_rate: float = option(0.005, "Polyak rate of the target critics (SAC's tau)", metavar="R")
    alpha: float = option(0.0, "entropy coefficient; 0: tuned automatically toward an entropy of "
                               "-action_dim, starting at 1", metavar="A")
    log_every: int = option(1_000, "agent steps between rows of metrics", metavar="S")
    precision: str = option("fp32", PRECISION_HELP)

    def validate(self) -> SACConfig:
        super().validate()
        for name in ("critic_layers", "critic_hidden", "buffer_size", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise LaglessError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("seq_len", "learning_starts"):
            if getattr(self, name) < 0:
                raise LaglessError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        check_precision(self.precision)
        if self.burn_in < -1:
            raise LaglessError(f"--burn-in must be >= 0 (or -1: automatic), got {self.burn_in}")
        if self.critic_layers < 2:
            raise LaglessError("--critic-layers must be >= 2 (a hidden layer and the output)")
        if not (0 < self.gamma <= 1 and 0 < self.target_update_rate <= 1 and self.lr > 0):
            raise LaglessError("--gamma and --target-update-rate must be in (0, 1], --lr > 0")
        if self.updates_per_step < 0 or self.alpha < 0:
            raise LaglessError("--updates-per-step and --alpha must be >= 0")
        if self.buffer_size < self.num_envs * 2:
            raise LaglessError(f"--buffer-size ({self.buffer_size}) must hold at least 2 steps per environment")
        return self
