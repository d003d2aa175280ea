"""Crash-safe checkpoints: a training run killed at any moment can resume from the last good one.

Layout: ``RUN/checkpoints/step_{step:012d}/`` holds ``weights.safetensors`` (a flat dict of
tensors) and ``meta.json`` (JSON meta plus the weights file's size and sha256). A checkpoint is
built in a hidden ``RUN/checkpoints/.tmp-*`` folder and renamed into place only once complete,
so readers never see a half-written one. One writer per run folder is assumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import lagless
from lagless.errors import LaglessError
from lagless.runs.atomic import fsync_dir

__all__ = [
    "CHECKPOINTS_DIR",
    "META_FILE",
    "WEIGHTS_FILE",
    "checkpoint_step",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
WEIGHTS_FILE = "weights.safetensors"
META_FILE = "meta.json"
_TMP_PREFIX = ".tmp-"
_STEP_RE = re.compile(r"^step_(\d+)$")
_REPLACED_RE = re.compile(r"^\.tmp-replaced-(step_\d+)-[0-9a-f]+$")


def checkpoint_step(path: str | os.PathLike[str]) -> int:
    """The training step encoded in a checkpoint folder's name (``step_000000001234`` → 1234)."""
    m = _STEP_RE.match(Path(path).name)
    if m is None:
        raise LaglessError(
            f"{path} is not a checkpoint folder (expected a name like step_000000001234): "
            "point at a folder inside RUN/checkpoints/."
        )
    return int(m.group(1))


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Complete checkpoint folders of a run, oldest step first; temp folders are ignored."""
    ckpt_dir = Path(run_dir) / CHECKPOINTS_DIR
    if not ckpt_dir.is_dir():
        return []
    found = []
    for entry in ckpt_dir.iterdir():
        m = _STEP_RE.match(entry.name)
        if m is not None and entry.is_dir():
            found.append((int(m.group(1)), entry))
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The checkpoint with the highest step, or None when the run has none."""
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def _prepare_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors that share no storage (safetensors refuses sharing)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"checkpoint tensor names must be str, got {name!r}")
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"checkpoint entry {name!r} is {type(t).__name__}, not a torch.Tensor")
        t = t.detach().to("cpu").contiguous()
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        partial = storage.nbytes() != t.numel() * t.element_size()
        if partial or (ptr in seen and t.numel() > 0):
            t = t.clone()
            ptr = t.untyped_storage().data_ptr()
        seen.add(ptr)
        out[name] = t
    return out


def _hash_and_fsync(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "r+b") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
        os.fsync(f.fileno())
    return h.hexdigest(), size


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _clean_leftovers(ckpt_dir: Path) -> None:
    """Remove temp folders from saves that were killed; restore a checkpoint that was mid-replace."""
    for entry in ckpt_dir.iterdir():
        if not entry.name.startswith(_TMP_PREFIX):
            continue
        m = _REPLACED_RE.match(entry.name)
        if m is not None and not (ckpt_dir / m.group(1)).exists():
            # Killed between moving the old checkpoint away and moving the new one in.
            logger.warning("restoring checkpoint %s left aside by an interrupted save", m.group(1))
            os.rename(entry, ckpt_dir / m.group(1))
            continue
        logger.info("removing leftover temp folder %s from an interrupted save", entry)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _remove_checkpoint(path: Path) -> None:
    # Rename first so a kill during rmtree never leaves a half-deleted checkpoint visible.
    doomed = path.parent / f"{_TMP_PREFIX}deleting-{path.name}-{secrets.token_hex(4)}"
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    step: int,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    keep: int = 3,
) -> Path:
    """Atomically write checkpoint ``step`` and prune older ones beyond ``keep``.

    ``meta`` must be JSON-serialisable; ``lagless_version``, ``step``, ``saved_at`` and ``files``
    are added (overriding same-named keys). The checkpoint just written is never pruned, even if
    newer steps exist; otherwise the ``keep`` highest steps survive. Returns the folder.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep!r}")
    full_meta = dict(meta)
    full_meta.update(
        lagless_version=lagless.__version__,
        step=step,
        saved_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    json.dumps(full_meta)  # fail early (TypeError) before touching the disk
    prepared = _prepare_tensors(tensors)

    ckpt_dir = Path(run_dir) / CHECKPOINTS_DIR
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(ckpt_dir)
    final = ckpt_dir / f"step_{step:012d}"
    tmp = ckpt_dir / f"{_TMP_PREFIX}{final.name}-{secrets.token_hex(4)}"
    os.mkdir(tmp)
    try:
        weights = tmp / WEIGHTS_FILE
        save_file(prepared, str(weights))
        digest, size = _hash_and_fsync(weights)
        full_meta["files"] = {WEIGHTS_FILE: {"sha256": digest, "bytes": size}}
        with open(tmp / META_FILE, "w", encoding="utf-8") as f:
            json.dump(full_meta, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(tmp)

        replaced = None
        if final.exists():
            replaced = ckpt_dir / f"{_TMP_PREFIX}replaced-{final.name}-{secrets.token_hex(4)}"
            os.rename(final, replaced)
        os.rename(tmp, final)
        fsync_dir(ckpt_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    logger.debug("saved checkpoint %s (%d tensors, %d bytes)", final, len(prepared), size)

    others = [p for p in list_checkpoints(run_dir) if p != final]
    excess = len(others) + 1 - keep
    for old in others[: max(0, excess)]:
        logger.debug("pruning checkpoint %s", old)
        _remove_checkpoint(old)
    if excess > 0:
        fsync_dir(ckpt_dir)
    return final


def _corrupt(path: Path, why: str) -> LaglessError:
    return LaglessError(
        f"checkpoint {path} is corrupt or truncated ({why}): delete it to resume from the "
        "previous one"
    )


def load_checkpoint(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a checkpoint folder; returns ``(tensors, meta)``.

    Raises LaglessError (never a bare traceback) when the folder or its files are missing,
    meta.json is not valid JSON, the weights' size or sha256 differ from meta.json, or
    safetensors cannot read the weights.
    """
    path = Path(path)
    if not path.is_dir():
        hint = ""
        if (path / CHECKPOINTS_DIR).is_dir() or path.name == CHECKPOINTS_DIR:
            hint = " (this looks like a run folder; pass a step_* folder inside checkpoints/)"
        raise LaglessError(
            f"checkpoint folder {path} does not exist{hint}: check the path or pick one from "
            "RUN/checkpoints/."
        )
    meta_path = path / META_FILE
    weights_path = path / WEIGHTS_FILE
    for needed in (meta_path, weights_path):
        if not needed.is_file():
            raise LaglessError(
                f"checkpoint {path} is incomplete: {needed.name} is missing; delete the folder "
                "to resume from the previous checkpoint."
            )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _corrupt(path, f"{META_FILE} is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise _corrupt(path, f"{META_FILE} holds {type(meta).__name__}, not an object")
    files = meta.get("files")
    record = files.get(WEIGHTS_FILE) if isinstance(files, dict) else None
    if not isinstance(record, dict) or "sha256" not in record or "bytes" not in record:
        raise _corrupt(path, f"{META_FILE} has no size/sha256 record for {WEIGHTS_FILE}")
    size = weights_path.stat().st_size
    if size != record["bytes"]:
        raise _corrupt(path, f"{WEIGHTS_FILE} is {size} bytes, expected {record['bytes']}")
    if _hash_file(weights_path) != record["sha256"]:
        raise _corrupt(path, f"{WEIGHTS_FILE} sha256 does not match {META_FILE}")
    try:
        tensors = load_file(str(weights_path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
        raise _corrupt(path, f"safetensors could not read {WEIGHTS_FILE}: {e}") from None
    return tensors, meta
