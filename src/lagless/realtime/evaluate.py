"""Run a trained agent, with its delays, for a number of episodes and summarise the returns."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from lagless.errors import LaglessError
from lagless.realtime.policy import Policy
from lagless.runs import atomic_write_json


def episode_quotas(episodes: int, num_envs: int) -> np.ndarray:
    """Episodes per env: a fixed quota each, so short episodes are not over-represented."""
    n = max(1, min(num_envs, episodes))
    quota = np.full(n, episodes // n)
    quota[: episodes % n] += 1
    return quota


def run_episodes(policy: Policy, episodes: int, *, seed: int, greedy: bool = False, num_envs: int = 8):
    """Returns and lengths of exactly ``episodes`` episodes, spread evenly over the envs."""
    quota = episode_quotas(episodes, num_envs)
    n = len(quota)
    envs = policy.config.make_envs(n, seed=seed)
    obs, _ = envs.reset(seed=seed)
    state = policy.initial_state(n)
    starts = torch.ones(n, dtype=torch.bool)
    ep_ret, ep_len = np.zeros(n), np.zeros(n, dtype=np.int64)
    returns, lengths = [], []
    done_count = np.zeros(n, dtype=np.int64)
    while (done_count < quota).any():
        step, state = policy.act(obs, state, starts, greedy=greedy)
        obs, reward, terminated, truncated, _ = envs.step(step.action)
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
             greedy: bool = False, seed: int | None = None, device: str = "cpu", fused: bool = False) -> dict:
    """Evaluate and write ``RUN/eval.json``; returns the same summary."""
    from lagless.trainers import load_policy

    if episodes < 1:
        raise LaglessError(f"--episodes must be >= 1, got {episodes}")
    policy = load_policy(run_dir, checkpoint, device=device, fused=fused)
    config = policy.config
    seed = config.seed + 10_000 if seed is None else seed  # not the training seeds
    t0 = time.perf_counter()
    returns, lengths = run_episodes(policy, episodes, seed=seed, greedy=greedy)
    r = np.asarray(returns)
    summary = {
        "algo": policy.kind, "env": config.env, "arch": policy.arch, "checkpoint": str(policy.checkpoint),
        "step": policy.step, "episodes": episodes, "greedy": greedy, "seed": seed,
        "mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()), "max": float(r.max()),
        "mean_length": float(np.mean(lengths)), "returns": returns,
        "actor_min_delay": policy.min_delay, "actor_max_delay": policy.max_delay,
        "obs_delay": policy.obs_delay, "min_delay": policy.delay_range[0], "max_delay": policy.delay_range[1],
        "delay": policy.describe_delay(), "fused": fused,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    atomic_write_json(Path(run_dir) / "eval.json", summary)
    return summary
