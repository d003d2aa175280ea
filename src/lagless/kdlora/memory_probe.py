"""Subprocess entry point that measures one method's peak training memory in a fresh process.

Run as ``python -m lagless.kdlora.memory_probe --model-dir D --method lora ...``; prints one
JSON line. A fresh process per measurement keeps earlier models, caches and allocator pools
out of the number. ``lagless.kdlora.efficiency.peak_train_memory_mb`` is the caller; its
docstring says exactly what is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import re
import resource
import sys
from pathlib import Path
from typing import Any


def _status_kb(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (Linux), or None elsewhere."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kb("VmHWM") is not None


def _maxrss_mb() -> float:
    """Lifetime peak RSS from getrusage (KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Baseline after imports, then load + LoRA + AdamW, then the peak over ``steps`` steps."""
    import peft  # noqa: F401  (imported before the baseline, like everything the steps need)
    import torch
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    from lagless.kdlora.distill_loss import kd_loss, task_loss
    from lagless.kdlora.lora import LoraSettings, apply_lora, count_parameters
    from lagless.kdlora.models import load_classifier

    # transformers imports model code lazily; resolve the class now so its code is in the baseline
    with contextlib.suppress(OSError, ValueError, KeyError):  # load_classifier reports those
        config = AutoConfig.from_pretrained(args.model_dir, local_files_only=True)
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING.get(type(config), None)
    cuda = str(args.device).startswith("cuda")
    torch.manual_seed(args.seed)
    gc.collect()
    if cuda:
        torch.cuda.init()
        baseline = torch.cuda.memory_allocated(args.device) / 2**20
    else:
        baseline = (_status_kb("VmRSS") or 0) / 2**10 or _maxrss_mb()

    model = load_classifier(args.model_dir, num_labels=args.num_labels, regression=args.regression)
    if args.method in ("lora", "kd-lora"):
        settings = LoraSettings(r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout,
                                targets=tuple(args.lora_targets.split(",")) if args.lora_targets else None,
                                train_pooler=args.train_pooler)
        model = apply_lora(model, settings)
    model.to(args.device).train()
    total, trainable = count_parameters(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=5e-4, weight_decay=0.01)
    vocab = int(model.config.vocab_size)
    ids = torch.randint(0, vocab, (args.batch_size, args.seq_len), device=args.device)
    mask = torch.ones_like(ids)
    labels_n = 1 if args.regression else args.num_labels
    if args.regression:
        labels = torch.rand(args.batch_size, device=args.device) * 5
    else:
        labels = torch.randint(0, args.num_labels, (args.batch_size,), device=args.device)
    teacher_logits = torch.randn(args.batch_size, labels_n, device=args.device)

    gc.collect()
    if cuda:
        torch.cuda.reset_peak_memory_stats(args.device)
        how = "cuda max_memory_allocated"
    else:
        how = "VmHWM" if _reset_peak_rss() else "ru_maxrss"
    for _ in range(args.steps):
        logits = model(input_ids=ids, attention_mask=mask).logits
        if args.method == "kd-lora":
            loss = kd_loss(logits, teacher_logits, labels, regression=args.regression)
        else:
            loss = task_loss(logits, labels, args.regression)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize(args.device)
        peak = torch.cuda.max_memory_allocated(args.device) / 2**20
    elif how == "VmHWM":
        peak = (_status_kb("VmHWM") or 0) / 2**10
    else:
        peak = _maxrss_mb()
    return {
        "peak_mb": peak - baseline,
        "baseline_mb": baseline,
        "absolute_peak_mb": peak,
        "how": how,
        "method": args.method,
        "total_params": total,
        "trainable_params": trainable,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "steps": args.steps,
        "device": str(args.device),
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lagless.kdlora.memory_probe",
                                description="peak training memory of one method, as JSON")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--method", required=True, choices=("fft", "lora", "kd-lora"))
    p.add_argument("--num-labels", type=int, default=2)
    p.add_argument("--regression", action="store_true")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--lora-dropout", type=float, default=0.05)
    p.add_argument("--lora-targets", default="")
    p.add_argument("--train-pooler", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from lagless.errors import LaglessError

    try:
        result = measure(args)
    except LaglessError as e:
        sys.stdout.write(json.dumps({"error": str(e)}) + "\n")
        return 2
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
