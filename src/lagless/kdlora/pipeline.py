"""``lagless kdlora run``: teacher (fft), LoRA baseline and KD-LoRA student on one task, then a table.

Each step writes its own run folder under ``OUT/``; a step whose ``metrics.json`` exists is
reused, so an interrupted pipeline resumes at the step it was in.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from lagless.kdlora.comparison import write_comparison
from lagless.kdlora.config import KDLoRAConfig
from lagless.kdlora.step import read_step_result, run_step
from lagless.kdlora.tasks import get_task

log = logging.getLogger(__name__)

STEP_DIRS = {"fft": "teacher", "lora": "lora", "kd-lora": "kd-lora"}


def default_pipeline_dir(config: KDLoRAConfig) -> Path:
    return Path("runs") / f"kdlora-{get_task(config.task).name}-s{config.seed}"


def run_pipeline(config: KDLoRAConfig, *, say=print) -> list[dict]:
    """Run (or reuse) the three steps under ``config.run_dir``; returns their records in order."""
    out = Path(config.run_dir or default_pipeline_dir(config))
    records = []
    for method, sub in STEP_DIRS.items():
        step_dir = out / sub
        done = read_step_result(step_dir)
        if done is not None:
            say(f"{method}: reusing the finished run in {step_dir}")
            records.append(done)
            continue
        say(f"{method}: training, run folder {step_dir}")
        step = dataclasses.replace(config, method=method, run_dir=str(step_dir),
                                   teacher=str(out / STEP_DIRS["fft"]) if method == "kd-lora" else None)
        records.append(run_step(step))
    write_comparison(records, out)
    return records
