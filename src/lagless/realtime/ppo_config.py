"""The one config of a real-time PPO run: flags, Python API and ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass

from lagless.config import option
from lagless.errors import LaglessError
from lagless.realtime.architectures import check_architecture

CRITICS = ("instant", "delayed")
PRECISIONS = ("fp32", "bf16")


@dataclass
class PPOConfig:
    """PPO for real-time agents. Defaults follow purejaxrl's MinAtar settings, sized for a CPU."""

    env: str = option("MinAtar/Breakout-v1", "Gymnasium environment id", metavar="ID")
    arch: str = option("skip", "actor architecture: instant, chain, skip, obs_to_all, res_skip, lstm",
                       metavar="NAME")
    layers: int = option(4, "layers in the actor, head included; each adds one step of delay "
                            "in pipelined architectures", metavar="N")
    hidden: int = option(128, "width of the hidden layers", metavar="H")
    tau: int = option(1, "environment frames per agent step (the action is repeated)", metavar="T")
    last_actions: int = option(0, "append the last K executed actions to the observation", metavar="K")
    fresh_actions: bool = option(True, "a pipelined actor's dense layers and head read the last "
                                       "actions (--last-actions) undelayed: they are its own outputs")
    obs_history: int = option(0, "append the previous H observations to the observation", metavar="H")
    obs_delay: int = option(0, "the environment shows each observation D steps late (a slow sensor); "
                               "a pipelined actor's own delay adds to it", metavar="D")
    critic: str = option("instant", "critic: 'instant' sees the current, undelayed observation "
                                    "(asymmetric actor-critic); 'delayed' has the actor's architecture")
    total_steps: int = option(500_000, "agent steps to train, summed over environments", metavar="S")
    num_envs: int = option(16, "parallel environments", metavar="E")
    rollout_steps: int = option(128, "steps per environment between updates", metavar="N")
    lr: float = option(5e-4, "Adam learning rate", metavar="LR")
    anneal_lr: bool = option(True, "decay the learning rate linearly to 0")
    gamma: float = option(0.99, "discount factor per agent step", metavar="G")
    gae_lambda: float = option(0.95, "GAE lambda", metavar="L")
    update_epochs: int = option(4, "passes over each rollout", metavar="N")
    num_minibatches: int = option(8, "minibatches per pass; environments are split among them "
                                     "so that sequences stay whole", metavar="N")
    clip_coef: float = option(0.2, "PPO clipping range", metavar="C")
    ent_coef: float = option(0.01, "entropy bonus coefficient", metavar="C")
    vf_coef: float = option(0.5, "value loss coefficient", metavar="C")
    max_grad_norm: float = option(0.5, "gradient norm clip", metavar="N")
    seed: int = option(1, "random seed (networks, sampling, environments)", metavar="X")
    run_dir: str = option("", "run directory (default: runs/<env>-<arch>-s<seed>-<time>)", metavar="DIR")
    checkpoint_every: int = option(50_000, "agent steps between checkpoints", metavar="S")
    keep_checkpoints: int = option(3, "newest checkpoints to keep", metavar="N")
    max_episode_frames: int | None = option(None, "frame limit per episode (MinAtar default 10000)",
                                            metavar="F")
    precision: str = option("fp32", "fp32, or bf16: matmuls and convolutions of acting and learning in "
                                     "bfloat16 (weights, optimizer, output layer and losses stay float32); fast on "
                                     "CPUs with AMX or AVX-512 BF16 and on recent GPUs")
    threads: int = option(0, "torch CPU threads (0: torch's default)", metavar="N")
    progress: bool = option(True, "show a progress bar")
    tensorboard: bool = option(True, "write TensorBoard events")

    def validate(self) -> PPOConfig:
        check_architecture(self.arch)
        for name in ("layers", "hidden", "tau", "total_steps", "num_envs", "rollout_steps",
                     "update_epochs", "num_minibatches", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise LaglessError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("last_actions", "obs_history", "obs_delay", "threads"):
            if getattr(self, name) < 0:
                raise LaglessError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.critic not in CRITICS:
            raise LaglessError(f"unknown critic '{self.critic}': choose one of {', '.join(CRITICS)}")
        if self.precision not in PRECISIONS:
            raise LaglessError(f"unknown precision '{self.precision}': choose one of {', '.join(PRECISIONS)}")
        if self.num_envs % self.num_minibatches:
            raise LaglessError(f"--num-envs ({self.num_envs}) must be a multiple of --num-minibatches "
                               f"({self.num_minibatches}): each minibatch takes whole environments")
        if not (0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1 and self.lr > 0):
            raise LaglessError("--gamma must be in (0, 1], --gae-lambda in [0, 1] and --lr > 0")
        return self

    def make_envs(self, num_envs: int, seed: int = 0):
        """The run's vectorised environment, wrapped as training saw it (also for eval and recording)."""
        from lagless.envs import make_env

        return make_env(self.env, num_envs=num_envs, tau=self.tau, last_actions=self.last_actions,
                        obs_history=self.obs_history, obs_delay=self.obs_delay, seed=seed,
                        max_episode_frames=self.max_episode_frames)
