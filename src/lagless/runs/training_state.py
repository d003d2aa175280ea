"""Flatten trainer state (modules, optimizers, RNGs) into checkpoint tensors plus JSON meta.

A checkpoint stores one flat ``dict[str, Tensor]`` and one JSON dict; these helpers put each
piece of state under a key prefix and restore it exactly, so a resumed run continues
bit-identically to one that was never interrupted. Prefixes must not nest ("policy" and
"policy.head" would collide); keys are ``f"{prefix}.{name}"``.
"""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import numpy as np
import torch

from lagless.errors import LaglessError

__all__ = [
    "load_module_tensors",
    "load_optimizer_tensors",
    "module_tensors",
    "optimizer_tensors",
    "restore_rng",
    "rng_tensors",
]

logger = logging.getLogger(__name__)


def _key_prefix(prefix: str) -> str:
    if not prefix:
        return ""
    return prefix if prefix.endswith(".") else prefix + "."


def _under(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    p = _key_prefix(prefix)
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def _snapshot(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone()


def _check_json(value: Any, what: str) -> Any:
    try:
        json.dumps(value)
    except TypeError as e:
        raise TypeError(f"{what} is not JSON-serialisable: {e}") from None
    return value


# --------------------------------------------------------------------------- modules


def module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A snapshot (detached clones) of ``module.state_dict()`` with keys ``prefix.name``."""
    p = _key_prefix(prefix)
    out = {}
    for name, value in module.state_dict().items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state of {p}{name} is {type(value).__name__}, not a tensor")
        out[p + name] = _snapshot(value)
    return out


def load_module_tensors(
    prefix: str, module: torch.nn.Module, tensors: dict[str, torch.Tensor]
) -> None:
    """Load ``prefix.*`` tensors into ``module`` strictly; mismatches raise LaglessError."""
    p = _key_prefix(prefix)
    found = _under(prefix, tensors)
    expected = module.state_dict()
    for name in expected:
        if name not in found:
            raise LaglessError(
                f"checkpoint has no tensor {p}{name}: it was saved from a different model; "
                "resume with the same model settings or start a new run."
            )
    for name in found:
        if name not in expected:
            raise LaglessError(
                f"checkpoint has unexpected tensor {p}{name}: it was saved from a different "
                "model; resume with the same model settings or start a new run."
            )
    for name, want in expected.items():
        got = found[name]
        if tuple(got.shape) != tuple(want.shape):
            raise LaglessError(
                f"checkpoint tensor {p}{name} has shape {tuple(got.shape)} but the model expects "
                f"{tuple(want.shape)}: resume with the same model settings or start a new run."
            )
    try:
        module.load_state_dict(found, strict=True)
    except RuntimeError as e:
        raise LaglessError(f"could not load {p}* into the model ({e}): start a new run.") from None


# --------------------------------------------------------------------------- optimizers


def optimizer_tensors(
    prefix: str, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (``prefix.state.I.NAME``) and JSON meta.

    Per-parameter tensors (exp_avg, exp_avg_sq, 0-dim step, ...) and any tensor-valued
    hyperparameter go into the tensor dict; everything else (lr, betas, eps, param ids) into
    the meta, which must be passed back unchanged to :func:`load_optimizer_tensors`.
    """
    p = _key_prefix(prefix)
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    state_meta: dict[str, dict[str, Any]] = {}
    for idx, pstate in sd["state"].items():
        entry: dict[str, Any] = {"tensors": [], "values": {}}
        for name, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{p}state.{idx}.{name}"] = _snapshot(value)
                entry["tensors"].append(name)
            else:
                entry["values"][name] = _check_json(value, f"optimizer state {idx}.{name}")
        state_meta[str(idx)] = entry
    groups_meta = []
    for i, group in enumerate(sd["param_groups"]):
        entry = {"tensors": [], "values": {}}
        for name, value in group.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{p}param_groups.{i}.{name}"] = _snapshot(value)
                entry["tensors"].append(name)
            else:
                entry["values"][name] = _check_json(value, f"optimizer param_groups[{i}].{name}")
        groups_meta.append(entry)
    meta = {"type": type(optimizer).__name__, "state": state_meta, "param_groups": groups_meta}
    return tensors, meta


def _fetch(found: dict[str, torch.Tensor], p: str, key: str, used: set[str]) -> torch.Tensor:
    if key not in found:
        raise LaglessError(
            f"checkpoint has no optimizer tensor {p}{key}: the checkpoint is incomplete or from "
            "another optimizer; start a new run."
        )
    used.add(key)
    return found[key]


def _like(template: Any, value: Any) -> Any:
    """Undo JSON's tuple→list conversion where the live optimizer uses tuples (e.g. betas)."""
    if isinstance(template, tuple) and isinstance(value, list):
        return tuple(value)
    return value


def load_optimizer_tensors(
    prefix: str,
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> None:
    """Restore an optimizer from :func:`optimizer_tensors` output; mismatches raise LaglessError."""
    p = _key_prefix(prefix)
    try:
        state_meta = meta["state"]
        groups_meta = meta["param_groups"]
    except (KeyError, TypeError):
        raise LaglessError(
            f"checkpoint meta for optimizer {p}* is missing or malformed: the checkpoint is "
            "incomplete; delete it to resume from the previous one."
        ) from None
    saved_type = meta.get("type")
    if saved_type is not None and saved_type != type(optimizer).__name__:
        raise LaglessError(
            f"checkpoint optimizer {p}* is {saved_type}, not {type(optimizer).__name__}: resume "
            "with the same optimizer settings or start a new run."
        )
    found = _under(prefix, tensors)
    used: set[str] = set()
    state: dict[int, dict[str, Any]] = {}
    for idx, entry in state_meta.items():
        pstate: dict[str, Any] = dict(entry.get("values", {}))
        for name in entry.get("tensors", []):
            pstate[name] = _fetch(found, p, f"state.{idx}.{name}", used)
        state[int(idx)] = pstate
    live_groups = optimizer.param_groups
    if len(groups_meta) != len(live_groups):
        raise LaglessError(
            f"checkpoint optimizer {p}* has {len(groups_meta)} parameter groups but the "
            f"optimizer has {len(live_groups)}: resume with the same settings or start a new run."
        )
    groups = []
    for i, (entry, live) in enumerate(zip(groups_meta, live_groups)):
        group = {k: _like(live.get(k), v) for k, v in entry.get("values", {}).items()}
        for name in entry.get("tensors", []):
            group[name] = _fetch(found, p, f"param_groups.{i}.{name}", used)
        groups.append(group)
    extra = sorted(set(found) - used)
    if extra:
        raise LaglessError(
            f"checkpoint has unexpected optimizer tensor {p}{extra[0]}: it was saved from "
            "another optimizer; resume with the same settings or start a new run."
        )
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as e:
        raise LaglessError(
            f"could not load optimizer {p}* ({e}): resume with the same model and optimizer "
            "settings or start a new run."
        ) from None


# --------------------------------------------------------------------------- RNGs


def _to_json(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        return {str(k): _to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _from_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return np.array(obj["__ndarray__"], dtype=obj["dtype"])
        return {k: _from_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json(v) for v in obj]
    return obj


def rng_tensors(
    generator: np.random.Generator | None = None, *, prefix: str = "rng"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Capture torch (CPU, and CUDA if initialised), Python ``random`` and numpy RNG states.

    The torch states become uint8 tensors; the rest goes into the returned JSON meta, which
    must be passed back unchanged to :func:`restore_rng`. ``generator`` (a numpy Generator)
    is captured too when given.
    """
    p = _key_prefix(prefix)
    tensors = {f"{p}torch_cpu": torch.get_rng_state().clone()}
    cuda_devices = 0
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"{p}torch_cuda.{i}"] = state.clone()
        cuda_devices = torch.cuda.device_count()
    version, internal, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state(legacy=True)
    meta: dict[str, Any] = {
        "python_random": [version, list(internal), gauss],
        "numpy_global": [
            np_name,
            np_keys.tolist(),
            int(np_pos),
            int(np_has_gauss),
            float(np_cached),
        ],
        "cuda_devices": cuda_devices,
    }
    if generator is not None:
        meta["numpy_generator"] = _to_json(generator.bit_generator.state)
    return tensors, meta


def restore_rng(
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    generator: np.random.Generator | None = None,
    *,
    prefix: str = "rng",
) -> None:
    """Restore the RNG states captured by :func:`rng_tensors` (and ``generator``'s, if given)."""
    p = _key_prefix(prefix)
    cpu = tensors.get(f"{p}torch_cpu")
    if cpu is None or cpu.dtype != torch.uint8:
        raise LaglessError(
            f"checkpoint has no valid RNG tensor {p}torch_cpu: the checkpoint is incomplete; "
            "delete it to resume from the previous one."
        )
    try:
        version, internal, gauss = meta["python_random"]
        np_name, np_keys, np_pos, np_has_gauss, np_cached = meta["numpy_global"]
        torch.set_rng_state(cpu.cpu())
        random.setstate((version, tuple(internal), gauss))
        np.random.set_state(
            (np_name, np.asarray(np_keys, dtype=np.uint32), np_pos, np_has_gauss, np_cached)
        )
        if generator is not None:
            if "numpy_generator" not in meta:
                raise KeyError("numpy_generator")
            generator.bit_generator.state = _from_json(meta["numpy_generator"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise LaglessError(
            f"checkpoint RNG state {p}* is missing or malformed ({e!r}): delete the checkpoint "
            "to resume from the previous one, or start a new run."
        ) from None
    cuda_keys = [k for k in tensors if k.startswith(f"{p}torch_cuda.")]
    cuda = [tensors[k] for k in sorted(cuda_keys, key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
            torch.cuda.set_rng_state_all(cuda)
        else:
            logger.warning(
                "checkpoint holds CUDA RNG state for %d devices but %d are available; "
                "CUDA randomness will not continue identically",
                len(cuda),
                torch.cuda.device_count() if torch.cuda.is_available() else 0,
            )
