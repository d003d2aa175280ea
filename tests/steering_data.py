"""A point steering by its last step, under planted behaviours: data for the tests of
relabelling and splitting behaviours as policies."""

import numpy as np

from lagless.explain.episodes import EpisodeData


def steering(behaviours: np.ndarray, episode_steps: int, seed: int) -> EpisodeData:
    """A point steering by its last step: behaviour 0 keeps its heading, 1 turns at random."""
    rng = np.random.default_rng(seed)
    n = len(behaviours)
    obs, actions = np.zeros((n, 2), np.float32), np.zeros((n, 2), np.float32)
    heading = 0.0
    for t in range(n):
        if t % episode_steps == 0 or behaviours[t] != behaviours[t - 1]:
            heading = rng.uniform(0, 2 * np.pi)
        elif behaviours[t] == 1:
            heading += rng.normal(0, 0.4)
        obs[t] = actions[t - 1] if t % episode_steps else 0.0
        actions[t] = [np.cos(heading), np.sin(heading)] + rng.normal(0, 0.03, 2)
    ends = np.zeros(n, bool)
    ends[episode_steps - 1::episode_steps] = True
    return EpisodeData(observations=obs, actions=actions, rewards=np.zeros(n, np.float32),
                       terminations=np.zeros(n, bool), truncations=ends,
                       final_observations=actions[ends].copy())


def runs(n: int, rng: np.random.Generator, k: int = 2) -> np.ndarray:
    """(n,) behaviours: runs of 25-59 steps, cycling through ``k`` behaviours."""
    out, b = [], 0
    while len(out) < n:
        out += [b] * int(rng.integers(25, 60))
        b = (b + 1) % k
    return np.array(out[:n])
