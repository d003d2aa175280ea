"""A T-maze: a memory task whose only cue is shown at the first step (Bakker, 2001).

The agent starts at the foot of a corridor of ``length`` cells. At the first step it sees a
cue, left or right; afterwards it sees only where it is (corridor or junction). At the
junction, turning the way the cue said earns 1, the other way 0, and ends the episode; a
small penalty per step is optional. An agent without memory succeeds half the time.

Observation (float32, 4): ``[cue left, cue right, in the corridor, at the junction]``.
Actions: 0 forward, 1 left, 2 right (left and right do nothing in the corridor).
Gymnasium ids: ``lagless/TMaze-v0`` (corridor 10) and ``lagless/TMaze-L<n>-v0`` for any n.
"""

from __future__ import annotations

import re
from typing import ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

FORWARD, LEFT, RIGHT = 0, 1, 2
DEFAULT_LENGTH = 10
ID_PATTERN = re.compile(r"^lagless/TMaze(?:-L(\d+))?-v0$")


class TMaze(gym.Env):
    """The T-maze with the cue at the first step only; see the module docstring."""

    metadata: ClassVar[dict] = {"render_modes": []}
    observation_space = spaces.Box(0.0, 1.0, (4,), np.float32)
    action_space = spaces.Discrete(3)

    def __init__(self, length: int = DEFAULT_LENGTH, step_penalty: float = 0.0):
        if length < 1:
            raise ValueError(f"the corridor needs at least 1 cell, got {length}")
        self.length, self.step_penalty = int(length), float(step_penalty)
        self.position, self.goal = 0, LEFT

    def _obs(self, first: bool) -> np.ndarray:
        obs = np.zeros(4, dtype=np.float32)
        if first:
            obs[0 if self.goal == LEFT else 1] = 1.0
        obs[3 if self.position >= self.length else 2] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = 0
        self.goal = LEFT if self.np_random.random() < 0.5 else RIGHT
        return self._obs(first=True), {"goal": self.goal}

    def step(self, action):
        action = int(action)
        reward, terminated = -self.step_penalty, False
        if self.position >= self.length and action in (LEFT, RIGHT):
            terminated = True
            reward += 1.0 if action == self.goal else 0.0
        elif action == FORWARD and self.position < self.length:
            self.position += 1
        return self._obs(first=False), reward, terminated, False, {"goal": self.goal}


def register_tmaze(env_id: str) -> bool:
    """Register ``env_id`` if it names a T-maze (any corridor length); False if it does not."""
    m = ID_PATTERN.match(env_id)
    if m is None:
        return False
    if env_id not in gym.registry:
        length = int(m.group(1)) if m.group(1) else DEFAULT_LENGTH
        gym.register(id=env_id, entry_point=TMaze, kwargs={"length": length},
                     max_episode_steps=2 * length + 10)
    return True
