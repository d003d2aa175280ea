"""Small, allocation-light Gymnasium wrappers that give a fast actor what it needs to act well.

They sit in the hot loop of training, so each ``step`` does as little Python and NumPy work as
possible: one fresh array per step for the observations they build, never views of a buffer
they later mutate (callers may keep what they get).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lagless.errors import LaglessError


class Float32Obs(gym.Wrapper):
    """Casts Box observations to float32 so every model sees one dtype (MinAtar gives bool)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Box):
            raise LaglessError(
                f"Float32Obs needs a Box observation space, got {space}; "
                "use an environment with array observations."
            )
        low = np.asarray(space.low, dtype=np.float32)
        high = np.asarray(space.high, dtype=np.float32)
        self.observation_space = spaces.Box(low, high, shape=space.shape, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return np.asarray(obs, dtype=np.float32), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return np.asarray(obs, dtype=np.float32), reward, terminated, truncated, info


class ActionRepeat(gym.Wrapper):
    """Repeats each action for ``tau`` frames so the agent decides less often than the world moves.

    Rewards of the repeated frames are summed; the repetition stops early when an episode ends.
    The returned observation and info are those of the last frame played.
    """

    def __init__(self, env: gym.Env, tau: int):
        super().__init__(env)
        if tau < 1:
            raise LaglessError(f"--tau must be >= 1, got {tau}")
        self.tau = int(tau)

    def step(self, action):
        env = self.env
        if self.tau == 1:
            return env.step(action)
        total = 0.0
        for _ in range(self.tau):
            obs, reward, terminated, truncated, info = env.step(action)
            total += reward
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class ObsDelay(gym.Wrapper):
    """Shows the agent each observation ``d`` steps late, as a slow sensor or link would.

    Rewards and episode ends are not delayed. After a reset the first observation is shown
    until real ones are ``d`` steps old. It measures what a delay alone costs: an ordinary
    network behind ``ObsDelay(1)`` roughly bounds what a pipelined network can do under lagless's
    convention, where an observation reaches the output one step after it arrives.
    """

    def __init__(self, env: gym.Env, d: int):
        super().__init__(env)
        if d < 1:
            raise LaglessError(f"--obs-delay must be >= 1 to add ObsDelay, got {d}")
        self.d = int(d)
        self._queue: deque = deque(maxlen=self.d + 1)  # oldest first; appending drops it

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._queue.extend([obs] * (self.d + 1))
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._queue.append(obs)
        return self._queue[0], reward, terminated, truncated, info


class ObsHistory(gym.Wrapper):
    """Adds the previous ``h`` observations to the current one, so a memoryless policy sees motion.

    Order is most recent first; slots before the episode start are zeros.  Image observations
    (H, W, C) are stacked on the channel axis to (H, W, C*(h+1)); vectors (D,) become (D*(h+1),).
    """

    def __init__(self, env: gym.Env, h: int):
        super().__init__(env)
        if h < 1:
            raise LaglessError(f"--obs-history must be >= 1 to add ObsHistory, got {h}")
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) not in (1, 3):
            raise LaglessError(
                f"--obs-history needs 1-D or (H, W, C) Box observations, got {space}; "
                "set --obs-history 0 for this environment."
            )
        self.h = int(h)
        self._width = space.shape[-1]
        reps = (1,) * (len(space.shape) - 1) + (self.h + 1,)
        low = np.tile(np.asarray(space.low, dtype=np.float32), reps)
        high = np.tile(np.asarray(space.high, dtype=np.float32), reps)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self._stack = np.zeros(self.observation_space.shape, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        stack = np.zeros(self.observation_space.shape, dtype=np.float32)
        stack[..., : self._width] = obs
        self._stack = stack
        return stack, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        stack = np.concatenate(
            (obs, self._stack[..., : self.h * self._width]), axis=-1, dtype=np.float32
        )
        self._stack = stack
        return stack, reward, terminated, truncated, info


class LastActions(gym.Wrapper):
    """Shows the agent its last ``k`` executed actions, which it needs when acting with a delay.

    The observation becomes ``{"observation": inner, "last_actions": float32 vector}``; actions
    are most recent first, zeros after reset: one-hot for ``Discrete(n)`` (length k*n), flattened
    raw values for ``Box`` actions (length k*action_dim).
    """

    def __init__(self, env: gym.Env, k: int):
        super().__init__(env)
        if k < 1:
            raise LaglessError(f"--last-actions must be >= 1 to add LastActions, got {k}")
        self.k = int(k)
        act = env.action_space
        if isinstance(act, spaces.Discrete):
            self._discrete = True
            self._width = int(act.n)
            self._start = int(act.start)
            low, high = 0.0, 1.0
        elif isinstance(act, spaces.Box):
            self._discrete = False
            self._width = int(np.prod(act.shape))
            self._start = 0
            low, high = -np.inf, np.inf  # raw actions need not lie inside the action bounds
        else:
            raise LaglessError(
                f"--last-actions supports Discrete or Box action spaces, got {act}; "
                "set --last-actions 0 for this environment."
            )
        size = self.k * self._width
        self._last = np.zeros(size, dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "observation": env.observation_space,
                "last_actions": spaces.Box(low, high, shape=(size,), dtype=np.float32),
            }
        )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._last = np.zeros(self._last.shape, dtype=np.float32)
        return {"observation": obs, "last_actions": self._last}, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        w = self._width
        last = np.empty(self._last.shape, dtype=np.float32)
        last[w:] = self._last[: last.shape[0] - w]
        if self._discrete:
            last[:w] = 0.0
            last[int(action) - self._start] = 1.0
        else:
            last[:w] = np.asarray(action, dtype=np.float32).reshape(-1)
        self._last = last
        return {"observation": obs, "last_actions": last}, reward, terminated, truncated, info
