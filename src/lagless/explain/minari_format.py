"""Minari datasets in and out, so users' existing offline-RL datasets load as they are.

Minari stores episodes with T+1 observations (the last is the final observation) and T
actions, rewards and flags; lagless keeps steps flat, so reading keeps ``observations[:-1]``
per episode and collects the last one in ``final_observations``. Writing does the reverse;
episodes that come without a final observation (e.g. from an ``.npz``) repeat their last
observation, and the dataset metadata records that (``lagless_final_observation_repeated``)
so that reading it back drops them again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
from gymnasium import spaces

from lagless.errors import LaglessError
from lagless.explain.episodes import EpisodeData

log = logging.getLogger(__name__)

META_KEY = "lagless_meta"  # our EpisodeData.meta, as a JSON string in Minari's metadata.json
REPEATED_KEY = "lagless_final_observation_repeated"
EXTRAS_KEY = "lagless_extras"  # names of per-step extras stored in each episode's infos


def datasets_root() -> Path:
    """Where Minari keeps local datasets (``MINARI_DATASETS_PATH`` or ``~/.minari/datasets``)."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".minari" / "datasets"


def data_folder(path: Path) -> Path | None:
    """The folder holding Minari's ``metadata.json`` for a dataset folder, or None."""
    for candidate in (path / "data", path):
        if (candidate / "metadata.json").is_file():
            return candidate
    return None


def local_dataset_folder(dataset_id: str) -> Path | None:
    """The data folder of a local Minari dataset id, without creating any folder (unlike Minari)."""
    return data_folder(datasets_root() / dataset_id)


def _open(folder: Path, name: str):
    import minari

    try:
        return minari.MinariDataset(folder)
    except (ValueError, OSError, KeyError, AssertionError) as exc:
        raise LaglessError(f"Minari dataset {name} at {folder} cannot be read ({exc})") from exc


def _flat_batch(space: spaces.Space, values, name: str) -> np.ndarray:
    """Flattens a batch of Dict/Tuple observations to (T, D), as gymnasium's ``flatten`` would."""
    if isinstance(space, spaces.Box):
        values = np.asarray(values)
        return values.reshape(len(values), -1)
    if isinstance(space, spaces.Discrete):
        values = np.asarray(values, dtype=np.int64) - int(space.start)
        return np.eye(int(space.n), dtype=space.dtype)[values]
    if isinstance(space, spaces.Dict):
        return np.concatenate([_flat_batch(sub, values[key], name) for key, sub in space.spaces.items()], axis=1)
    if isinstance(space, spaces.Tuple):
        return np.concatenate([_flat_batch(sub, values[i], name) for i, sub in enumerate(space.spaces)], axis=1)
    raise LaglessError(f"Minari dataset {name}: observation part {space} is not supported "
                       "(only Box, Discrete, and Dict/Tuple of those)")


def _observations(space: spaces.Space, values, name: str) -> np.ndarray:
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        return _flat_batch(space, values, name)
    if isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiBinary, spaces.MultiDiscrete)):
        return np.asarray(values)
    raise LaglessError(f"Minari dataset {name}: observation space {space} is not supported "
                       "(use Box, Discrete, MultiBinary, MultiDiscrete, or a Dict/Tuple of Box/Discrete)")


def _actions(space: spaces.Space, values, name: str) -> np.ndarray:
    if isinstance(space, spaces.Discrete):
        return np.asarray(values, dtype=np.int64).reshape(-1)
    if isinstance(space, spaces.Box):
        values = np.asarray(values, dtype=np.float32)
        return values.reshape(len(values), -1)
    raise LaglessError(f"Minari dataset {name}: action space {space} is not supported (use Discrete or Box)")


def read_minari(folder: Path, name: str) -> tuple[EpisodeData, dict[str, np.ndarray]]:
    """(EpisodeData, per-step extras) from a Minari data folder; ``name`` is used in messages."""
    dataset = _open(folder, name)
    obs_space, act_space = dataset.observation_space, dataset.action_space
    metadata = dataset.storage.metadata
    extra_names = list(json.loads(metadata.get(EXTRAS_KEY, "[]")))
    parts: dict[str, list] = {k: [] for k in ("obs", "final", "act", "rew", "term", "trunc")}
    extras: dict[str, list] = {k: [] for k in extra_names}
    cut = 0
    for episode in dataset.iterate_episodes():
        steps = len(episode.rewards)
        if steps == 0:
            continue
        obs = _observations(obs_space, episode.observations, name)
        if len(obs) != steps + 1:
            raise LaglessError(f"Minari dataset {name}: episode {episode.id} has {len(obs)} observations "
                               f"for {steps} steps (Minari stores T+1)")
        parts["obs"].append(obs[:-1])
        parts["final"].append(obs[-1])
        parts["act"].append(_actions(act_space, episode.actions, name))
        parts["rew"].append(np.asarray(episode.rewards, dtype=np.float32))
        term = np.asarray(episode.terminations, dtype=bool)
        trunc = np.asarray(episode.truncations, dtype=bool).copy()
        if not (term[-1] or trunc[-1]):  # cut short: mark it, or it would merge with the next episode
            trunc[-1] = True
            cut += 1
        parts["term"].append(term)
        parts["trunc"].append(trunc)
        for key in extra_names:
            extras[key].append(np.asarray((episode.infos or {})[key])[:steps])
    if not parts["act"]:
        raise LaglessError(f"Minari dataset {name} has no steps")
    meta = json.loads(metadata.get(META_KEY, "{}"))
    meta.update({"source": f"minari:{metadata.get('dataset_id', name)}",
                 "minari_dataset_id": metadata.get("dataset_id")})
    if isinstance(act_space, spaces.Discrete):
        meta.setdefault("num_actions", int(act_space.n))
    if cut:
        meta["episodes_cut_short"] = cut
        log.info("%s: %d episodes end without a flag; marked truncated", name, cut)
    final = None if metadata.get(REPEATED_KEY) else np.stack(parts["final"])
    data = EpisodeData(
        observations=np.concatenate(parts["obs"]), actions=np.concatenate(parts["act"]),
        rewards=np.concatenate(parts["rew"]), terminations=np.concatenate(parts["term"]),
        truncations=np.concatenate(parts["trunc"]), final_observations=final, meta=meta,
    )
    return data, {k: np.concatenate(v) for k, v in extras.items()}


def space_for(values: np.ndarray) -> spaces.Box:
    """A Box space describing stored observations, from their dtype and per-step shape."""
    shape = values.shape[1:]
    if values.dtype == np.bool_:
        return spaces.Box(0, 1, shape, dtype=np.bool_)
    if np.issubdtype(values.dtype, np.integer):
        info = np.iinfo(values.dtype)
        return spaces.Box(info.min, info.max, shape, dtype=values.dtype)
    return spaces.Box(-np.inf, np.inf, shape, dtype=values.dtype)


def _episode_buffers(data: EpisodeData, extras: dict[str, np.ndarray]):
    from minari.data_collector import EpisodeBuffer

    bounds = data.episode_bounds()
    final = data.final_observations
    for e, (s, t) in enumerate(bounds):
        last = data.observations[t - 1 : t] if final is None else final[e : e + 1]
        infos = {}
        for key, values in extras.items():  # aligned with observations: T+1 rows, last one empty
            pad = np.full((1, *values.shape[1:]), np.nan if values.dtype.kind == "f" else 0, values.dtype)
            infos[key] = np.concatenate([values[s:t], pad])
        yield EpisodeBuffer(
            id=e, observations=np.concatenate([data.observations[s:t], last]),
            actions=data.actions[s:t], rewards=data.rewards[s:t].astype(np.float64),
            terminations=data.terminations[s:t], truncations=data.truncations[s:t],
            infos=infos or None,
        )


def check_new_dataset_id(dataset_id: str, data_path: str | os.PathLike[str] | None = None) -> Path:
    """The folder a new dataset ``dataset_id`` would get; raises if the id is malformed or taken."""
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError) as exc:
        raise LaglessError(f"Minari dataset id '{dataset_id}' is malformed: use "
                           "(namespace/)name-vN, e.g. mydata/breakout/agent-v0") from exc
    folder = (Path(data_path) if data_path is not None else datasets_root()) / dataset_id
    if folder.exists():
        raise LaglessError(f"Minari dataset {dataset_id} already exists at {folder}: choose another "
                           "id (e.g. bump -vN) or delete that folder")
    return folder


@contextlib.contextmanager
def _datasets_path(root: Path | None):
    """Points Minari at ``root`` for the duration (its create function has no path argument)."""
    if root is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def write_minari(data: EpisodeData, dataset_id: str, *, env_id: str | None = None,
                 observation_space: spaces.Space | None = None, action_space: spaces.Space | None = None,
                 data_path: str | os.PathLike[str] | None = None,
                 extras: dict[str, np.ndarray] | None = None) -> Path:
    """Writes an hdf5 Minari dataset (lossless: no JPEG) and returns its folder."""
    import gymnasium as gym
    import minari

    check_new_dataset_id(dataset_id, data_path)
    extras = dict(extras or {})
    observation_space = observation_space or space_for(data.observations)
    if action_space is None:
        action_space = (spaces.Discrete(data.num_actions) if data.discrete_actions
                        else spaces.Box(-np.inf, np.inf, (data.num_actions,), dtype=np.float32))
    env = None
    if env_id is not None:
        try:
            env = gym.spec(env_id)
        except gym.error.Error as exc:
            raise LaglessError(f"environment '{env_id}' for the Minari dataset is not registered ({exc})") from exc
    root = Path(data_path) if data_path is not None else None
    repeated = data.final_observations is None
    with _datasets_path(root):
        folder = datasets_root() / dataset_id
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # author/permalink reminders
            minari.create_dataset_from_buffers(
                dataset_id, list(_episode_buffers(data, extras)), env=env,
                observation_space=observation_space, action_space=action_space,
                algorithm_name=str(data.meta.get("algorithm", "lagless")),
                description=("Recorded with lagless." + (
                    " Episodes had no final observation: the last observation is repeated "
                    f"({REPEATED_KEY})." if repeated else "")),
                data_format="hdf5", jpeg_encoding=False,
            )
        dataset = minari.MinariDataset(folder / "data")
        dataset.storage.update_metadata({
            META_KEY: json.dumps(data.meta, default=str), REPEATED_KEY: repeated,
            EXTRAS_KEY: json.dumps(sorted(extras)),
        })
    return folder
