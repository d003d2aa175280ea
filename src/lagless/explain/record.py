"""Record a trained agent's episodes, with its delays, as a dataset explain can read.

The loop is ``lagless.realtime.evaluate.run_episodes`` (any trainer's policy, through
``lagless.trainers.load_policy``) plus bookkeeping: per-env buffers
that are appended whole when an episode ends, the environment's own observations (before
lagless's float cast, history stacking and last-action wrappers), and per step the agent's
action probabilities and critic value as extras.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from tqdm import tqdm

from lagless import __version__
from lagless.envs.wrappers import ActionRepeat, Float32Obs, LastActions, ObsDelay, ObsHistory
from lagless.errors import LaglessError
from lagless.explain.datasets import save_minari, save_npz
from lagless.explain.episodes import EpisodeData
from lagless.explain.minari_format import check_new_dataset_id
from lagless.realtime.evaluate import episode_quotas

log = logging.getLogger(__name__)

_LAGLESS_WRAPPERS = (LastActions, ObsHistory, ObsDelay, ActionRepeat, Float32Obs)


def _base_space(envs) -> spaces.Space:
    """The observation space of the environment itself, under lagless's wrappers."""
    env = envs.envs[0]
    while isinstance(env, _LAGLESS_WRAPPERS):
        env = env.env
    return env.observation_space


class _ObsExtractor:
    """Turns what the agent sees back into the environment's observation (dtype restored)."""

    def __init__(self, space: spaces.Space, obs_history: int):
        self.space = space
        self.width = space.shape[-1] if obs_history > 0 and isinstance(space, spaces.Box) else None
        restore = isinstance(space, spaces.Box) and space.dtype.kind in "biu"
        self.dtype = space.dtype if restore else None

    def __call__(self, obs) -> np.ndarray:
        obs = obs["observation"] if isinstance(obs, dict) else obs
        obs = np.asarray(obs)
        if self.width is not None:
            obs = obs[..., : self.width]  # the current frame; the rest is history
        return obs.astype(self.dtype) if self.dtype is not None else obs


def _play(policy, episodes: int, *, seed: int, greedy: bool, num_envs: int, progress: bool):
    """Runs the policy; returns (list of finished episode dicts, base observation space)."""
    config = policy.config
    quota = episode_quotas(episodes, num_envs)
    n = len(quota)
    envs = config.make_envs(n, seed=seed)
    space = _base_space(envs)
    extract = _ObsExtractor(space, config.obs_history)
    torch.manual_seed(seed)  # the policy's action sampling
    obs, _ = envs.reset(seed=seed)
    state = policy.initial_state(n)
    starts = torch.ones(n, dtype=torch.bool)
    keys = ["observations", "actions", "rewards", "terminations", "truncations"]
    keys += ["policy_probs"] if policy.discrete else []
    keys += ["values"] if policy.critic is not None else []
    buffers = [{k: [] for k in keys} for _ in range(n)]
    finished, done_count = [], np.zeros(n, dtype=np.int64)
    bar = tqdm(total=episodes, desc="record", unit="episode", disable=not progress)
    try:
        while (done_count < quota).any():
            out, state = policy.act(obs, state, starts, greedy=greedy, with_value=True)
            seen = extract(obs)
            obs, reward, terminated, truncated, infos = envs.step(out.action)
            step = {"observations": seen, "actions": out.action, "rewards": reward,
                    "terminations": terminated, "truncations": truncated,
                    "policy_probs": out.probs, "values": out.value}
            step = {k: step[k] for k in keys}
            for i in range(n):
                for k, v in step.items():
                    buffers[i][k].append(v[i])
            done = np.logical_or(terminated, truncated)
            for i in np.flatnonzero(done):
                if done_count[i] < quota[i]:
                    episode = {k: np.stack(v) for k, v in buffers[i].items()}
                    episode["final_observation"] = extract(infos["final_obs"][i])
                    finished.append(episode)
                    done_count[i] += 1
                    bar.update(1)
                buffers[i] = {k: [] for k in keys}
            starts = torch.as_tensor(done)
    finally:
        bar.close()
        envs.close()
    return finished, space


def _to_dataset(finished: list[dict], meta: dict, discrete: bool) -> tuple[EpisodeData, dict[str, np.ndarray]]:
    def cat(key, dtype=None):
        out = np.concatenate([e[key] for e in finished])
        return out if dtype is None else out.astype(dtype)

    actions = cat("actions", np.int64) if discrete else cat("actions", np.float32).reshape(
        sum(len(e["actions"]) for e in finished), -1)
    data = EpisodeData(
        observations=cat("observations"), actions=actions,
        rewards=cat("rewards", np.float32), terminations=cat("terminations", bool),
        truncations=cat("truncations", bool),
        final_observations=np.stack([e["final_observation"] for e in finished]), meta=meta,
    )
    extras = {k: cat(k, np.float32) for k in ("policy_probs", "values") if k in finished[0]}
    return data, extras


def record(run_dir: str | Path, episodes: int, out: str | Path | None = None, *,
           checkpoint: str | Path | None = None, greedy: bool = False, seed: int | None = None,
           num_envs: int = 8, progress: bool = True, format: str | None = None,
           dataset_id: str | None = None, device: str = "cpu", fused: bool = False) -> dict:
    """Runs the agent of ``run_dir`` for ``episodes`` episodes and writes them; returns a summary.

    ``format`` "npz" writes ``out`` (a ``.npz`` path); "minari" writes Minari dataset
    ``dataset_id`` under ``out`` (a datasets root) or ``MINARI_DATASETS_PATH``. Without
    ``format`` it is "minari" when a ``dataset_id`` is given, else "npz".
    """
    from lagless.trainers import load_policy

    format = format or ("minari" if dataset_id else "npz")
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise LaglessError(f"--episodes must be >= 1, got {episodes}")
    if num_envs < 1:
        raise LaglessError(f"num_envs must be >= 1, got {num_envs}")
    if format == "npz":
        if out is None or Path(out).suffix != ".npz":
            raise LaglessError(f"--out must be a file ending in .npz for the npz format, got {out}")
    elif format == "minari":
        if not dataset_id:
            raise LaglessError("--format minari needs --dataset-id, e.g. mydata/breakout/agent-v0")
        check_new_dataset_id(dataset_id, out)  # fail before playing, not after
    else:
        raise LaglessError(f"--format must be npz or minari, got {format!r}")

    policy = load_policy(run_dir, checkpoint, device=device, fused=fused)
    config, path, step = policy.config, policy.checkpoint, policy.step
    seed = config.seed + 10_000 if seed is None else seed  # not the training seeds, as in eval
    t0 = time.perf_counter()
    finished, space = _play(policy, episodes, seed=seed, greedy=greedy, num_envs=num_envs,
                            progress=progress)
    num_actions = (int(policy.action_space.n) if policy.discrete
                   else int(np.prod(policy.action_space.shape)))
    meta = {
        "env": config.env, "run_dir": str(Path(run_dir).resolve()), "checkpoint": str(Path(path).resolve()),
        "checkpoint_step": step, "algo": policy.kind, "arch": policy.arch, "num_actions": num_actions,
        "tau": config.tau, "last_actions": config.last_actions, "obs_history": config.obs_history,
        "obs_delay": config.obs_delay,
        "greedy": greedy, "seed": seed, "algorithm": "lagless record", "lagless_version": __version__,
        "extras": [k for k in ("policy_probs", "values") if k in finished[0]],
        "observation_note": ("the environment's own observation (no history, no last actions), as the "
                             "agent saw it: obs_delay steps late when obs_delay > 0"),
    }
    data, extras = _to_dataset(finished, meta, policy.discrete)
    if format == "npz":
        where = str(save_npz(data, out, extras))
    else:
        same = getattr(space, "dtype", None) == data.observations.dtype  # else describe the data
        folder = save_minari(data, dataset_id, env_id=config.env, observation_space=space if same else None,
                             action_space=policy.action_space, data_path=out, extras=extras)
        where = f"{dataset_id} ({folder})"
    returns = np.array([e["rewards"].sum() for e in finished], dtype=np.float64)
    summary = {
        "episodes": len(finished), "steps": data.num_steps, "mean_return": float(returns.mean()),
        "std_return": float(returns.std()), "mean_length": data.num_steps / len(finished),
        "format": format, "written_to": where, "env": config.env, "arch": policy.arch,
        "checkpoint_step": step, "seed": seed, "greedy": greedy,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    log.info("recorded %s", summary)
    return summary
