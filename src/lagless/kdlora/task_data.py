"""The train and dev splits of one KD-LoRA step, loaded the same way for the teacher and the student.

The teacher's logits are stored by example index, so every step of a pipeline must see the
same examples in the same order: this module is the one place that decides them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from lagless.errors import LaglessError
from lagless.kdlora.config import KDLoRAConfig
from lagless.kdlora.sources import TextSplit, load_split
from lagless.kdlora.tasks import TaskSpec, get_task

HOLDOUT_FRACTION = 0.1


@dataclass
class TaskData:
    task: TaskSpec
    train: TextSplit
    dev: dict[str, TextSplit]  # "dev", or "matched" and "mismatched" for MNLI


def _subset(split: TextSplit, rows: np.ndarray) -> TextSplit:
    return dataclasses.replace(
        split, texts_a=[split.texts_a[i] for i in rows],
        texts_b=None if split.texts_b is None else [split.texts_b[i] for i in rows],
        labels=split.labels[rows])


def _dev_names(task: TaskSpec) -> dict[str, str]:
    if task.name == "mnli":
        return {"matched": "dev_matched", "mismatched": "dev_mismatched"}
    return {"dev": "dev"}


def _holdout(split: TextSplit, seed: int) -> tuple[TextSplit, TextSplit]:
    """Split one file into train and dev (10%, seeded) when the user gave no dev file."""
    if len(split) < 10:
        raise LaglessError(f"{len(split)} examples are too few to hold out a dev set: pass --dev-data")
    order = np.random.default_rng(seed).permutation(len(split))
    cut = max(1, int(len(split) * HOLDOUT_FRACTION))
    return _subset(split, np.sort(order[cut:])), _subset(split, np.sort(order[:cut]))


def load_task_data(config: KDLoRAConfig) -> TaskData:
    task = get_task(config.task)
    columns = {"text_columns": tuple(config.split_names(config.text_columns) or ()) or None,
                   "label_column": config.label_column}
    train_rows = {"limit": config.train_limit, "seed": config.seed}
    dev_rows = {"limit": config.dev_limit, "seed": config.seed + 1}
    if config.data is not None and config.data.lower().endswith((".csv", ".tsv", ".jsonl")):
        train = load_split(task, "train", data=config.data, **columns, **train_rows)
        if config.dev_data:
            dev = {"dev": load_split(task, "dev", data=config.dev_data, **columns, **dev_rows)}
        else:
            train, held_out = _holdout(train, config.seed)
            dev = {"dev": held_out}
        return TaskData(task=task, train=train, dev=dev)
    train = load_split(task, "train", data=config.data, **columns, **train_rows)
    dev = {name: load_split(task, split, data=config.data, **columns, **dev_rows)
           for name, split in _dev_names(task).items()}
    return TaskData(task=task, train=train, dev=dev)
