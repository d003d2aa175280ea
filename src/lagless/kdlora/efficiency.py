"""Size, peak training memory and inference latency, measured the same way for every method.

The KD-LoRA paper's memory figure was weights plus optimizer state; here it is the measured
peak of a few real training steps, in a fresh process, so the numbers can be compared across
FFT, LoRA and KD-LoRA.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lagless.errors import LaglessError
from lagless.kdlora.lora import LoraSettings
from lagless.kdlora.models import unwrap_model

METHODS = ("fft", "lora", "kd-lora")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_PROBE_TIMEOUT_S = 1800


@dataclass
class EfficiencyReport:
    """One method's efficiency figures; None where a figure was not measured."""

    total_params: int
    trainable_params: int
    peak_train_mem_mb: float | None = None
    latency_ms_b32: float | None = None
    throughput_per_s: float | None = None
    disk_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _input_ids(model: nn.Module, tokenizer: Any, batch_size: int, seq_len: int, seed: int) -> torch.Tensor:
    """Seeded random ordinary-token ids, so every method sees inputs of the same shape and kind."""
    generator = torch.Generator().manual_seed(seed)
    vocab = int(model.config.vocab_size)
    special = set(getattr(tokenizer, "all_special_ids", []) or []) if tokenizer is not None else set()
    pool = torch.tensor([i for i in range(vocab) if i not in special] or list(range(vocab)))
    picks = torch.randint(0, len(pool), (batch_size, seq_len), generator=generator)
    return pool[picks]


def inference_latency(
    model: nn.Module,
    tokenizer_or_none: Any = None,
    *,
    batch_size: int = 32,
    seq_len: int,
    repeats: int = 20,
    warmup: int = 3,
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, float]:
    """Median wall time of one forward pass on a batch of ``seq_len`` random tokens, no padding.

    The model must be a plain (merged) model: pass ``merge_lora(peft_model)``, since unmerged
    adapters add matmuls that a deployed model does not have. Runs in eval mode under
    ``torch.inference_mode``; the model is moved to ``device``. Returns ``latency_ms_b32`` (the
    median ms per batch, named for the usual batch of 32), ``throughput_per_s`` (examples per
    second at that median), and the batch size, sequence length and repeats used.
    """
    if unwrap_model(model) is not model:
        raise LaglessError("merge the LoRA adapters (merge_lora) before measuring latency")
    if seq_len < 1 or batch_size < 1 or repeats < 1 or warmup < 0:
        raise LaglessError("latency needs seq_len, batch_size and repeats >= 1 and warmup >= 0")
    max_len = getattr(model.config, "max_position_embeddings", None)
    if isinstance(max_len, int) and seq_len > max_len:
        raise LaglessError(f"seq_len {seq_len} exceeds the model's {max_len} positions")
    dev = torch.device(device)
    ids = _input_ids(model, tokenizer_or_none, batch_size, seq_len, seed).to(dev)
    mask = torch.ones_like(ids)
    was_training = model.training
    model.to(dev).eval()
    times: list[float] = []
    try:
        with torch.inference_mode():
            for i in range(warmup + repeats):
                _sync(dev)
                start = time.perf_counter()
                model(input_ids=ids, attention_mask=mask)
                _sync(dev)
                if i >= warmup:
                    times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    median_ms = statistics.median(times) * 1000.0
    return {
        "latency_ms_b32": median_ms,
        "throughput_per_s": batch_size / (median_ms / 1000.0),
        "batch_size": batch_size,
        "seq_len": seq_len,
        "repeats": repeats,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_train_memory(
    model_dir: str | Path,
    method: str,
    settings: LoraSettings | None = None,
    *,
    num_labels: int = 2,
    regression: bool = False,
    batch_size: int = 32,
    seq_len: int = 64,
    steps: int = 3,
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """The full record behind ``peak_train_memory_mb`` (baseline, absolute peak, method, counts)."""
    if method not in METHODS:
        raise LaglessError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise LaglessError(f"{model_dir} holds no saved model (no config.json): save it first")
    if min(batch_size, seq_len, steps) < 1:
        raise LaglessError("the memory probe needs batch_size, seq_len and steps >= 1")
    settings = settings or LoraSettings()
    command = [
        sys.executable, "-m", "lagless.kdlora.memory_probe",
        "--model-dir", str(model_dir), "--method", method, "--num-labels", str(num_labels),
        "--batch-size", str(batch_size), "--seq-len", str(seq_len), "--steps", str(steps),
        "--device", device, "--seed", str(seed), "--lora-r", str(settings.r),
        "--lora-alpha", str(settings.alpha), "--lora-dropout", str(settings.dropout),
        "--lora-targets", ",".join(settings.targets or ()),
    ]
    if regression:
        command.append("--regression")
    if settings.train_pooler:
        command.append("--train-pooler")
    done = subprocess.run(command, capture_output=True, text=True, env=_probe_env(),
                          timeout=_PROBE_TIMEOUT_S, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    if "error" in result:
        raise LaglessError(result["error"])
    if done.returncode != 0 or "peak_mb" not in result:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"memory probe failed (exit {done.returncode}):\n{tail}")
    return result


def peak_train_memory_mb(model_dir: str | Path, method: str, settings: LoraSettings | None = None,
                         **options: Any) -> float:
    """Peak memory (MB = 2^20 bytes) that training ``method`` adds, measured in a fresh process.

    How: a new Python process (``python -m lagless.kdlora.memory_probe``) imports torch,
    transformers, peft and the model's class code, then takes a baseline. It loads the model saved in ``model_dir``
    (the model the method trains: the base model for fft and lora, the student for kd-lora),
    applies LoRA for lora and kd-lora (r, alpha, dropout, targets from ``settings``; the head
    trains too), builds AdamW over the trainable parameters, makes one batch of ``batch_size``
    random sequences of exactly ``seq_len`` tokens, and runs ``steps`` forward + backward +
    optimizer steps: cross-entropy (MSE for regression) for fft and lora, the KD loss against
    precomputed teacher logits for kd-lora (no teacher in memory, as in the trainer). The result
    is peak minus baseline, so it counts weights, gradients, optimizer state and activations.

    On CPU the baseline is the resident set size (VmRSS) after the imports; the kernel's peak
    mark (VmHWM) is reset through ``/proc/self/clear_refs`` just before the steps and read after
    them (where that is unavailable, ``getrusage`` ru_maxrss, which also sees loading). On CUDA
    the baseline is ``torch.cuda.memory_allocated`` after the imports and the peak is
    ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` before the steps.

    ``options`` are ``peak_train_memory``'s keywords (num_labels, regression, batch_size,
    seq_len, steps, device, seed).
    """
    return float(peak_train_memory(model_dir, method, settings, **options)["peak_mb"])


def _probe_env() -> dict[str, str]:
    """The caller's environment, offline, with this lagless importable in the child."""
    import lagless

    env = dict(os.environ)
    src = str(Path(lagless.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def model_size_on_disk_mb(directory: str | Path) -> float:
    """Total size of the weight files under ``directory`` (safetensors, bin, pt), MB = 2^20 bytes."""
    directory = Path(directory)
    if not directory.is_dir():
        raise LaglessError(f"{directory} is not a folder")
    total = sum(p.stat().st_size for p in directory.rglob("*")
                if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    return total / 2**20

