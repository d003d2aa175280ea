"""Run a trained agent, with its delays, for a number of episodes and summarise the returns."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from lagless.errors import LaglessError
from lagless.realtime.agent import ActorCritic
from lagless.realtime.ppo_config import PPOConfig
from lagless.realtime.run_files import check_spaces, read_run_config
from lagless.runs import atomic_write_json, latest_checkpoint, load_checkpoint, load_module_tensors


def load_agent(run_dir: str | Path, checkpoint: str | Path | None = None):
    """(config, agent, checkpoint path, step) from a run directory's newest (or given) checkpoint."""
    config = read_run_config(run_dir)
    path = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir)
    if path is None:
        raise LaglessError(f"{run_dir} has no checkpoint yet: train longer or resume it first")
    tensors, meta = load_checkpoint(path)
    probe = config.make_envs(1)
    agent = ActorCritic(config, probe.single_observation_space, probe.single_action_space)
    probe.close()
    check_spaces(meta, agent, path)
    load_module_tensors("agent.", agent, tensors)
    agent.eval()
    return config, agent, path, int(meta["step"])


def run_episodes(config: PPOConfig, agent: ActorCritic, episodes: int, *, seed: int,
                 greedy: bool = False, num_envs: int = 8):
    """Returns and lengths of exactly ``episodes`` episodes, spread evenly over the envs.

    Each env plays a fixed quota, so short episodes are not over-represented.
    """
    n = max(1, min(num_envs, episodes))
    quota = np.full(n, episodes // n)
    quota[: episodes % n] += 1
    envs = config.make_envs(n, seed=seed)
    obs, _ = envs.reset(seed=seed)
    state = agent.actor.initial_state(n)
    starts = torch.ones(n, dtype=torch.bool)
    ep_ret, ep_len = np.zeros(n), np.zeros(n, dtype=np.int64)
    returns, lengths = [], []
    done_count = np.zeros(n, dtype=np.int64)
    while (done_count < quota).any():
        action, _, state = agent.act(agent.layout.flatten(obs), state, starts, greedy=greedy)
        obs, reward, terminated, truncated, _ = envs.step(action.numpy())
        ep_ret += reward
        ep_len += 1
        done = np.logical_or(terminated, truncated)
        for i in np.nonzero(done)[0]:
            if done_count[i] < quota[i]:
                returns.append(float(ep_ret[i]))
                lengths.append(int(ep_len[i]))
                done_count[i] += 1
        ep_ret[done], ep_len[done] = 0.0, 0
        starts = torch.as_tensor(done)
    envs.close()
    return returns, lengths


def evaluate(run_dir: str | Path, *, episodes: int = 10, checkpoint: str | Path | None = None,
             greedy: bool = False, seed: int | None = None) -> dict:
    """Evaluate and write ``RUN/eval.json``; returns the same summary."""
    if episodes < 1:
        raise LaglessError(f"--episodes must be >= 1, got {episodes}")
    config, agent, path, step = load_agent(run_dir, checkpoint)
    seed = config.seed + 10_000 if seed is None else seed  # not the training seeds
    t0 = time.perf_counter()
    returns, lengths = run_episodes(config, agent, episodes, seed=seed, greedy=greedy)
    r = np.asarray(returns)
    summary = {
        "env": config.env, "arch": config.arch, "checkpoint": str(path), "step": step,
        "episodes": episodes, "greedy": greedy, "seed": seed,
        "mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()), "max": float(r.max()),
        "mean_length": float(np.mean(lengths)), "returns": returns,
        "actor_min_delay": agent.actor.min_delay, "actor_max_delay": agent.actor.max_delay,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    atomic_write_json(Path(run_dir) / "eval.json", summary)
    return summary
