"""Tiny tasks that a correct trainer solves in seconds (in the style of SB3's identity tests)."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces

EPISODE = 20


class DiscreteIdentity(gym.Env):
    """Observation: a one-hot target of 4; reward 1 for choosing it. Optimum: 20 per episode."""

    observation_space = spaces.Box(0, 1, (4,), np.float32)
    action_space = spaces.Discrete(4)

    def _obs(self):
        self.target = int(self.np_random.integers(4))
        return np.eye(4, dtype=np.float32)[self.target]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        reward = float(int(action) == self.target)
        self.t += 1
        return self._obs(), reward, False, self.t >= EPISODE, {}


class BoxIdentity(gym.Env):
    """Observation: a target in [-1, 1]; reward -(action - target)^2. Optimum 0, random about -13."""

    observation_space = spaces.Box(-1, 1, (1,), np.float32)
    action_space = spaces.Box(-1, 1, (1,), np.float32)

    def _obs(self):
        self.target = self.np_random.uniform(-1, 1, size=1).astype(np.float32)
        return self.target.copy()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        reward = -float(np.sum((np.asarray(action) - self.target) ** 2))
        self.t += 1
        return self._obs(), reward, False, self.t >= EPISODE, {}


class BoxHold(BoxIdentity):
    """The target is drawn at reset and held for the episode: a delayed actor can learn it too."""

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        self.held = obs
        return obs, info

    def _obs(self):
        if getattr(self, "t", 0) == 0 or not hasattr(self, "held"):
            return super()._obs()
        return self.held.copy()


def register() -> None:
    for name, cls in (("lagless-test/DiscreteIdentity-v0", DiscreteIdentity),
                      ("lagless-test/BoxIdentity-v0", BoxIdentity),
                      ("lagless-test/BoxHold-v0", BoxHold)):
        if name not in gym.registry:
            gym.register(id=name, entry_point=cls, max_episode_steps=EPISODE)
