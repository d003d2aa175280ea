"""The flat ``.npz`` episode format (the D4RL layout), read without pickle and written atomically.

One array per field, all of length N: ``observations, actions, rewards, terminations,
truncations`` (D4RL's ``terminals``/``timeouts`` are accepted for the last two), optional
``final_observations`` (one per episode) and ``meta_json`` (a JSON string). Any other array
of length N is an *extra* per-step column (e.g. ``policy_probs``, ``values`` from
``lagless record``), read with :func:`read_npz_extras`.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from lagless.errors import LaglessError
from lagless.explain.episodes import EpisodeData
from lagless.runs.atomic import atomic_write_with

REQUIRED = ("observations", "actions", "rewards")
# Our name first, then the D4RL name that means the same thing.
ALIASES = {"terminations": ("terminations", "terminals"), "truncations": ("truncations", "timeouts")}
RESERVED = frozenset(
    {*REQUIRED, "terminations", "terminals", "truncations", "timeouts", "final_observations",
     "meta_json"}
)
_READ_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error, KeyError)


def _open(path: Path):
    try:
        npz = np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise LaglessError(f"{path} is not a readable .npz file ({exc}); write it with "
                           "numpy.savez or 'lagless record'") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise LaglessError(f"{path} holds a single .npy array, not an .npz of named arrays; "
                           f"save it with numpy.savez(path, observations=..., actions=..., ...)")
    return npz


def _get(npz, name: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(npz[name])
    except _READ_ERRORS as exc:
        raise LaglessError(f"{path}: array '{name}' cannot be read ({exc}); the file is corrupt, "
                           "truncated or holds pickled objects: write it again") from exc


def read_npz(path: str | os.PathLike[str]) -> EpisodeData:
    """Reads the arrays as stored (no validation beyond presence; see ``datasets.validate``)."""
    path = Path(path)
    with _open(path) as npz:
        names = set(npz.files)
        arrays = {}
        for key in REQUIRED:
            if key not in names:
                raise LaglessError(f"{path} has no '{key}' array (it has: {', '.join(sorted(names))}); "
                                   "needed: observations, actions, rewards, terminations, truncations")
            arrays[key] = _get(npz, key, path)
        for key, options in ALIASES.items():
            found = next((name for name in options if name in names), None)
            if found is None:
                raise LaglessError(f"{path} has no '{options[0]}' (or D4RL '{options[1]}') array "
                                   f"(it has: {', '.join(sorted(names))})")
            arrays[key] = _get(npz, found, path)
        final = _get(npz, "final_observations", path) if "final_observations" in names else None
        meta = {}
        if "meta_json" in names:
            raw = _get(npz, "meta_json", path)
            try:
                meta = json.loads(str(raw.item()) if raw.size == 1 else "")
            except json.JSONDecodeError as exc:
                raise LaglessError(f"{path}: 'meta_json' is not valid JSON ({exc})") from exc
            if not isinstance(meta, dict):
                raise LaglessError(f"{path}: 'meta_json' must hold a JSON object, got {type(meta).__name__}")
    return EpisodeData(final_observations=final, meta=meta, **arrays)


def read_npz_extras(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The per-step extra arrays of an npz dataset (everything that is not a standard field)."""
    path = Path(path)
    with _open(path) as npz:
        return {name: _get(npz, name, path) for name in npz.files if name not in RESERVED}


def write_npz(path: str | os.PathLike[str], data: EpisodeData,
              extras: dict[str, np.ndarray] | None = None) -> Path:
    """Writes compressed, atomically: a temp file in the same folder, then a rename."""
    path = Path(path)
    arrays = {
        "observations": data.observations, "actions": data.actions, "rewards": data.rewards,
        "terminations": data.terminations, "truncations": data.truncations,
        "meta_json": np.asarray(json.dumps(data.meta, default=_json_default)),
    }
    if data.final_observations is not None:
        arrays["final_observations"] = data.final_observations
    arrays.update(extras or {})
    return atomic_write_with(path, lambda f: np.savez_compressed(f, **arrays))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, np.ndarray)):
        return str(value) if isinstance(value, Path) else value.tolist()
    raise LaglessError(f"dataset meta value {value!r} is not JSON-serialisable; use str/number/list/dict")
