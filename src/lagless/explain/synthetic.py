"""Episodes with planted behaviours, so that discovery can be scored against a known answer.

A point agent moves on a 2-D torus with 9 discrete actions (stay and the 8 compass moves) and
switches, every ``switch_every`` steps, between distinct motion patterns: drift east, circle,
zig-zag, hold still, drift west, patrol north-south, ... The observation (8 numbers) holds
the position as (cos, sin) pairs, so the torus has no seam, the last displacement and a slow
moving average of the velocity, which make the pattern identifiable from a window of
(state, action) pairs, as in recorded agents whose state carries their recent motion. The
reward is the eastward displacement, so behaviours also differ in return.
"""

from __future__ import annotations

import numpy as np

from lagless.errors import LaglessError
from lagless.explain.episodes import EpisodeData

# Action id -> (dx, dy): 0 stay, then E, NE, N, NW, W, SW, S, SE.
MOVES = np.array([(0, 0), (1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)],
                 dtype=np.float64)
E, NE, N, NW, W, SW, S, SE = range(1, 9)

# Each pattern is a cycle of actions; a step follows the cycle, with `noise` chance of a random
# neighbouring move, so patterns are not perfectly periodic.
PATTERNS: dict[str, list[int]] = {
    "drift east": [E],
    "circle": [N, W, S, E],
    "zig-zag": [NE, SE],
    "hold still": [0],
    "drift west": [W],
    "patrol north-south": [N, N, S, S],
    "diagonal": [NE],
    "wide circle": [E, E, N, N, W, W, S, S],
}
BEHAVIOUR_NAMES = list(PATTERNS)

WORLD = 20.0  # side of the torus, in moves
VELOCITY_DECAY = 0.7  # the observed velocity is a moving average with this decay


def _noisy(action: int, rng: np.random.Generator, noise: float) -> int:
    """The planted action, or with probability ``noise`` a neighbouring compass move."""
    if rng.random() >= noise:
        return action
    if action == 0:
        return int(rng.integers(1, 9))
    return int((action - 1 + rng.choice([-1, 1])) % 8 + 1)


def planted_behaviours(
    num_steps: int,
    *,
    num_behaviours: int = 4,
    seed: int = 0,
    episode_length: tuple[int, int] = (100, 300),
    switch_every: tuple[int, int] = (20, 60),
    noise: float = 0.05,
    position_noise: float = 0.05,
) -> tuple[EpisodeData, np.ndarray]:
    """``num_steps`` steps of episodes with planted behaviours, and the (N,) int64 true labels.

    Deterministic for ``seed``. Episode lengths and the time between switches are drawn
    uniformly from the given inclusive ranges; each switch picks another behaviour at random.
    """
    if not 1 <= num_behaviours <= len(PATTERNS):
        raise LaglessError(f"num_behaviours must be between 1 and {len(PATTERNS)}, got {num_behaviours}")
    if num_steps < 1:
        raise LaglessError(f"num_steps must be at least 1, got {num_steps}")
    lo, hi = episode_length
    if not 1 <= lo <= hi:
        raise LaglessError(f"episode_length must be (low, high) with 1 <= low <= high, got {episode_length}")
    if not 1 <= switch_every[0] <= switch_every[1]:
        raise LaglessError(f"switch_every must be (low, high) with 1 <= low <= high, got {switch_every}")
    rng = np.random.default_rng(seed)
    patterns = [PATTERNS[name] for name in BEHAVIOUR_NAMES[:num_behaviours]]

    labels = np.empty(num_steps, dtype=np.int64)
    actions = np.empty(num_steps, dtype=np.int64)
    done = np.zeros(num_steps, dtype=bool)
    behaviour, phase, left = 0, 0, 0
    t = 0
    while t < num_steps:
        end = min(num_steps, t + int(rng.integers(lo, hi + 1)))
        done[end - 1] = True
        behaviour, left = int(rng.integers(num_behaviours)), 0
        for step in range(t, end):
            if left == 0:
                if step > t and num_behaviours > 1:
                    behaviour = int((behaviour + rng.integers(1, num_behaviours)) % num_behaviours)
                phase = int(rng.integers(len(patterns[behaviour])))
                left = int(rng.integers(switch_every[0], switch_every[1] + 1))
            pattern = patterns[behaviour]
            labels[step] = behaviour
            actions[step] = _noisy(pattern[phase % len(pattern)], rng, noise)
            phase += 1
            left -= 1
        t = end

    observations, rewards, finals = _roll_out(actions, done, rng, position_noise)
    data = EpisodeData(
        observations=observations,
        actions=actions,
        rewards=rewards,
        terminations=np.zeros(num_steps, dtype=bool),
        truncations=done,
        final_observations=finals,
        meta={"env": "lagless/planted-behaviours", "num_actions": len(MOVES),
              "behaviour_names": BEHAVIOUR_NAMES[:num_behaviours], "seed": seed},
    )
    return data, labels


def _observe(pos: np.ndarray, last: np.ndarray, vel: np.ndarray) -> np.ndarray:
    angle = 2 * np.pi * pos / WORLD
    return np.array([np.cos(angle[0]), np.sin(angle[0]), np.cos(angle[1]), np.sin(angle[1]),
                     last[0], last[1], vel[0], vel[1]], dtype=np.float32)


def _roll_out(actions: np.ndarray, done: np.ndarray, rng: np.random.Generator,
              position_noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observations (N, 8), rewards (N,) and final observations (E, 8) of the action sequence."""
    n = len(actions)
    obs = np.empty((n, 8), dtype=np.float32)
    rewards = np.empty(n, dtype=np.float32)
    finals = []
    jitter = rng.normal(0.0, position_noise, size=(n, 2))
    pos, last, vel = rng.uniform(0, WORLD, size=2), np.zeros(2), np.zeros(2)
    for t in range(n):
        obs[t] = _observe(pos, last, vel)
        last = MOVES[actions[t]] + jitter[t]
        rewards[t] = last[0]
        pos = (pos + last) % WORLD
        vel = VELOCITY_DECAY * vel + (1 - VELOCITY_DECAY) * last
        if done[t]:
            finals.append(_observe(pos, last, vel))
            pos, last, vel = rng.uniform(0, WORLD, size=2), np.zeros(2), np.zeros(2)
    return obs, rewards, np.stack(finals).astype(np.float32)
