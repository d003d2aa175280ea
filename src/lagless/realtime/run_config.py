"""The options every real-time RL trainer shares: environment, network, budget, run folder, device.

Each trainer's config subclasses this (redeclaring a field changes only its default), so the
flags, ``config.json`` and the checks below mean the same for PPO, SAC and what comes next.
"""

from __future__ import annotations

from dataclasses import dataclass

from lagless.config import option
from lagless.errors import LaglessError
from lagless.realtime.architectures import check_architecture


@dataclass
class RLRunConfig:
    """Environment, actor network, budget and run-folder options of an RL run."""

    env: str = option("MinAtar/Breakout-v1", "Gymnasium environment id", metavar="ID", fixed=True)
    arch: str = option("skip", "actor architecture: instant, chain, skip, obs_to_all, res_skip, lstm, transformer",
                       metavar="NAME", fixed=True)
    layers: int = option(4, "layers in the actor, head included; each adds one step of delay "
                            "in pipelined architectures", metavar="N", fixed=True)
    hidden: int = option(128, "width of the hidden layers", metavar="H", fixed=True)
    tau: int = option(1, "environment frames per agent step (the action is repeated)", metavar="T", fixed=True)
    last_actions: int = option(0, "append the last K executed actions to the observation", metavar="K",
                               fixed=True)
    fresh_actions: bool = option(True, "a pipelined actor's dense layers and head read the last "
                                       "actions (--last-actions) undelayed: they are its own outputs",
                                 fixed=True)
    obs_history: int = option(0, "append the previous H observations to the observation", metavar="H",
                              fixed=True)
    obs_delay: int = option(0, "the environment shows each observation D steps late (a slow sensor); "
                               "a pipelined actor's own delay adds to it", metavar="D", fixed=True)
    max_episode_frames: int | None = option(None, "frame limit per episode (MinAtar: 10000; other ids "
                                                  "keep their registered limit)", metavar="F", fixed=True)
    total_steps: int = option(500_000, "agent steps to train, summed over environments", metavar="S")
    num_envs: int = option(16, "parallel environments", metavar="E")
    seed: int = option(1, "random seed (networks, sampling, environments)", metavar="X")
    run_dir: str = option("", "run directory (default: runs/<env>-<arch>-s<seed>-<time>)", metavar="DIR")
    checkpoint_every: int = option(50_000, "agent steps between checkpoints", metavar="S")
    keep_checkpoints: int = option(3, "newest checkpoints to keep", metavar="N")
    device: str = option("cpu", "where networks, rollouts and replay live: auto (a GPU if there is "
                                "one), cpu, cuda or cuda:N", metavar="DEV")
    threads: int = option(0, "torch CPU threads (0: torch's default)", metavar="N")
    progress: bool = option(True, "show a progress bar")
    tensorboard: bool = option(True, "write TensorBoard events")

    def validate(self):
        check_architecture(self.arch)
        for name in ("layers", "hidden", "tau", "total_steps", "num_envs", "checkpoint_every",
                     "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise LaglessError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("last_actions", "obs_history", "obs_delay", "threads"):
            if getattr(self, name) < 0:
                raise LaglessError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        return self

    def title(self) -> str:
        """How plots and progress bars name the run."""
        return f"{self.arch} on {self.env} (tau {self.tau})"

    def make_envs(self, num_envs: int, seed: int = 0):
        """The run's vectorised environment, wrapped as training saw it (also for eval and recording)."""
        from lagless.envs import make_env

        return make_env(self.env, num_envs=num_envs, tau=self.tau, last_actions=self.last_actions,
                        obs_history=self.obs_history, obs_delay=self.obs_delay, seed=seed,
                        max_episode_frames=self.max_episode_frames)
