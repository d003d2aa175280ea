"""The one training loop every trainer runs in: run folder, resume, metrics, checkpoints, signals.

A trainer supplies ``iterate`` (one unit of work); this loop seeds, restores the newest
checkpoint on ``--resume``, logs ``charts/*`` and the trainer's metrics, shows progress,
checkpoints every ``checkpoint_every`` steps and on Ctrl-C/SIGTERM, and draws the curve.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lagless.config import config_to_dict
from lagless.devices import resolve_device
from lagless.realtime.spaces_json import space_to_json
from lagless.runs import (
    load_checkpoint,
    load_module_tensors,
    load_optimizer_tensors,
    module_tensors,
    optimizer_tensors,
    restore_rng,
    rng_tensors,
    save_checkpoint,
)
from lagless.trainers.base import Trainer
from lagless.trainers.registry import get_trainer
from lagless.trainers.run_dir import (
    FORMAT_VERSION,
    RunFiles,
    check_checkpoint,
    check_spaces,
    checkpoint_config,
    open_run,
)

log = logging.getLogger(__name__)
RECENT_EPISODES = 100


@dataclass
class TrainResult:
    run_dir: Path
    global_step: int
    episode_returns: list[float] = field(default_factory=list)
    sps: float = 0.0


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def save_state(run: RunFiles, trainer: Trainer, layout_id: str, step: int, recent) -> Path:
    """A checkpoint of every model, optimizer, RNG and the trainer's own state."""
    tensors, opt_meta = {}, {}
    for name, module in trainer.models.items():
        tensors.update(module_tensors(f"{name}.", module))
    for name, opt in trainer.optimizers().items():
        t, opt_meta[name] = optimizer_tensors(f"optim_{name}.", opt)
        tensors.update(t)
    rng_t, rng_meta = rng_tensors()
    tensors.update(rng_t)
    tensors.update({f"extra.{k}": v for k, v in trainer.extra_tensors().items()})
    meta = {
        "kind": run.algo,
        "format_version": FORMAT_VERSION,
        "layout_id": layout_id,
        "config": config_to_dict(run.config),
        "observation_space": space_to_json(trainer.envs.single_observation_space),
        "action_space": space_to_json(trainer.envs.single_action_space),
        "trainer": trainer.state_meta(),
        "optimizers": opt_meta,
        "rng": rng_meta,
        "recent_returns": [float(r) for r in recent],
    }
    path = save_checkpoint(run.path, step, tensors, meta, keep=run.config.keep_checkpoints)
    log.info("checkpoint %s", path)
    return path


def restore_state(run: RunFiles, trainer: Trainer, layout_id: str) -> tuple[int, list[float]]:
    """Load the newest checkpoint into the trainer; returns (step, recent returns)."""
    tensors, meta = load_checkpoint(run.checkpoint)
    check_checkpoint(meta, run.checkpoint, algo=run.algo, layout_id=layout_id)
    checkpoint_config(meta, run.algo, run.config, run.checkpoint)
    check_spaces(meta, trainer.envs.single_observation_space, trainer.envs.single_action_space,
                 run.checkpoint)
    for name, module in trainer.models.items():
        load_module_tensors(f"{name}.", module, tensors)
    for name, opt in trainer.optimizers().items():
        load_optimizer_tensors(f"optim_{name}.", opt, tensors, meta["optimizers"][name])
    restore_rng(tensors, meta["rng"])
    trainer.load_extra_tensors({k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")})
    trainer.load_state_meta(meta.get("trainer", {}))
    return int(meta["step"]), meta.get("recent_returns", [])


def train(algo: str, config, *, resume: bool = False) -> TrainResult:
    """Train (or, with ``resume``, continue) a run of trainer ``algo`` until ``total_steps``."""
    trainer_cls = get_trainer(algo)
    config.validate()
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    envs = config.make_envs(config.num_envs, seed=config.seed)
    run = trainer = None
    try:  # environment and models first: a config they refuse leaves no run folder behind
        models = trainer_cls.build_models(config, envs.single_observation_space,
                                          envs.single_action_space, device)
        trainer = trainer_cls(config, models, envs, device)
        run = open_run(algo, config, resume=resume)
        layout_id = trainer_cls.layout_id(config, models)
        global_step, recent = 0, deque(maxlen=RECENT_EPISODES)
        if run.checkpoint is not None:
            global_step, restored = restore_state(run, trainer, layout_id)
            recent.extend(restored)
            log.info("resumed %s at step %d", run.path, global_step)
        if global_step >= config.total_steps:
            log.info("run %s already has %d of %d steps", run.path, global_step, config.total_steps)
            run.finish()
            return TrainResult(run.path, global_step, [], 0.0)
        return _loop(run, trainer, layout_id, global_step, recent)
    finally:
        if trainer is not None:
            trainer.close()
        envs.close()
        if run is not None:
            run.close()


def _loop(run: RunFiles, trainer: Trainer, layout_id: str, global_step: int, recent: deque) -> TrainResult:
    config = run.config
    trainer.start(global_step)
    all_returns: list[float] = []
    bar = tqdm(total=config.total_steps, initial=global_step, unit="step", dynamic_ncols=True,
               disable=not config.progress, desc=f"{run.algo} {config.arch} {config.env}")
    next_checkpoint = (global_step // config.checkpoint_every + 1) * config.checkpoint_every
    t_start, steps_at_start = time.perf_counter(), global_step
    try:
        while global_step < config.total_steps:
            it = trainer.iterate(global_step)
            global_step += it.steps
            recent.extend(it.episode_returns)
            all_returns.extend(it.episode_returns)
            sps = (global_step - steps_at_start) / max(time.perf_counter() - t_start, 1e-9)
            metrics = {
                "charts/episodic_return": float(np.mean(it.episode_returns)) if it.episode_returns else math.nan,
                "charts/episodic_length": float(np.mean(it.episode_lengths)) if it.episode_lengths else math.nan,
                "charts/recent_return": float(np.mean(recent)) if recent else math.nan,
                "charts/episodes": float(len(it.episode_returns)),
                "charts/sps": sps,
                **it.metrics,
            }
            run.metrics.log(global_step, metrics)
            bar.update(it.steps)
            bar.set_postfix(sps=f"{sps:,.0f}", ret=f"{metrics['charts/recent_return']:.2f}")
            if global_step >= next_checkpoint or global_step >= config.total_steps:
                save_state(run, trainer, layout_id, global_step, recent)
                next_checkpoint = (global_step // config.checkpoint_every + 1) * config.checkpoint_every
    except KeyboardInterrupt:
        bar.close()
        save_state(run, trainer, layout_id, global_step, recent)
        raise
    bar.close()
    sps = (global_step - steps_at_start) / max(time.perf_counter() - t_start, 1e-9)
    run.finish()
    return TrainResult(run.path, global_step, all_returns, sps)
