"""``lagless kdlora run``: teacher (fft), LoRA baseline and KD-LoRA student on one task, then a table.

Each step writes its own run folder under ``OUT/``. A finished step is reused when it was made
with the same settings (config, data digests, model checkpoints: see ``provenance``), so an
interrupted pipeline resumes at the step it was in; a step whose settings differ is trained
again, and the message says what differs.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from lagless.kdlora.comparison import write_comparison
from lagless.kdlora.config import KDLoRAConfig
from lagless.kdlora.step import reusable_result, run_step
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
        step = dataclasses.replace(config, method=method, run_dir=str(step_dir),
                                   teacher=str(out / STEP_DIRS["fft"]) if method == "kd-lora" else None)
        done, differences = reusable_result(step)
        if done is not None:
            say(f"{method}: reusing the finished run in {step_dir}")
            records.append(done)
            continue
        if differences:
            say(f"{method}: training again in {step_dir}; the finished run there differs: "
                + "; ".join(differences))
        else:
            say(f"{method}: training, run folder {step_dir}")
        records.append(run_step(step))
    write_comparison(records, out)
    return records
