"""Load, check and save episode datasets: a flat ``.npz`` (D4RL layout) or a Minari dataset.

Every loader ends in :func:`validate`, so the rest of explain can trust an ``EpisodeData``:
equal lengths, no NaN/inf, integer discrete actions, boolean flags, one final observation
per episode when there are any. Mistakes in a user's file become one-line ``LaglessError``s
that name the file and the array.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lagless.errors import LaglessError
from lagless.explain.episodes import EpisodeData
from lagless.explain.minari_format import (
    data_folder,
    datasets_root,
    local_dataset_folder,
    read_minari,
    write_minari,
)
from lagless.explain.npz_format import RESERVED, read_npz, read_npz_extras, write_npz

__all__ = ["load_dataset", "load_extras", "load_npz_extras", "save_minari", "save_npz", "validate"]

_FIELDS = ("observations", "actions", "rewards", "terminations", "truncations")


def _flags(values: np.ndarray, name: str, source: str) -> np.ndarray:
    if values.dtype == np.bool_:
        return values
    if values.dtype.kind in "iuf" and np.isin(values, (0, 1)).all():
        return values.astype(bool)
    raise LaglessError(f"{source}: '{name}' must hold booleans or 0/1, got dtype {values.dtype}")


def _finite(values: np.ndarray, name: str, source: str) -> None:
    if values.dtype.kind in "fc" and not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))[0])
        raise LaglessError(f"{source}: '{name}' has NaN or inf values (first at step {bad}); "
                           "clean or drop those steps")


def _actions(actions: np.ndarray, source: str) -> np.ndarray:
    if actions.ndim == 2:
        if actions.dtype.kind not in "fiu":
            raise LaglessError(f"{source}: continuous 'actions' must be numbers, got dtype {actions.dtype}")
        return actions.astype(np.float32, copy=False)
    if actions.ndim != 1:
        raise LaglessError(f"{source}: 'actions' must be (N,) discrete ids or (N, A) continuous "
                           f"values, got shape {actions.shape}")
    if actions.dtype.kind == "f":
        if (actions != np.round(actions)).any():
            raise LaglessError(f"{source}: 'actions' is 1-D (discrete) but has fractional values; "
                               "store continuous actions with shape (N, A)")
        actions = actions.astype(np.int64)
    elif actions.dtype.kind not in "iub":
        raise LaglessError(f"{source}: 'actions' must be integers (discrete), got dtype {actions.dtype}")
    actions = actions.astype(np.int64, copy=False)
    if len(actions) and actions.min() < 0:
        raise LaglessError(f"{source}: discrete 'actions' must be >= 0, found {int(actions.min())}")
    return actions


def validate(data: EpisodeData, source: str = "dataset") -> EpisodeData:
    """Checks ``data`` and returns it with canonical dtypes (int64/float32 actions, float32
    rewards, bool flags); observations keep their stored dtype."""
    arrays = {name: np.asarray(getattr(data, name)) for name in _FIELDS}
    if any(a.ndim == 0 for a in arrays.values()):
        scalars = [n for n, a in arrays.items() if a.ndim == 0]
        raise LaglessError(f"{source}: {', '.join(scalars)} must be arrays with one row per step")
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{n}={k}" for n, k in lengths.items())
        raise LaglessError(f"{source}: arrays have different lengths ({listed}); all need one row per step")
    if lengths["actions"] == 0:
        raise LaglessError(f"{source} has no steps (all arrays are empty)")
    obs = arrays["observations"]
    if obs.dtype.kind not in "biuf":
        raise LaglessError(f"{source}: 'observations' must be numbers or booleans, got dtype {obs.dtype}")
    _finite(obs, "observations", source)
    actions = _actions(arrays["actions"], source)
    _finite(actions, "actions", source)
    rewards = arrays["rewards"]
    if rewards.ndim != 1 or rewards.dtype.kind not in "biuf":
        raise LaglessError(f"{source}: 'rewards' must be a 1-D number array, got shape {rewards.shape} "
                           f"dtype {rewards.dtype}")
    rewards = rewards.astype(np.float32, copy=False)
    _finite(rewards, "rewards", source)
    out = EpisodeData(obs, actions, rewards, _flags(arrays["terminations"], "terminations", source),
                      _flags(arrays["truncations"], "truncations", source), None, dict(data.meta))
    if data.final_observations is not None:
        final = np.asarray(data.final_observations)
        episodes = len(out.episode_bounds())
        if final.shape != (episodes, *obs.shape[1:]):
            raise LaglessError(f"{source}: 'final_observations' has shape {final.shape}, expected "
                               f"{(episodes, *obs.shape[1:])} (one per episode)")
        _finite(final, "final_observations", source)
        out.final_observations = final
    return out


def _check_extras(extras: dict[str, np.ndarray], steps: int, source: str) -> dict[str, np.ndarray]:
    out = {}
    for name, values in extras.items():
        values = np.asarray(values)
        if name in RESERVED or not name.isidentifier():
            raise LaglessError(f"{source}: extra array name '{name}' is reserved or not an identifier")
        if values.ndim == 0 or len(values) != steps:
            raise LaglessError(f"{source}: extra '{name}' has {len(values) if values.ndim else 0} rows, "
                               f"expected one per step ({steps})")
        out[name] = values
    return out


def save_npz(data: EpisodeData, path: str | os.PathLike[str],
             extras: dict[str, np.ndarray] | None = None) -> Path:
    """Writes ``data`` (and per-step ``extras``) to an ``.npz`` file, atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise LaglessError(f"dataset file {path} must end in .npz")
    data = validate(data, str(path))
    return write_npz(path, data, _check_extras(extras or {}, data.num_steps, str(path)))


def save_minari(data: EpisodeData, dataset_id: str, *, env_id: str | None = None,
                observation_space=None, action_space=None,
                data_path: str | os.PathLike[str] | None = None,
                extras: dict[str, np.ndarray] | None = None) -> Path:
    """Writes a Minari (hdf5) dataset readable with ``minari.load_dataset(dataset_id)``.

    ``data_path`` is the datasets root to use instead of ``MINARI_DATASETS_PATH``; the dataset
    lands in ``root/dataset_id``. Episodes without a final observation repeat their last one
    (noted in the dataset's metadata and description). Returns the dataset folder.
    """
    data = validate(data, f"Minari dataset {dataset_id}")
    extras = _check_extras(extras or {}, data.num_steps, f"Minari dataset {dataset_id}")
    return write_minari(data, dataset_id, env_id=env_id, observation_space=observation_space,
                        action_space=action_space, data_path=data_path, extras=extras)


def _resolve(source: str | os.PathLike[str]) -> tuple[str, Path]:
    """('npz' | 'minari', path): where ``source`` points, or a LaglessError naming what was tried."""
    path = Path(source).expanduser()
    if path.is_file():
        return "npz", path
    if path.is_dir():
        folder = data_folder(path)
        if folder is None:
            raise LaglessError(f"{path} is a folder but not a Minari dataset (no data/metadata.json); "
                               "give an .npz file, a Minari dataset folder or a Minari dataset id")
        return "minari", folder
    folder = local_dataset_folder(str(source))
    if folder is None:
        raise LaglessError(f"'{source}' is neither an existing file or folder nor a local Minari "
                           f"dataset id (looked in {datasets_root()}; set MINARI_DATASETS_PATH)")
    return "minari", folder


def load_dataset(source: str | os.PathLike[str]) -> EpisodeData:
    """An ``.npz`` file, a Minari dataset folder, or a local Minari dataset id, checked."""
    kind, path = _resolve(source)
    if kind == "npz":
        data = read_npz(path)
        data.meta.setdefault("source", str(path.resolve()))
        return validate(data, str(path))
    data, _ = read_minari(path, str(source))
    return validate(data, f"Minari dataset {source}")


def load_npz_extras(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Per-step extra arrays stored next to the episodes in an ``.npz`` (e.g. ``policy_probs``)."""
    return read_npz_extras(path)


def load_extras(source: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Per-step extras of any dataset ``load_dataset`` reads (empty if it has none)."""
    kind, path = _resolve(source)
    if kind == "npz":
        return read_npz_extras(path)
    return read_minari(path, str(source))[1]
