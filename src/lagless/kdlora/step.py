"""One step of the pipeline, end to end: data, model, (teacher logits), training, artefacts, report.

A run folder holds ``config.json``, ``metrics.csv`` (training curve), ``metrics.json`` (dev
scores and the efficiency report), and the model: ``model/`` for fft (the teacher), or
``adapter/`` (PEFT format) and ``merged/`` (LoRA folded into the weights) for the LoRA methods.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from lagless import __version__
from lagless.config import config_to_dict
from lagless.errors import LaglessError
from lagless.kdlora.batching import encode_split, sequence_lengths
from lagless.kdlora.build import BuiltModel, build_model, default_pretrained_student
from lagless.kdlora.config import KDLoRAConfig
from lagless.kdlora.efficiency import inference_latency, model_size_on_disk_mb, peak_train_memory_mb
from lagless.kdlora.fit import fit
from lagless.kdlora.lora import count_parameters, merge_lora, save_adapter
from lagless.kdlora.models import default_model_path, load_model, quiet_transformers
from lagless.kdlora.provenance import settings_differences, step_settings, teacher_logits_key
from lagless.kdlora.task_data import TaskData, load_task_data
from lagless.kdlora.tasks import TaskSpec, get_task
from lagless.kdlora.teacher_outputs import (
    cached_teacher_logits,
    save_teacher_logits,
    teacher_logits,
)
from lagless.runs import MetricsLogger, atomic_write_json

log = logging.getLogger(__name__)

METRICS_JSON = "metrics.json"
TEACHER_LOGITS = "teacher_logits.safetensors"
LATENCY_BATCH = 32


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise LaglessError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu")
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else
                        "cpu" if name == "auto" else name)


def default_run_dir(config: KDLoRAConfig) -> Path:
    return Path("runs") / f"kdlora-{get_task(config.task).name}-{config.method}-s{config.seed}"


def exported_model_dir(run_dir: str | Path) -> Path:
    """The folder of a finished step's plain transformers model (what predict and KD load)."""
    run_dir = Path(run_dir)
    for name in ("model", "merged"):
        if (run_dir / name / "config.json").exists():
            return run_dir / name
    raise LaglessError(f"{run_dir} holds no trained model (no model/ or merged/ folder): "
                       "train it with 'lagless kdlora train' first")


def read_step_result(run_dir: str | Path) -> dict | None:
    """A finished step's ``metrics.json`` record, or None when the step has not finished."""
    path = Path(run_dir) / METRICS_JSON
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise LaglessError(f"{path} is corrupt: delete the folder and train that step again") from None


def _teacher_folder(config: KDLoRAConfig, task: TaskSpec) -> str:
    """The fine-tuned model of kd-lora's ``--teacher`` run, checked to be a finished fft run of ``task``."""
    done = read_step_result(config.teacher)
    if done is None:
        raise LaglessError(f"--teacher {config.teacher} is not a finished 'fft' run (no {METRICS_JSON})")
    if done.get("task") != task.name or done.get("method") != "fft":
        raise LaglessError(f"--teacher {config.teacher} is a {done.get('method')} run on "
                           f"{done.get('task')}; kd-lora on {task.name} needs an fft teacher "
                           "of the same task")
    return str(exported_model_dir(config.teacher))


def _settings(config: KDLoRAConfig, data: TaskData, device: torch.device) -> dict:
    kd = config.method == "kd-lora"
    return step_settings(config, train=data.train, dev=data.dev, device=device.type,
                         model=config.model or default_model_path(),
                         teacher=_teacher_folder(config, data.task) if kd else None,
                         student=(config.student_model or default_pretrained_student(config))
                         if kd else None)


def reusable_result(config: KDLoRAConfig) -> tuple[dict | None, list[str]]:
    """A finished step's record when it was made with the settings ``config`` asks for now.

    Returns (record, []) to reuse; (None, what differs) when the step in ``config.run_dir``
    finished with other settings; (None, []) when it never finished.
    """
    done = read_step_result(config.run_dir)
    if done is None:
        return None, []
    config.validate()
    wanted = _settings(config, load_task_data(config), resolve_device(config.device))
    differences = settings_differences(done.get("settings"), wanted)
    return (None, differences) if differences else (done, [])


def _teacher(config: KDLoRAConfig, data: TaskData, run_dir: Path, device: torch.device, settings: dict):
    """The teacher model, its tokenizer and its logits on the training examples, by example index.

    The logits are cached in the run folder under a key of the teacher's checkpoint, the
    training rows and the max length; a cache made for anything else is recomputed.
    """
    model, tokenizer = load_model(_teacher_folder(config, data.task), num_labels=data.task.num_labels,
                                  regression=data.task.is_regression, label_names=data.task.label_names)
    model.to(device)
    cache, key = run_dir / TEACHER_LOGITS, teacher_logits_key(settings)
    cached = cached_teacher_logits(cache, key, expected_rows=len(data.train))
    if cached is not None:
        return model, tokenizer, cached
    encoded = encode_split(data.train, tokenizer, max_length=config.max_length)
    logits = teacher_logits(model, encoded, tokenizer, batch_size=2 * config.batch_size,
                            device=str(device), progress=config.progress)
    save_teacher_logits(cache, logits, key=key)
    return model, tokenizer, logits


def _export(config: KDLoRAConfig, built: BuiltModel, run_dir: Path):
    """Save the trained model; returns (deployable plain model, its folder)."""
    with quiet_transformers(), warnings.catch_warnings():
        # PEFT warns that it saves the (trimmed) embeddings with the adapter: that is intended.
        warnings.filterwarnings("ignore", message=".*save_embedding_layers.*")
        if config.method == "fft":
            model, folder = built.model, run_dir / "model"
        else:
            save_adapter(built.model, run_dir / "adapter")
            model, folder = merge_lora(built.model), run_dir / "merged"
        model.save_pretrained(folder)
        built.tokenizer.save_pretrained(folder)
    return model, folder


def _efficiency(config: KDLoRAConfig, task: TaskSpec, built: BuiltModel, deployed, folder: Path,
                train_lengths: np.ndarray, dev_lengths: np.ndarray, device: torch.device) -> dict:
    """Parameters, peak training memory, latency at batch 32 and size on disk of one method.

    Sequence lengths are the 95th percentile of the task's token counts (what a padded batch
    of 32 usually reaches), the same for every method of a task.
    """
    _, trainable = count_parameters(built.model)
    total, _ = count_parameters(deployed)
    out = {"total_params": int(total), "trainable_params": int(trainable),
           "disk_mb": model_size_on_disk_mb(folder)}
    if not config.efficiency:
        return out
    train_len = int(np.ceil(np.percentile(train_lengths, 95)))
    dev_len = int(np.ceil(np.percentile(dev_lengths, 95)))
    deployed.eval()
    latency = inference_latency(deployed, None, batch_size=LATENCY_BATCH, seq_len=dev_len,
                                repeats=config.latency_repeats, device=str(device))
    peak = peak_train_memory_mb(built.base_dir, config.method, built.lora,
                                num_labels=task.num_labels, regression=task.is_regression,
                                batch_size=config.batch_size, seq_len=train_len, device=str(device))
    out.update({"peak_train_mem_mb": peak, "latency_ms_b32": latency["latency_ms_b32"],
                "throughput_per_s": latency["throughput_per_s"], "latency_seq_len": dev_len,
                "train_seq_len": train_len})
    return out


def run_step(config: KDLoRAConfig) -> dict:
    """Train one method on one task and write its run folder; returns the ``metrics.json`` record."""
    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = Path(config.run_dir or default_run_dir(config))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / METRICS_JSON).unlink(missing_ok=True)  # a folder being retrained is not finished
    atomic_write_json(run_dir / "config.json", config_to_dict(config))
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    data = load_task_data(config)
    settings = _settings(config, data, device)
    teacher_model = teacher_tokenizer = teacher = None
    if config.method == "kd-lora":
        teacher_model, teacher_tokenizer, teacher = _teacher(config, data, run_dir, device, settings)
    built = build_model(config, data.task, data.train, run_dir, teacher_model, teacher_tokenizer)
    del teacher_model
    train_ds = encode_split(data.train, built.tokenizer, max_length=config.max_length)
    dev = {n: (encode_split(s, built.tokenizer, max_length=config.max_length), s.labels)
           for n, s in data.dev.items()}
    started = time.perf_counter()
    with MetricsLogger(run_dir, tensorboard=False) as metrics:
        scores = fit(built.model, built.tokenizer, train_ds, dev, data.task, epochs=config.epochs,
                     batch_size=config.batch_size, lr=config.learning_rate,
                     weight_decay=config.weight_decay, warmup=config.warmup, seed=config.seed,
                     device=device, metrics=metrics, teacher=teacher, temperature=config.temperature,
                     alpha=config.alpha, progress=config.progress)
    train_time = time.perf_counter() - started
    built.model.to("cpu")
    deployed, folder = _export(config, built, run_dir)
    dev_lengths = sequence_lengths(next(iter(dev.values()))[0])
    record = {
        "task": data.task.name, "method": config.method, "model": built.name,
        "metric": data.task.main_metric, "score": scores["score"], "scores": scores,
        **_efficiency(config, data.task, built, deployed, folder, sequence_lengths(train_ds),
                      dev_lengths, device),
        "seed": config.seed, "train_examples": len(data.train),
        "dev_examples": {n: len(s) for n, s in data.dev.items()}, "train_time_s": round(train_time, 1),
        "device": str(device), "lagless_version": __version__, **built.info,
        "settings": settings,
    }
    atomic_write_json(run_dir / METRICS_JSON, record)
    return record
