"""A MinAtar agent whose phases are read from the game state: environment-recorded episodes
with a known answer for behaviour discovery (the ``minatar-seaquest`` kind of
``lagless.explain.synthetic.GENERATORS``).

A scripted Seaquest player has four modes, and the mode of every step is decided from the
game state at that step alone, so the true phase is a function of the state (and of the
observation: the test decodes it from the recorded grid), not a planted schedule:

- **wait at the surface** (3): the submarine is at the surface (row 0, where nothing can hit
  it and no oxygen is used) and an enemy is in one of the rows 1-3 below it: it waits (no-op).
- **rescue a diver** (0): no diver aboard (the diver gauge is empty; surfacing without one
  ends the game): it swims to the nearest diver, or patrols row 4 until one appears. Moves
  only, no firing.
- **stay shallow, then surface** (2): divers aboard and oxygen below 80 (the oxygen gauge shows
  3 cells or fewer): it climbs to row 1, shoots only at enemies in that row, and surfaces when
  the tank is nearly empty (under 20, an empty gauge) or row 1 becomes unsafe. Surfacing
  refills the tank (and uses up a diver, so the next mode is often rescue), and each
  surfacing speeds up the enemies: staying down as long as possible is the point.
- **hunt** (1): otherwise (divers aboard, oxygen 80 or more): it goes to the row of the
  nearest enemy, turns to face it and fires, dodging up or down when it cannot shoot in time.

The rules are checked in that order. Every mode avoids cells an enemy or enemy bullet is
in or moves into next; only "stay shallow" may enter the surface row. As MinAtar does by
default, the previous action is repeated with probability 0.1 (sticky actions); the recorded
action is the one the game received. The game's own difficulty ramp is on.

Why Seaquest: its oxygen tank (200 steps), diver gauge and safe surface make phases that last
tens of steps and differ in both state (depth, oxygen and diver gauges) and action (moves,
fire, waiting). In Breakout the ball crosses the 6 rows between paddle and bricks in 6 steps,
so "track the ball" and "return to the centre" alternate every few steps; in Freeway the
chicken crosses in about 30 steps and its waits for a gap last a few steps. Asterix and
Space Invaders likewise switch between chasing and dodging every few steps.

With 300-step episodes (``make_synthetic("minatar-seaquest", 100, 300, seed=0)``) the phases
hold 16% (rescue), 48% (hunt), 16% (shallow) and 20% (wait) of the steps, and 94-98% of each
phase's steps lie in runs of 20 steps or more (the median step is in a run of 37, 85, 61 and
116 steps). Short runs exist: a rescue that starts at the surface next to a diver (median
7 steps over the rescues not cut by an episode's ends; the long ones are at a game's start,
when the first diver appears after 30 steps), and "shallow" runs that end at once because
row 1 is unsafe. 1.2% of the steps lie in runs shorter than 10 steps.

Each episode starts a new game; a game that ends inside an episode (the submarine is hit or
runs out of oxygen) is followed at once by a new game in the same episode, so every episode
has exactly ``steps`` steps and ends by truncation. The observation is MinAtar's 10x10x10
state grid flattened to 1000 float32 values (channel fastest: index (row * 10 + column) * 10 +
channel), 400 MB per 100k steps; the 6 actions are MinAtar's (no-op, left, up, right, down,
fire).
"""

from __future__ import annotations

import numpy as np

from lagless.errors import LaglessError

SEAQUEST_PHASES = ("rescue a diver", "hunt", "stay shallow, then surface", "wait at the surface")
RESCUE, HUNT, SHALLOW, WAIT = range(4)
NOOP, LEFT, UP, RIGHT, DOWN, FIRE = range(6)  # MinAtar's action ids
SEAQUEST_CHANNELS = 10
WATCHED_ROWS = 3  # at the surface, wait while an enemy is in rows 1..3
SHALLOW_OXYGEN = 80  # below this, stay shallow; a multiple of 20, so the oxygen gauge shows it
LAST_BREATH = 20  # surface below this (the gauge is empty)
PATROL_ROW, IDLE_ROW = 4, 5  # where rescue patrols without divers, where hunt waits without enemies
STICKY_ACTIONS = 0.1  # MinAtar's default chance of repeating the previous action
_MOVES = {NOOP: (0, 0), LEFT: (-1, 0), UP: (0, -1), RIGHT: (1, 0), DOWN: (0, 1), FIRE: (0, 0)}


def _seaquest_module():
    try:
        from minatar.environments import seaquest
    except ImportError as exc:
        raise LaglessError(f"the minatar-seaquest kind needs MinAtar ({exc}); run pip install "
                           "'lagless[minatar]'") from exc
    return seaquest


def _enemies(game) -> list[tuple[int, int, bool]]:
    """(x, row, moving right) of every enemy fish and submarine."""
    return [(e[0], e[1], e[2]) for e in game.e_fish + game.e_subs]


def seaquest_phase(game) -> int:
    """The mode of the scripted player in the game state ``game`` (a MinAtar Seaquest Env)."""
    if game.sub_y == 0 and any(1 <= row <= WATCHED_ROWS for _, row, _ in _enemies(game)):
        return WAIT
    if game.diver_count < 1:  # MinAtar leaves -1 after surfacing with 6 divers: none aboard
        return RESCUE
    if game.oxygen < SHALLOW_OXYGEN:
        return SHALLOW
    return HUNT


class _Player:
    """The scripted policy of one step, given the game state and its phase."""

    def __init__(self, game, phase: int) -> None:
        self.game, self.phase = game, phase
        self.x, self.y = game.sub_x, game.sub_y
        self.enemies = _enemies(game)
        self.threats = self.enemies + [(b[0], b[1], b[2]) for b in game.e_bullets]

    def unsafe(self, x: int, y: int) -> bool:
        """Off the board, at the surface outside "stay shallow" (it uses up a diver), or in a
        cell an enemy or enemy bullet is in or moves into next."""
        if not (0 <= x <= 9 and 0 <= y <= 8):
            return True
        if y == 0:
            return self.phase != SHALLOW
        return any(ty == y and (tx == x or tx + (1 if right else -1) == x)
                   for tx, ty, right in self.threats)

    def safe(self, action: int) -> bool:
        dx, dy = _MOVES[action]
        return not self.unsafe(self.x + dx, self.y + dy)

    def towards(self, tx: int, ty: int) -> int:
        """A safe move towards (tx, ty), rows first; any safe move if staying is unsafe."""
        options = ([UP] if ty < self.y else [DOWN] if ty > self.y else []) + \
                  ([LEFT] if tx < self.x else [RIGHT] if tx > self.x else [])
        for action in options:
            if self.safe(action):
                return action
        if self.unsafe(self.x, self.y):
            for action in (UP, DOWN, LEFT, RIGHT):
                if self.safe(action):
                    return action
        return NOOP

    def dodge(self) -> int:
        for action in (UP, DOWN):
            if self.safe(action):
                return action
        return NOOP

    def attack(self, targets: list[tuple[int, int, bool]]) -> int:
        """Go to the row of the nearest target, face it and fire; dodge if it is too close."""
        tx, ty, _ = min(targets, key=lambda t: (abs(t[1] - self.y), abs(t[0] - self.x)))
        if ty != self.y:
            return self.towards(self.x, ty)
        if tx != self.x and (tx > self.x) == self.game.sub_or:  # facing it
            if self.game.shot_timer == 0:
                return FIRE
            return self.dodge() if abs(tx - self.x) <= 1 else NOOP
        turn = RIGHT if tx > self.x else LEFT
        if abs(tx - self.x) > 1 and self.safe(turn):
            return turn
        return self.dodge()

    def act(self) -> int:
        game = self.game
        if self.phase == WAIT:
            return NOOP
        if self.phase == SHALLOW:
            if self.y > 1:
                return self.towards(self.x, 1)
            if self.y == 0:
                return NOOP
            if game.oxygen < LAST_BREATH or self.unsafe(self.x, 1):
                return UP
            in_row = [e for e in self.enemies if e[1] == 1]
            return self.attack(in_row) if in_row else NOOP
        if self.phase == RESCUE:
            if game.divers:
                dx, dy = min(((d[0], d[1]) for d in game.divers),
                             key=lambda d: abs(d[0] - self.x) + abs(d[1] - self.y))
                return self.towards(dx, dy)
            if self.y != PATROL_ROW:
                return self.towards(self.x, PATROL_ROW)
            ahead = RIGHT if game.sub_or else LEFT
            if (self.x == 9 and ahead == RIGHT) or (self.x == 0 and ahead == LEFT):
                ahead = LEFT if ahead == RIGHT else RIGHT
            return ahead if self.safe(ahead) else self.towards(self.x, PATROL_ROW - 1)
        return self.attack(self.enemies) if self.enemies else self.towards(self.x, IDLE_ROW)


def _observe(game) -> np.ndarray:
    return game.state().reshape(-1)


def play_seaquest(steps: int, rng: np.random.Generator) -> dict:
    """One episode of ``steps`` steps of the scripted Seaquest player (a new game at its start
    and after every game over), with the phase of every step; deterministic for ``rng``."""
    seaquest = _seaquest_module()
    game = seaquest.Env(ramping=True)

    def new_game() -> None:
        game.random = np.random.RandomState(int(rng.integers(2**31)))
        game.reset()

    new_game()
    obs = np.empty((steps, 10 * 10 * SEAQUEST_CHANNELS), dtype=np.float32)
    actions = np.empty(steps, dtype=np.int64)
    rewards = np.empty(steps, dtype=np.float32)
    labels = np.empty(steps, dtype=np.int64)
    sticky = rng.random(steps) < STICKY_ACTIONS
    last = NOOP
    for t in range(steps):
        obs[t] = _observe(game)
        labels[t] = seaquest_phase(game)
        action = last if sticky[t] else _Player(game, int(labels[t])).act()
        actions[t] = last = action
        rewards[t], over = game.act(action)
        if over and t < steps - 1:
            new_game()
    return {"obs": obs, "actions": actions, "rewards": rewards, "final": _observe(game).astype(np.float32),
            "labels": labels, "num_actions": len(_MOVES)}
