"""What a real-time PPO run keeps on disk: config, metrics, checkpoints and its plot.

A checkpoint holds the actor, critic, optimizer and RNG states (safetensors) with the
config, step and spaces (JSON), so ``--resume`` continues where the run stopped and
``eval`` rebuilds the agent without guessing.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from lagless.config import check_config_dict, config_to_dict
from lagless.errors import LaglessError
from lagless.realtime.ppo_config import PPOConfig
from lagless.realtime.spaces_json import space_to_json
from lagless.runs import (
    MetricsLogger,
    atomic_write_json,
    checkpoint_step,
    latest_checkpoint,
    load_checkpoint,
    load_module_tensors,
    load_optimizer_tensors,
    module_tensors,
    optimizer_tensors,
    plot_returns,
    restore_rng,
    rng_tensors,
    save_checkpoint,
)

log = logging.getLogger(__name__)


@dataclass
class RunFiles:
    path: Path
    config: PPOConfig
    metrics: MetricsLogger
    checkpoint: Path | None

    def close(self) -> None:
        self.metrics.close()

    def finish(self, agent) -> None:
        """Close the logs and draw the learning curve."""
        self.close()
        csv = self.path / "metrics.csv"
        if csv.exists() and csv.stat().st_size > 0:
            try:
                plot_returns(csv, self.path / "returns.png",
                             title=f"{self.config.arch} on {self.config.env} (tau {self.config.tau})")
            except LaglessError as e:  # no finished episode yet: nothing to draw
                log.warning("no learning curve drawn: %s", e)


def default_run_dir(config: PPOConfig) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", config.env).strip("-").lower()
    return Path("runs") / f"{slug}-{config.arch}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def read_run_config(run_dir: str | Path) -> PPOConfig:
    """The config of an existing run, or a clear error if the folder holds no run."""
    path = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir():
        raise LaglessError(f"{run_dir} is not a folder: give the run directory that 'lagless train' made")
    if not path.exists():
        raise LaglessError(f"{run_dir} holds no lagless run (no config.json): check the path")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LaglessError(f"{path} is not valid JSON ({e}): the run's config is damaged") from None
    if not isinstance(data, dict):
        raise LaglessError(f"{path} must hold a JSON object")
    data.setdefault("fresh_actions", False)  # runs made before the option had delayed actions
    return PPOConfig(**check_config_dict(data, PPOConfig, str(path))).validate()


def open_run(config: PPOConfig, *, resume: bool) -> RunFiles:
    """Create the run directory (or reopen it to resume) and start the metrics log."""
    path = Path(config.run_dir) if config.run_dir else default_run_dir(config)
    config.run_dir = str(path)
    checkpoint = None
    if resume:
        checkpoint = latest_checkpoint(path)
        if checkpoint is None:
            log.warning("%s has no checkpoint yet: starting it from step 0", path)
    elif (path / "config.json").exists():
        raise LaglessError(f"{path} already holds a run: continue it with 'lagless train --resume {path}' "
                           "or choose another --run-dir")
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path / "config.json", config_to_dict(config))
    resume_step = checkpoint_step(checkpoint) if checkpoint is not None else (0 if resume else None)
    metrics = MetricsLogger(path, resume_step=resume_step, tensorboard=config.tensorboard)
    return RunFiles(path, config, metrics, checkpoint)


def save_training_state(run: RunFiles, agent, optimizer, step: int, update: int, recent_returns) -> Path:
    tensors = {**module_tensors("agent.", agent)}
    opt_tensors, opt_meta = optimizer_tensors("optim.", optimizer)
    rng_t, rng_meta = rng_tensors()
    tensors.update(opt_tensors)
    tensors.update(rng_t)
    meta = {
        "kind": "realtime-ppo",
        "config": config_to_dict(run.config),
        "update": update,
        "observation_space": space_to_json(agent.observation_space),
        "action_space": space_to_json(agent.action_space),
        "actor_delays": {"min": agent.actor.min_delay, "max": agent.actor.max_delay},
        "optimizer": opt_meta,
        "rng": rng_meta,
        "recent_returns": [float(r) for r in recent_returns],
    }
    path = save_checkpoint(run.path, step, tensors, meta, keep=run.config.keep_checkpoints)
    log.info("checkpoint %s", path)
    return path


def restore_training_state(run: RunFiles, agent, optimizer):
    """Load the newest checkpoint into agent and optimizer; restore the RNGs."""
    tensors, meta = load_checkpoint(run.checkpoint)
    check_spaces(meta, agent, run.checkpoint)
    load_module_tensors("agent.", agent, tensors)
    load_optimizer_tensors("optim.", optimizer, tensors, meta["optimizer"])
    restore_rng(tensors, meta["rng"])
    return int(meta["step"]), int(meta.get("update", 0)), meta.get("recent_returns", [])


def check_spaces(meta: dict, agent, where: Path) -> None:
    for key, space in (("observation_space", agent.observation_space), ("action_space", agent.action_space)):
        if meta.get(key) != space_to_json(space):
            raise LaglessError(f"checkpoint {where} was made for {key.replace('_', ' ')} {meta.get(key)}, "
                               f"but the environment now has {space_to_json(space)}")
