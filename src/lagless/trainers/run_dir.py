"""A trainer's run folder: ``config.json`` (with the algorithm's name), metrics, checkpoints, plot.

A checkpoint's ``meta.json`` carries ``kind`` (the trainer), ``format_version`` and the
models' ``layout_id``; reading it back checks all three, so a checkpoint is never loaded
into a network that would read its tensors differently.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lagless.config import check_config_dict, check_resume_changes, config_to_dict
from lagless.errors import LaglessError
from lagless.realtime.spaces_json import space_to_json
from lagless.runs import (
    MetricsLogger,
    atomic_write_json,
    checkpoint_step,
    latest_checkpoint,
    load_checkpoint,
    plot_returns,
)
from lagless.trainers.registry import DEFAULT_TRAINER, get_trainer

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: kind is the trainer's name, layout_id recorded (1: PPO only, no layout)
ALGO_KEY = "algo"  # config.json's key for the trainer name (runs made before it are PPO runs)


@dataclass
class RunFiles:
    path: Path
    algo: str
    config: Any
    metrics: MetricsLogger
    checkpoint: Path | None

    def close(self) -> None:
        self.metrics.close()

    def finish(self) -> None:
        """Close the logs and draw the learning curve."""
        self.close()
        csv = self.path / "metrics.csv"
        if csv.exists() and csv.stat().st_size > 0:
            try:
                plot_returns(csv, self.path / "returns.png", title=f"{self.algo}: {self.config.title()}")
            except LaglessError as e:  # no finished episode yet: nothing to draw
                log.warning("no learning curve drawn: %s", e)


def default_run_dir(config) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", config.env).strip("-").lower()
    return Path("runs") / f"{slug}-{config.arch}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def config_from_dict(data: dict, algo: str | None, where: str):
    """(algorithm name, its config) from a config dict; an ``algo`` key inside wins over ``algo``."""
    data = dict(data)
    name = data.pop(ALGO_KEY, None) or algo or DEFAULT_TRAINER
    cls = get_trainer(name).config_class
    if name == "ppo":
        data.setdefault("fresh_actions", False)  # PPO runs made before the option had delayed actions
    return name, cls(**check_config_dict(data, cls, where)).validate()


def read_json_object(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LaglessError(f"{path} is not valid JSON ({e}): {what} is damaged") from None
    if not isinstance(data, dict):
        raise LaglessError(f"{path} must hold a JSON object")
    return data


def read_run_config(run_dir: str | Path):
    """(algorithm name, config) of an existing run, or a clear error if the folder holds no run."""
    path = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir():
        raise LaglessError(f"{run_dir} is not a folder: give the run directory that 'lagless train' made")
    if not path.exists():
        raise LaglessError(f"{run_dir} holds no lagless run (no config.json): check the path")
    return config_from_dict(read_json_object(path, "the run's config"), None, str(path))


def open_run(algo: str, config, *, resume: bool) -> RunFiles:
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
    atomic_write_json(path / "config.json", {ALGO_KEY: algo, **config_to_dict(config)})
    resume_step = checkpoint_step(checkpoint) if checkpoint is not None else (0 if resume else None)
    metrics = MetricsLogger(path, resume_step=resume_step, tensorboard=config.tensorboard)
    return RunFiles(path, algo, config, metrics, checkpoint)


def check_checkpoint(meta: dict, path: Path, *, algo: str, layout_id: str) -> None:
    """Refuse a checkpoint of another format, trainer or network layout, in one line."""
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        made = "before checkpoints recorded their network layout" if version is None else f"format {version}"
        raise LaglessError(f"checkpoint {path} was written {made} (network layout unknown), but this lagless "
                           f"reads format {FORMAT_VERSION} and builds layout '{layout_id}': its tensors may be "
                           "read wrongly, so retrain the agent with this version")
    kind = meta.get("kind")
    if kind != algo:
        raise LaglessError(f"checkpoint {path} was written by trainer '{kind}', but the run is a '{algo}' "
                           "run: use the checkpoint with the run that made it")
    if meta.get("layout_id") != layout_id:
        raise LaglessError(f"checkpoint {path} has network layout '{meta.get('layout_id')}', but this code "
                           f"builds '{layout_id}' from the same config: the tensors would be read wrongly; "
                           "retrain, or use the lagless version that wrote it")


def check_spaces(meta: dict, observation_space, action_space, where: Path) -> None:
    for key, space in (("observation_space", observation_space), ("action_space", action_space)):
        if meta.get(key) != space_to_json(space):
            raise LaglessError(f"checkpoint {where} was made for {key.replace('_', ' ')} {meta.get(key)}, "
                               f"but the environment now has {space_to_json(space)}")


def checkpoint_config(meta: dict, algo: str, run_config, path: Path):
    """The config saved in the checkpoint, checked against the run's: the network is rebuilt from it."""
    if not isinstance(meta.get("config"), dict):
        raise LaglessError(f"checkpoint {path} holds no config: it is damaged; use another checkpoint")
    _, config = config_from_dict({**meta["config"], ALGO_KEY: algo}, algo, f"{path}/meta.json")
    check_resume_changes(config, run_config, f"checkpoint {path.name}")
    return config


def load_run_checkpoint(run_dir: str | Path, checkpoint: str | Path | None = None):
    """(algo, checkpoint config, tensors, meta, path) of a run's newest (or given) checkpoint."""
    algo, run_config = read_run_config(run_dir)
    path = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir)
    if path is None:
        raise LaglessError(f"{run_dir} has no checkpoint yet: train longer or resume it first")
    tensors, meta = load_checkpoint(path)
    kind = meta.get("kind")
    if meta.get("format_version") == FORMAT_VERSION and kind != algo:
        raise LaglessError(f"checkpoint {path} was written by trainer '{kind}', but {run_dir} is a '{algo}' "
                           "run: use the checkpoint with the run that made it")
    config = checkpoint_config(meta, algo, run_config, path) if "config" in meta else run_config
    return algo, config, tensors, meta, path
