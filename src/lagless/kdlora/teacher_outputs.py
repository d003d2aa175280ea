"""Teacher logits computed once per training set and stored, so that distillation costs one
student forward per step instead of a teacher forward as well.

Row i holds the teacher's output for example i of the dataset; the trainer looks rows up by
the batch's ``index`` (``teacher[batch["index"]]``), so any shuffling stays aligned.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

import lagless
from lagless.errors import LaglessError
from lagless.kdlora.batching import EncodedDataset, make_loader
from lagless.runs import atomic_write_bytes

__all__ = ["cached_teacher_logits", "load_teacher_logits", "save_teacher_logits", "teacher_logits"]

_KEY = "teacher_logits"


def _logits_of(output: Any) -> torch.Tensor:
    """Logits from a Hugging Face output object, a tuple, or a plain tensor."""
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)):
        return output[0]
    return output


def teacher_logits(
    model: torch.nn.Module,
    dataset: EncodedDataset,
    tokenizer: Any,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> torch.Tensor:
    """(N, C) float32 logits on the CPU, row i for example i (C = 1 for regression).

    Runs in eval mode (no dropout) under ``torch.inference_mode``; the model's train/eval
    mode is restored afterwards. The model must already be on ``device``.
    """
    loader = make_loader(dataset, tokenizer, batch_size, shuffle=False)
    out: torch.Tensor | None = None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in tqdm(loader, desc="teacher logits", unit="batch", disable=not progress):
                index = batch.pop("index")
                batch.pop("labels")
                inputs = {k: v.to(device) for k, v in batch.items()}
                logits = _logits_of(model(**inputs)).float().cpu()
                if logits.ndim == 1:
                    logits = logits.unsqueeze(1)
                if out is None:
                    out = torch.empty(len(dataset), logits.shape[1], dtype=torch.float32)
                out[index] = logits
    finally:
        model.train(was_training)
    if out is None:
        raise LaglessError("cannot compute teacher logits for an empty dataset")
    return out


def save_teacher_logits(path: str | os.PathLike[str], logits: torch.Tensor, *,
                        key: str | None = None) -> Path:
    """Write logits to a safetensors file atomically (with the lagless version as metadata).

    ``key`` names what they were computed from (teacher checkpoint, rows, max length: see
    ``provenance.teacher_logits_key``); ``cached_teacher_logits`` reads them back only for it.
    """
    if logits.ndim != 2:
        raise ValueError(f"teacher logits must be (N, C), got {tuple(logits.shape)}")
    metadata = {"lagless_version": lagless.__version__, "rows": str(logits.shape[0])}
    if key is not None:
        metadata["key"] = key
    data = save({_KEY: logits.detach().float().cpu().contiguous()}, metadata=metadata)
    return atomic_write_bytes(path, data)


def cached_teacher_logits(path: str | os.PathLike[str], key: str,
                          expected_rows: int) -> torch.Tensor | None:
    """The logits at ``path`` if they were saved for ``key``; None when there are none, when they
    were computed from another teacher or other data, or when the file is unreadable (a cache
    is recomputed, not repaired)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with safe_open(path, framework="pt") as f:
            saved = (f.metadata() or {}).get("key")
    except (SafetensorError, OSError, ValueError):
        return None
    if saved != key:
        return None
    return load_teacher_logits(path, expected_rows)


def load_teacher_logits(path: str | os.PathLike[str], expected_rows: int) -> torch.Tensor:
    """Read logits written by ``save_teacher_logits`` and check they fit the data."""
    path = Path(path)
    if not path.is_file():
        raise LaglessError(f"no teacher outputs at {path}: compute them first")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise LaglessError(f"{path} is not a readable safetensors file ({e}): recompute it") from e
    logits = tensors.get(_KEY)
    if logits is None or logits.ndim != 2:
        raise LaglessError(f"{path} holds no (N, C) tensor {_KEY!r}: recompute the teacher outputs")
    if logits.shape[0] != expected_rows:
        raise LaglessError(
            f"teacher outputs were computed for {logits.shape[0]} examples but the data has "
            f"{expected_rows}: recompute them"
        )
    if not torch.isfinite(logits).all():
        raise LaglessError(f"{path} contains NaN or inf: recompute the teacher outputs")
    return logits.float()
