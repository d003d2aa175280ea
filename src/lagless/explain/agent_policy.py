"""The action distribution and value a trained lagless agent gives along a dataset's episodes.

The agent is teacher-forced: it sees the recorded observations in order, one episode after
another, with its (delay or recurrent) state carried between steps and reset at every
episode start, exactly as it would have run. What the recorded observations lack, the
agent's wrappers would have added (previous observations, last executed actions), so they
are rebuilt from the dataset itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from tqdm.auto import tqdm

from lagless.errors import LaglessError
from lagless.explain.episodes import EpisodeData

log = logging.getLogger(__name__)
CHUNK = 2048  # steps per forward_sequence call; state is carried across chunks


@dataclass
class AgentOutputs:
    """Per requested step: action probabilities ``(n, A)`` and values ``(n,)`` (None if unknown)."""

    probs: np.ndarray
    values: np.ndarray | None
    num_actions: int


def _episode_starts(data: EpisodeData) -> np.ndarray:
    """(N,) global index of the first step of each step's episode."""
    bounds = data.episode_bounds()
    return bounds[data.episode_ids(), 0]


def _past(values: np.ndarray, steps: np.ndarray, first: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """``values[t - lag]`` for each t in ``steps`` and whether that step is in t's episode."""
    idx = steps - lag
    valid = idx >= first[steps]
    return values[np.where(valid, idx, steps)], valid


def _observation_builder(policy, data: EpisodeData, run_dir):
    """A function ``steps -> flat float tensor (T, D)`` that feeds ``policy`` the recorded data."""
    config = policy.config
    space = policy.observation_space
    inner = space["observation"] if isinstance(space, spaces.Dict) else space
    want = tuple(inner.shape)
    have = tuple(data.observations.shape[1:])
    history = int(config.obs_history)
    if history and want[:-1] == have[:-1] and have[-1] * (history + 1) == want[-1]:
        stack = history  # the dataset holds plain observations: rebuild the history stack
    elif have == want:
        stack = 0
    else:
        raise LaglessError(f"the policy in {run_dir} expects observations of shape {want}, the dataset "
                           f"has {have}: use a dataset recorded in the policy's environment ({config.env})")
    if not policy.discrete:
        raise LaglessError(f"the policy in {run_dir} has continuous actions: attribution to a policy "
                           "needs discrete ones (use --bc to attribute with behaviour cloning)")
    if not data.discrete_actions:
        raise LaglessError(f"the policy in {run_dir} has discrete actions, the dataset continuous ones")
    n = int(policy.action_space.n)
    if data.num_actions > n:
        raise LaglessError(f"the dataset has action ids up to {data.num_actions - 1}, the policy in "
                           f"{run_dir} only {n} actions: use a dataset from the policy's environment")
    first = _episode_starts(data)
    k = int(config.last_actions)
    eye = np.eye(n, dtype=np.float32)

    def build(steps: np.ndarray) -> torch.Tensor:
        obs = np.asarray(data.observations[steps], dtype=np.float32)
        if stack:
            parts = [obs]
            for lag in range(1, stack + 1):
                past, valid = _past(data.observations, steps, first, lag)
                parts.append(np.asarray(past, dtype=np.float32) * valid.reshape(-1, *([1] * (obs.ndim - 1))))
            obs = np.concatenate(parts, axis=-1)  # most recent first, as ObsHistory stacks them
        if not k:
            return policy.layout.flatten(obs)
        last = []
        for lag in range(1, k + 1):  # most recent first, zeros before the episode start
            past, valid = _past(data.actions, steps, first, lag)
            last.append(eye[past] * valid[:, None])
        return policy.layout.flatten({"observation": obs, "last_actions": np.concatenate(last, axis=1)})

    return build


def agent_outputs(run_dir: str | Path, data: EpisodeData, steps: np.ndarray, *,
                  checkpoint: str | Path | None = None, progress: bool = True) -> AgentOutputs:
    """Run the agent in ``run_dir`` (any trainer's) over every episode that contains one of ``steps``."""
    from lagless.trainers import load_policy

    policy = load_policy(run_dir, checkpoint)
    path = policy.checkpoint
    build = _observation_builder(policy, data, run_dir)
    steps = np.asarray(steps, dtype=np.int64)
    bounds = data.episode_bounds()[np.unique(data.episode_ids()[steps])]
    order = np.concatenate([np.arange(s, e) for s, e in bounds]) if len(bounds) else np.zeros(0, np.int64)
    starts = np.zeros(len(order), dtype=bool)
    starts[np.cumsum(bounds[:, 1] - bounds[:, 0])[:-1]] = True
    if len(starts):
        starts[0] = True
    n = int(policy.action_space.n)
    probs = np.zeros((len(order), n), dtype=np.float32)
    values = np.zeros(len(order), dtype=np.float32) if policy.critic is not None else None
    state = policy.initial_state(1)
    log.info("running %s (checkpoint %s) over %d steps of %d episodes", run_dir, path, len(order), len(bounds))
    with torch.inference_mode(), tqdm(total=len(order), desc="agent", unit="step", disable=not progress) as bar:
        for a in range(0, len(order), CHUNK):
            x = build(order[a:a + CHUNK]).unsqueeze(1)  # [T, 1, D]
            start = torch.as_tensor(starts[a:a + CHUNK]).unsqueeze(1)
            p, value, state = policy.outputs_sequence(x, state, start)
            probs[a:a + len(x)] = p[:, 0].cpu().numpy()
            if values is not None:
                values[a:a + len(x)] = value[:, 0].cpu().numpy()
            bar.update(len(x))
    position = np.full(data.num_steps, -1, dtype=np.int64)
    position[order] = np.arange(len(order))
    picked = position[steps]
    return AgentOutputs(probs[picked], None if values is None else values[picked], n)


def recorded_outputs(source: str | Path, data: EpisodeData, steps: np.ndarray) -> AgentOutputs:
    """The action probabilities (and values, if any) that ``lagless record`` saved with the data."""
    from lagless.explain.datasets import load_extras

    extras = load_extras(source)
    probs = extras.get("policy_probs")
    if probs is None:
        raise LaglessError(f"{source} holds no 'policy_probs': record it with 'lagless record' "
                           "or use --policy DIR or --bc instead")
    if len(probs) != data.num_steps or probs.ndim != 2 or probs.shape[1] < data.num_actions:
        raise LaglessError(f"'policy_probs' in {source} has shape {probs.shape}, expected "
                           f"({data.num_steps}, >= {data.num_actions}): the file is damaged")
    values = extras.get("values")
    if values is not None and len(values) != data.num_steps:
        log.warning("ignoring 'values' in %s: %d entries for %d steps", source, len(values), data.num_steps)
        values = None
    return AgentOutputs(np.asarray(probs[steps], np.float32),
                        None if values is None else np.asarray(values[steps], np.float32), probs.shape[1])
