"""Episodes with planted behaviours, so that discovery can be scored against a known answer.

A point agent moves on a 2-D torus with 9 discrete actions (stay and the 8 compass moves) and
switches, every ``switch_every`` steps, between distinct motion patterns: drift east, circle,
zig-zag, hold still, drift west, patrol north-south, ... The observation (8 numbers) holds
the position as (cos, sin) pairs, so the torus has no seam, the last displacement and a slow
moving average of the velocity, which make the pattern identifiable from a window of
(state, action) pairs, as in recorded agents whose state carries their recent motion. The
reward is the eastward displacement, so behaviours also differ in return.

``GENERATORS`` / ``make_synthetic(kind, episodes, steps, seed)`` add a suite of kinds whose
behaviours differ in other ways (state region, the action's relation to the state, turning
over a period, very uneven durations with noise) and one recorded from a game, a scripted
MinAtar Seaquest player whose phases are read from the game state
(``lagless.explain.minatar_phases``); see the end of this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lagless.errors import LaglessError
from lagless.explain.episodes import EpisodeData
from lagless.explain.minatar_phases import SEAQUEST_PHASES, play_seaquest

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


# --------------------------------------------------------------------------- the generator suite
# Kinds that differ in what makes their behaviours distinct, so that discovery can be judged on
# more than one kind of data. Every kind makes ``episodes`` episodes of ``steps`` steps, returns
# the same EpisodeData as ``planted_behaviours`` plus the (N,) int64 true labels, and is
# deterministic for ``seed``. Within an episode a behaviour runs for a length drawn uniformly
# from its own inclusive range, then another behaviour (never the same one) takes over, drawn
# with the kind's weights; the first and last runs of an episode may be cut by its ends.
# A kind recorded from a game (``plays``) has no schedule: an agent plays ``steps`` steps and
# the label of each step is read from the game state.


@dataclass(frozen=True)
class Generator:
    """One kind of planted-behaviour data (see ``GENERATORS``)."""

    name: str
    distinct_by: str  # what tells its behaviours apart, in words
    behaviour_names: tuple[str, ...]
    # planted run length range of each behaviour (None: not planted, the game decides)
    segment_lengths: tuple[tuple[int, int], ...] | None
    discrete: bool  # discrete action ids, or continuous 2-D actions
    weights: tuple[float, ...] | None = None  # how often each behaviour is switched to (None: evenly)
    roll_out: Callable[[np.ndarray, np.random.Generator], dict] | None = field(default=None, repr=False)
    # recorded from a game: plays(steps, rng) returns roll_out's dict plus "labels"
    plays: Callable[[int, np.random.Generator], dict] | None = field(default=None, repr=False)
    needs: str | None = None  # the optional package it imports (a lagless extra of that name)

    @property
    def num_behaviours(self) -> int:
        return len(self.behaviour_names)


def _schedule(gen: Generator, steps: int, rng: np.random.Generator) -> np.ndarray:
    """(steps,) behaviour of each step of one episode: runs of planted lengths, no repeats."""
    k = gen.num_behaviours
    weights = np.asarray(gen.weights if gen.weights is not None else np.ones(k), dtype=np.float64)
    labels = np.empty(steps, dtype=np.int64)
    behaviour = int(rng.choice(k, p=weights / weights.sum()))
    t = 0
    while t < steps:
        lo, hi = gen.segment_lengths[behaviour]
        n = int(rng.integers(lo, hi + 1))
        labels[t:t + n] = behaviour
        t += n
        others = weights.copy()
        others[behaviour] = 0.0
        behaviour = int(rng.choice(k, p=others / others.sum()))
    return labels


def make_synthetic(kind: str, episodes: int = 40, steps: int = 300, seed: int = 0
                   ) -> tuple[EpisodeData, np.ndarray]:
    """``episodes`` episodes of ``steps`` steps of the generator ``kind`` (a ``GENERATORS`` name),
    and the (N,) int64 true behaviour of each step. Deterministic for ``seed``."""
    if kind not in GENERATORS:
        raise LaglessError(f"unknown synthetic kind {kind!r}; choose from {', '.join(GENERATORS)}")
    if episodes < 1 or steps < 1:
        raise LaglessError(f"episodes and steps must be at least 1, got {episodes} and {steps}")
    gen = GENERATORS[kind]
    meta = {"env": f"lagless/synthetic-{kind}", "kind": kind, "distinct_by": gen.distinct_by,
            "behaviour_names": list(gen.behaviour_names),
            "segment_lengths": None if gen.segment_lengths is None else [list(r) for r in gen.segment_lengths],
            "seed": seed}
    if gen.roll_out is None and gen.plays is None:  # "patterns": the original generator, with episodes of equal length
        data, labels = planted_behaviours(episodes * steps, num_behaviours=gen.num_behaviours,
                                          seed=seed, episode_length=(steps, steps),
                                          switch_every=gen.segment_lengths[0])
        data.meta.update(meta)
        return data, labels
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(episodes):
        if gen.plays is not None:
            parts.append(gen.plays(steps, rng))
            continue
        labels = _schedule(gen, steps, rng)
        parts.append(dict(gen.roll_out(labels, rng), labels=labels))
    n = episodes * steps
    truncations = np.zeros(n, dtype=bool)
    truncations[steps - 1::steps] = True
    if gen.discrete:
        meta["num_actions"] = int(parts[0]["num_actions"])
    data = EpisodeData(
        observations=np.concatenate([p["obs"] for p in parts]).astype(np.float32),
        actions=np.concatenate([p["actions"] for p in parts]),
        rewards=np.concatenate([p["rewards"] for p in parts]).astype(np.float32),
        terminations=np.zeros(n, dtype=bool),
        truncations=truncations,
        final_observations=np.stack([p["final"] for p in parts]).astype(np.float32),
        meta=meta,
    )
    return data, np.concatenate([p["labels"] for p in parts])


def _torus(pos: np.ndarray) -> np.ndarray:
    """(cos, sin) of each coordinate of a position on the WORLD torus: no seam."""
    angle = 2 * np.pi * np.asarray(pos) / WORLD
    return np.stack([np.cos(angle), np.sin(angle)], axis=-1).reshape(*np.shape(pos)[:-1], -1)


# ---- kind "regions": discrete actions, one policy, behaviours told apart by where they happen
ROOM_CENTRES = np.array([(-6.0, -6.0), (6.0, -6.0), (-6.0, 6.0), (6.0, 6.0)])
ROOM_HALF = 3  # a room spans centre +- 3 cells; rooms are 6 cells apart (no overlap)
GRID_MOVES = np.array([(0, 0), (1, 0), (0, 1), (-1, 0), (0, -1)], dtype=np.float64)  # stay E N W S


def _regions(labels: np.ndarray, rng: np.random.Generator) -> dict:
    """The same persistent random walk in every room; a switch moves the agent to the new room
    (as a level change does). Observation: position / 10, last displacement, jittered."""
    n = len(labels)
    obs = np.empty((n, 4))
    actions = np.empty(n, dtype=np.int64)
    pos, last, action = np.zeros(2), np.zeros(2), 0
    for t in range(n):
        centre = ROOM_CENTRES[labels[t]]
        if t == 0 or labels[t] != labels[t - 1]:
            pos = centre + rng.integers(-ROOM_HALF, ROOM_HALF + 1, size=2)
            last = np.zeros(2)
        obs[t, :2], obs[t, 2:] = pos / 10.0, last
        action = action if rng.random() < 0.5 else int(rng.integers(len(GRID_MOVES)))
        actions[t] = action
        new = pos + GRID_MOVES[action]
        last = new - pos if np.all(np.abs(new - centre) <= ROOM_HALF) else np.zeros(2)  # walls block
        pos = pos + last
    obs += rng.normal(0.0, 0.01, size=obs.shape)
    rewards = -np.abs(obs[:, :2] * 10.0 - ROOM_CENTRES[labels]).sum(axis=1) / ROOM_HALF
    final = np.concatenate([pos / 10.0, last])
    return {"obs": obs, "actions": actions, "rewards": rewards, "final": final,
            "num_actions": len(GRID_MOVES)}


# ---- kind "relation": continuous actions that differ by how they relate to the state
CURRENT_DECAY = 0.9  # the current is an AR(1) process with this decay and stationary std 0.5
RELATIONS = {"with the current": np.eye(2), "against the current": -np.eye(2),
             "across, to the left": np.array([[0.0, -1.0], [1.0, 0.0]]),
             "across, to the right": np.array([[0.0, 1.0], [-1.0, 0.0]])}


def _relation(labels: np.ndarray, rng: np.random.Generator) -> dict:
    """A point on the torus in a random current v that no behaviour changes; the action is
    +v, -v, or v turned left or right. States and actions have the same distribution under
    every behaviour: only the relation between them differs. Observation: the position as
    (cos, sin) pairs and the current; the point moves by (v + action) / 2."""
    n = len(labels)
    maps = np.stack(list(RELATIONS.values()))
    obs = np.empty((n, 6))
    actions = np.empty((n, 2))
    pos = rng.uniform(0, WORLD, size=2)
    v = rng.normal(0.0, 0.5, size=2)
    shock = 0.5 * np.sqrt(1 - CURRENT_DECAY**2)
    for t in range(n):
        obs[t] = np.concatenate([_torus(pos), v])
        actions[t] = maps[labels[t]] @ v + rng.normal(0.0, 0.05, size=2)
        step = (v + actions[t]) / 2
        pos = (pos + step) % WORLD
        v = CURRENT_DECAY * v + rng.normal(0.0, shock, size=2)
        obs[t, 4:] += rng.normal(0.0, 0.02, size=2)
    rewards = (obs[:, 4] + actions[:, 0]) / 2  # eastward displacement
    final = np.concatenate([_torus(pos), v])
    return {"obs": obs, "actions": actions.astype(np.float32), "rewards": rewards, "final": final}


# ---- kind "periodic": a circling behaviour whose steps point every way, among non-periodic ones
CIRCLE_PERIOD = 12  # steps per turn of the circle


def _periodic(labels: np.ndarray, rng: np.random.Generator) -> dict:
    """Continuous 2-D actions (the displacement): circle (heading turns 360/12 degrees a step),
    straight (one heading per run), wander (heading random walk), hold (barely moves). One step
    of the circle looks like a step of straight or wander in that heading: only the turning
    over several steps tells it apart. Observation: the position as (cos, sin) pairs and the
    last displacement."""
    n = len(labels)
    obs = np.empty((n, 6))
    actions = np.empty((n, 2))
    pos, last = rng.uniform(0, WORLD, size=2), np.zeros(2)
    heading = 0.0
    for t in range(n):
        b = labels[t]
        if t == 0 or b != labels[t - 1]:
            heading = float(rng.uniform(0, 2 * np.pi))
        elif b == 0:
            heading += 2 * np.pi / CIRCLE_PERIOD
        elif b == 2:
            heading += float(rng.normal(0.0, 0.3))
        speed = 0.1 if b == 3 else 1.0
        direction = np.array([np.cos(heading), np.sin(heading)])
        if b == 3:
            direction = rng.normal(0.0, 1.0, size=2)
        obs[t] = np.concatenate([_torus(pos), last])
        actions[t] = speed * direction + rng.normal(0.0, 0.05, size=2)
        last = actions[t]
        pos = (pos + last) % WORLD
    final = np.concatenate([_torus(pos), last])
    return {"obs": obs, "actions": actions.astype(np.float32), "rewards": actions[:, 0], "final": final}


# ---- kind "durations": behaviours of very different lengths and frequencies, with noise
DURATION_PATTERNS = {"dash east": [E], "zig-zag": [NE, SE], "circle": [N, W, S, E], "rest": [0]}
ACTION_NOISE = 0.15  # chance that a step takes a neighbouring move instead
OBSERVATION_NOISE = 0.1  # std of Gaussian noise added to every observed number


def _durations(labels: np.ndarray, rng: np.random.Generator) -> dict:
    """The discrete compass moves of ``planted_behaviours``: short frequent dashes, medium
    zig-zags, long circles and long rare rests; 15% of moves are a neighbouring one and every
    observed number carries noise of std 0.1."""
    patterns = list(DURATION_PATTERNS.values())
    n = len(labels)
    actions = np.empty(n, dtype=np.int64)
    phase = 0
    for t in range(n):
        if t == 0 or labels[t] != labels[t - 1]:
            phase = int(rng.integers(len(patterns[labels[t]])))
        pattern = patterns[labels[t]]
        actions[t] = _noisy(pattern[phase % len(pattern)], rng, ACTION_NOISE)
        phase += 1
    done = np.zeros(n, dtype=bool)
    done[-1] = True
    obs, rewards, finals = _roll_out(actions, done, rng, 0.05)
    obs = obs + rng.normal(0.0, OBSERVATION_NOISE, size=obs.shape)
    return {"obs": obs, "actions": actions, "rewards": rewards, "final": finals[0],
            "num_actions": len(MOVES)}


GENERATORS: dict[str, Generator] = {g.name: g for g in [
    Generator("patterns", "the pattern of discrete moves (planted_behaviours)",
              tuple(BEHAVIOUR_NAMES[:4]), ((20, 60),) * 4, discrete=True),
    Generator("regions", "the region of the state space (one policy everywhere)",
              ("room SW", "room SE", "room NW", "room NE"), ((20, 60),) * 4, discrete=True,
              roll_out=_regions),
    Generator("relation", "how the continuous action relates to the state (same state and action "
              "distributions)", tuple(RELATIONS), ((25, 60),) * 4, discrete=False, roll_out=_relation),
    Generator("periodic", "turning over several steps: a circle whose steps point every way, "
              "among straight, wandering and holding", ("circle", "straight", "wander", "hold"),
              ((25, 60),) * 4, discrete=False, roll_out=_periodic),
    Generator("durations", "move patterns of very different durations and frequencies, "
              "with action and observation noise", tuple(DURATION_PATTERNS),
              ((4, 10), (15, 30), (40, 80), (100, 160)), discrete=True,
              weights=(0.4, 0.3, 0.2, 0.1), roll_out=_durations),
    Generator("minatar-seaquest", "the phase of a scripted MinAtar Seaquest player, read from the "
              "game state (depth, oxygen and diver gauges, enemies near the surface)",
              SEAQUEST_PHASES, None, discrete=True, plays=play_seaquest, needs="minatar"),
]}
