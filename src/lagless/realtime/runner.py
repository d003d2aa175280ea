"""``lagless run``: drive a trained agent in wall-clock time, the world advancing without waiting for it.

The clock (one environment, one agent, one thread; ``P = 1 / hz`` seconds):

* Tick ``k`` happens at wall time ``t0 + k * P`` (``t0``: when the episode's first observation,
  ``o_0``, arrives). At every tick ``k >= 1`` the environment takes one step (one agent step,
  i.e. ``tau`` frames) with the newest action that was ready by then, and observation ``o_k``
  arrives. Environment step ``m`` (the one at tick ``m + 1``) is the step that an agent
  keeping up with the clock drives with the action computed from ``o_m``.
* The agent, whenever it is idle, takes the newest observation that has arrived and computes
  one action from it: one network step. What that costs is measured (``perf_counter`` around
  ``Policy.act``), plus ``--layer-ms`` of simulated hardware (a sleep): a pipelined network
  (``policy.min_delay >= 1``: ``chain``, ``skip``, ``obs_to_all``, ``res_skip``) runs the
  layers of one step in parallel, one processor per layer (the paper's premise), so a step
  costs ``layer_ms``; any other network (``instant``, ``lstm``, ``transformer``) runs its
  ``layers`` (the run's ``--layers``) in series: ``layers * layer_ms``. An agent that finishes
  before the next tick waits for the next observation, so a pipelined agent that keeps up fires
  exactly one network step per tick.
* An action finished at time ``f`` is applied from the first tick at or after ``f``. A step
  whose tick comes and no new action has arrived since the previous step repeats the previous
  action (as a robot's actuator would): that step is a **deadline miss**. Before the first
  action of an episode is ready the environment receives a fixed default: action 0 for
  ``Discrete`` (the space's ``start``), zeros clipped into the bounds for ``Box``; those steps
  are misses too. So ``deadline_misses + new actions applied == ticks``.
* The loop is a discrete-event simulation in one thread: after the agent finishes at ``f`` the
  environment is stepped through every tick that passed meanwhile (each with the action current
  at that tick), then the agent takes the newest observation, or waits for the next tick if it
  has already answered the newest one. Observation arrival and action application times are the
  tick schedule; compute times are measured. Waits sleep, then poll for their last 0.2 ms
  (``time.sleep`` alone overshoots by tens of microseconds).
* The world runs on its own: the time spent inside the simulator's ``step`` (``env_ms``) is left
  out of the clock that ticks and the agent see, so a simulator's cost never causes a miss. The
  run then takes that much longer on the wall (``wall_hz``, the rate with it counted).
* ``achieved_hz``: ticks per second from the start to the last step, each step counted at the
  time the runner ran it (a step that passed while the agent computed, at its tick);
  ``tick_late_ms``: how late the steps ran that the runner waited for. Both measure the runner's
  own timing (sleep precision, the operating system's pauses): on an idle machine ``achieved_hz``
  equals ``hz`` and the lateness is a few microseconds. A pause of the whole process (another
  program on the same core) delays a tick's step and the agent alike; what it costs shows up
  as deadline misses.
* Episodes: each starts from ``reset(seed=seed + i)`` with the agent's state reset and a fresh
  clock; an untimed warm-up forward pass runs once before the first. An episode ends when the
  environment terminates or truncates it, or after ``max_ticks`` steps.

Latency, per action, counted at the step that first applies it (``m``):

* ``latency_ticks = m - j + obs_delay``, where ``o_j`` is the newest observation the action
  depends on: the observation read ``min_delay`` network steps before (the one it read, for a
  delay-0 network). A pipelined ``chain`` of L layers that keeps up gives exactly L (+ the
  sensor's ``--obs-delay``), ``instant`` gives 0. ``latency_ticks_oldest`` uses ``max_delay``
  instead (``skip``: L), for networks with a bounded memory. An action that depends on no
  observation of its episode yet (a chain's first L steps) has no latency.
* ``latency_ms = (m + 1 - j + obs_delay) * P`` in milliseconds: from the tick at which the world
  was in the state that observation shows (its arrival, ``obs_delay`` ticks before the agent sees
  it) to the tick at which the action takes effect. It is at least one period: an action takes
  effect at a tick, never between ticks, so a fast ``instant`` agent has 0 ticks and ``P`` ms.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces

from lagless.errors import LaglessError
from lagless.realtime.policy import Policy
from lagless.realtime.recurrent import UNBOUNDED_DELAY
from lagless.runs import atomic_write_json

SLOW_WALL = 0.95  # wall_hz below this fraction of hz: say that the simulator's own steps were left out


@dataclass
class Clock:
    """Where the runner reads the time and waits: wall time by default (tests pass a simulated one).

    ``spin``: the last seconds of every wait are spent polling ``now`` instead of sleeping, because
    ``time.sleep`` overshoots by tens of microseconds, a large share of a tick at thousands of Hz.
    A simulated clock (whose time moves only in ``sleep``) must set it to 0.
    """

    now: Callable[[], float] = time.perf_counter
    sleep: Callable[[float], None] = time.sleep
    spin: float = 2e-4


def is_pipelined(policy: Policy) -> bool:
    """A pipelined actor (its layers may run in parallel): no observation reaches the output in its own step."""
    return policy.min_delay >= 1


def step_cost_s(policy: Policy, layer_ms: float) -> float:
    """Simulated compute per agent step, in seconds: one layer's time if pipelined, else all layers in series."""
    layers = 1 if is_pipelined(policy) else int(policy.config.layers)
    return layers * layer_ms / 1000.0


def default_action(space: spaces.Space) -> np.ndarray:
    """The action sent before an episode's first action is ready, for a vector env of one."""
    if isinstance(space, spaces.Discrete):
        return np.array([int(space.start)], dtype=np.int64)
    if isinstance(space, spaces.Box):
        zero = np.clip(np.zeros(space.shape, dtype=space.dtype), space.low, space.high)
        return zero[None].astype(space.dtype)
    raise LaglessError(f"the real-time runner supports Discrete and Box actions, not {type(space).__name__}")


def check_run_options(hz: float, layer_ms: float, episodes: int, max_ticks: int | None) -> None:
    if not (hz > 0 and math.isfinite(hz)):
        raise LaglessError(f"--hz must be a positive number of ticks per second, got {hz}")
    if not (layer_ms >= 0 and math.isfinite(layer_ms)):
        raise LaglessError(f"--layer-ms must be >= 0, got {layer_ms}")
    if episodes < 1:
        raise LaglessError(f"--episodes must be >= 1, got {episodes}")
    if max_ticks is not None and max_ticks < 1:
        raise LaglessError(f"--max-ticks must be >= 1, got {max_ticks}")


class _Episode:
    """One episode on the clock; see the module docstring for the rules."""

    def __init__(self, policy: Policy, envs, *, hz: float, cost_s: float, greedy: bool, seed: int,
                 max_ticks: int | None, clock: Clock, default: np.ndarray, trace: bool):
        self.policy, self.envs, self.clock = policy, envs, clock
        self.hz, self.period, self.cost_s, self.greedy, self.max_ticks = hz, 1.0 / hz, cost_s, greedy, max_ticks
        self.obs_delay = int(getattr(policy.config, "obs_delay", 0) or 0)
        self.oldest_delay = policy.max_delay if policy.max_delay < UNBOUNDED_DELAY else None
        self.seed, self.default = seed, default
        self.trace = [] if trace else None

    def _tick(self, i: int) -> float:
        return self.t0 + i / self.hz

    def _now(self) -> float:
        """The runner's clock: wall time minus the time spent inside the simulator's own steps."""
        return self.clock.now() - self.env_total

    def _wait_until(self, target: float) -> None:
        clock = self.clock
        left = target - self._now()
        if left > clock.spin:
            clock.sleep(left - clock.spin)
        while clock.spin > 0 and self._now() < target:
            pass

    def run(self) -> dict:
        self.obs, _ = self.envs.reset(seed=self.seed)
        self.k = 0  # environment steps taken == index of the newest observation
        self.action, self.action_id, self.last_applied = self.default, -1, None
        self.fed: list[int] = []  # fed[n]: the observation network step n read
        self.ret, self.misses, self.done, self.capped = 0.0, 0, False, False
        self.lat_ticks, self.lat_oldest, self.lat_ms, self.compute, self.env_s = [], [], [], [], []
        self.late: list[float] = []  # how late a tick's step ran after the runner waited for it
        self.env_total, self.last_step_at = 0.0, None
        state = self.policy.initial_state(1)
        start = torch.ones(1, dtype=torch.bool)
        self.t0 = self._now()
        while not self.done:
            while not self.done and self._tick(self.k + 1) <= self._now():
                self._env_step(on_time=True)  # ticks that passed: the current action
            if self.done:
                break
            if self.fed and self.fed[-1] == self.k:  # already answered the newest observation
                self._wait_until(self._tick(self.k + 1))
                self._env_step(on_time=True)
                continue
            s = self._now()
            out, state = self.policy.act(self.obs, state, start, greedy=self.greedy)
            if self.cost_s > 0:  # simulated hardware
                self._wait_until(self._now() + self.cost_s)
            f = self._now()
            start = torch.zeros(1, dtype=torch.bool)
            self.compute.append(f - s)
            n = len(self.fed)
            self.fed.append(self.k)
            while not self.done and self._tick(self.k + 1) < f:
                self._env_step(on_time=False)  # ticks that passed while computing: the previous action
            self.action, self.action_id = np.asarray(out.action), n
        ticks = self.k
        span = (self.last_step_at - self.t0) if ticks else 0.0
        wall = span + self.env_total  # the same span on the wall clock, the simulator's steps included
        return {
            "return": self.ret, "ticks": ticks, "deadline_misses": self.misses, "decisions": len(self.fed),
            "capped": self.capped, "achieved_hz": ticks / span if span > 0 else None,
            "wall_hz": ticks / wall if wall > 0 else None,
            "_lat_ticks": self.lat_ticks, "_lat_oldest": self.lat_oldest, "_lat_ms": self.lat_ms,
            "_compute": self.compute, "_env": self.env_s, "_late": self.late, "_trace": self.trace,
        }

    def _env_step(self, on_time: bool) -> None:
        """Environment step ``k`` at tick ``k + 1``; ``on_time``: the runner was free to run it at its tick."""
        m = self.k
        due = self._tick(m + 1)
        if on_time:  # how late the runner itself was (sleep and bookkeeping), not the agent
            at = max(due, self._now())
            self.late.append(at - due)
        else:  # it passed while the agent computed: it happened at its tick
            at = due
        self.last_step_at = at
        fresh = self.action_id >= 0 and self.action_id != self.last_applied
        if fresh:
            self._record_latency(m, self.action_id)
        else:
            self.misses += 1
        if self.trace is not None:
            self.trace.append({"step": m, "action_id": self.action_id, "fresh": fresh,
                               "latency_ticks": self.lat_ticks[-1] if fresh and self._has_dep(self.action_id) else None})
        self.last_applied = self.action_id
        a = self.clock.now()
        self.obs, reward, terminated, truncated, _ = self.envs.step(self.action)
        b = self.clock.now()
        self.env_s.append(b - a)
        self.env_total += b - a  # the world runs on its own: the simulator's time is not the agent's
        self.ret += float(np.asarray(reward).reshape(-1)[0])
        self.k += 1
        if bool(np.asarray(terminated).reshape(-1)[0] or np.asarray(truncated).reshape(-1)[0]):
            self.done = True
        elif self.max_ticks is not None and self.k >= self.max_ticks:
            self.done = self.capped = True

    def _has_dep(self, n: int) -> bool:
        return n - self.policy.min_delay >= 0

    def _record_latency(self, m: int, n: int) -> None:
        if not self._has_dep(n):
            return  # the action depends on no observation of this episode yet
        j = self.fed[n - self.policy.min_delay]
        self.lat_ticks.append(m - j + self.obs_delay)
        self.lat_ms.append((m + 1 - j + self.obs_delay) * self.period * 1000.0)
        if self.oldest_delay is not None and n - self.oldest_delay >= 0:
            self.lat_oldest.append(m - self.fed[n - self.oldest_delay] + self.obs_delay)


def _ms_stats(values_s: list[float], scale: float = 1000.0) -> dict | None:
    if not values_s:
        return None
    v = np.asarray(values_s, dtype=np.float64) * scale
    return {"mean": round(float(v.mean()), 4), "p50": round(float(np.percentile(v, 50)), 4),
            "p95": round(float(np.percentile(v, 95)), 4), "max": round(float(v.max()), 4)}


def _tick_stats(values: list[int]) -> dict | None:
    if not values:
        return None
    v = np.asarray(values)
    return {"min": int(v.min()), "max": int(v.max()), "mean": round(float(v.mean()), 4)}


def run_realtime(policy: Policy, *, hz: float, episodes: int = 3, layer_ms: float = 0.0, greedy: bool = True,
                 seed: int = 0, max_ticks: int | None = None, clock: Clock | None = None,
                 trace: bool = False, warmup: bool = True) -> dict:
    """Run ``episodes`` episodes of ``policy`` on a wall clock of ``hz`` ticks per second; returns the summary.

    ``trace`` adds, per episode, one record per environment step (``action_id`` -1 is the default
    action; ``fresh`` is False on a deadline miss).
    """
    check_run_options(hz, layer_ms, episodes, max_ticks)
    clock = clock or Clock()
    config = policy.config
    envs = config.make_envs(1, seed=seed)
    try:
        default = default_action(envs.single_action_space)
        if warmup:  # untimed: the first forward pass pays for allocations and lazy initialisation
            obs, _ = envs.reset(seed=seed)
            policy.act(obs, policy.initial_state(1), torch.ones(1, dtype=torch.bool), greedy=greedy)
        torch.manual_seed(seed)
        cost = step_cost_s(policy, layer_ms)
        results = [_Episode(policy, envs, hz=hz, cost_s=cost, greedy=greedy, seed=seed + i, max_ticks=max_ticks,
                            clock=clock, default=default, trace=trace).run() for i in range(episodes)]
    finally:
        envs.close()
    return summarise(policy, results, hz=hz, layer_ms=layer_ms, greedy=greedy, seed=seed, max_ticks=max_ticks)


def summarise(policy: Policy, results: list[dict], *, hz: float, layer_ms: float, greedy: bool, seed: int,
              max_ticks: int | None) -> dict:
    def gather(key):
        return [x for r in results for x in r[key]]

    ticks = sum(r["ticks"] for r in results)
    misses = sum(r["deadline_misses"] for r in results)
    returns = [r["return"] for r in results]
    span_s = sum(r["ticks"] / r["achieved_hz"] for r in results if r["achieved_hz"])
    wall_s = sum(r["ticks"] / r["wall_hz"] for r in results if r["wall_hz"])
    config = policy.config
    summary = {
        "algo": policy.kind, "env": config.env, "arch": policy.arch, "layers": int(config.layers),
        "checkpoint": str(policy.checkpoint) if policy.checkpoint else None, "step": policy.step,
        "pipelined": is_pipelined(policy), "hz": hz, "period_ms": round(1000.0 / hz, 6), "layer_ms": layer_ms,
        "simulated_step_ms": round(step_cost_s(policy, layer_ms) * 1000.0, 6),
        "obs_delay": int(getattr(config, "obs_delay", 0) or 0), "tau": int(getattr(config, "tau", 1)),
        "actor_min_delay": policy.min_delay,
        "actor_max_delay": policy.max_delay if policy.max_delay < UNBOUNDED_DELAY else None,
        "greedy": greedy, "seed": seed, "episodes": len(results), "max_ticks": max_ticks,
        "ticks": ticks, "achieved_hz": round(ticks / span_s, 3) if span_s > 0 else None,
        "wall_hz": round(ticks / wall_s, 3) if wall_s > 0 else None,
        "tick_late_ms": _ms_stats(gather("_late")),
        "decisions": sum(r["decisions"] for r in results),
        "deadline_misses": misses, "miss_rate": round(misses / ticks, 6) if ticks else None,
        "latency_ticks": _tick_stats(gather("_lat_ticks")),
        "latency_ticks_oldest": _tick_stats(gather("_lat_oldest")),
        "latency_ms": _ms_stats(gather("_lat_ms"), scale=1.0),
        "compute_ms": _ms_stats(gather("_compute")),
        "env_ms": _ms_stats(gather("_env")),
        "returns": returns, "mean_return": float(np.mean(returns)),
        "per_episode": [{k: r[k] for k in ("return", "ticks", "deadline_misses", "decisions", "capped",
                                           "achieved_hz", "wall_hz")} for r in results],
    }
    if any(r["_trace"] is not None for r in results):
        summary["trace"] = [r["_trace"] for r in results]
    return summary


def load_for_run(run_dir: str | Path, checkpoint: str | Path | None, *, device: str, fused: bool) -> Policy:
    """``load_policy``, passing ``fused=True`` only when asked (older ``load_policy`` has no such keyword)."""
    from lagless.trainers import load_policy

    if not fused:
        return load_policy(run_dir, checkpoint, device=device)
    if "fused" not in inspect.signature(load_policy).parameters:
        raise LaglessError("--fused is not available in this version of lagless (load_policy has no fused executor)")
    return load_policy(run_dir, checkpoint, device=device, fused=True)


def run_agent(run_dir: str | Path, *, hz: float, episodes: int = 3, layer_ms: float = 0.0,
              checkpoint: str | Path | None = None, greedy: bool = True, seed: int | None = None,
              device: str = "cpu", max_ticks: int | None = None, fused: bool = False,
              out: str | Path | None = None, trace: bool = False, threads: int = 1) -> dict:
    """Load a run's agent, run it on the wall clock and write the summary (``RUN/run.json`` or ``out``).

    ``threads``: torch CPU threads while acting (0: leave torch's setting); restored afterwards.
    """
    check_run_options(hz, layer_ms, episodes, max_ticks)
    if threads < 0:
        raise LaglessError(f"--threads must be >= 0, got {threads}")
    path = Path(out) if out else Path(run_dir) / "run.json"
    if out and not path.parent.is_dir():
        raise LaglessError(f"the folder of --out {path} does not exist")
    policy = load_for_run(run_dir, checkpoint, device=device, fused=fused)
    seed = policy.config.seed + 10_000 if seed is None else seed  # not the training seeds
    t = time.perf_counter()
    before = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        summary = run_realtime(policy, hz=hz, episodes=episodes, layer_ms=layer_ms, greedy=greedy, seed=seed,
                               max_ticks=max_ticks, trace=trace)
        summary["threads"] = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    summary["fused"] = fused
    summary["device"] = str(policy.device)
    summary["seconds"] = round(time.perf_counter() - t, 2)
    summary["written_to"] = str(path)
    atomic_write_json(path, summary)
    return summary


def describe(s: dict) -> str:
    """The lines ``lagless run`` prints."""
    delay = f"delay {s['actor_min_delay']}..{s['actor_max_delay'] if s['actor_max_delay'] is not None else 'inf'}"
    sim = (f"; {s['layer_ms']:g} ms per layer simulated, {s['simulated_step_ms']:g} ms per step "
           f"({'layers in parallel' if s['pipelined'] else 'layers in series'})" if s["layer_ms"] else "")
    head = (f"{s['arch']} ({s['algo']}, {s['layers']} layers, {delay}, obs delay {s['obs_delay']}) on {s['env']} "
            f"at {s['hz']:g} Hz ({s['period_ms']:g} ms per tick{sim})")
    lines = [head]
    late = s.get("tick_late_ms")
    rate = (f"achieved {s['achieved_hz']:.1f} Hz" + (f" (ticks late by {late['mean']:.3f} ms mean, "
                                                       f"{late['max']:.3f} max)" if late else "")
            if s["achieved_hz"] else "no ticks")
    lines.append(f"  {rate}; deadline misses {s['deadline_misses']} of {s['ticks']} ticks "
                 f"({100 * (s['miss_rate'] or 0):.1f}%); {s['decisions']} actions computed")
    lt, lm, c = s["latency_ticks"], s["latency_ms"], s["compute_ms"]
    if lt:
        oldest = s["latency_ticks_oldest"]
        span = f"{lt['min']}..{lt['max']} (mean {lt['mean']:.2f})"
        if oldest and s["pipelined"] and oldest["max"] != lt["max"]:
            span += f", oldest observation {oldest['min']}..{oldest['max']}"
        lines.append(f"  observation-to-action latency: {span} ticks; {lm['mean']:.2f} ms mean, "
                     f"p95 {lm['p95']:.2f}, max {lm['max']:.2f}")
    else:
        lines.append("  observation-to-action latency: no action reached the environment")
    if c:
        env = f"; environment step {s['env_ms']['mean']:.3f} ms mean" if s["env_ms"] else ""
        lines.append(f"  compute per action {c['mean']:.3f} ms mean, p95 {c['p95']:.3f}, max {c['max']:.3f}{env}")
    rets = ", ".join(f"{r:g}" for r in s["returns"])
    lines.append(f"  return per episode {rets} (mean {s['mean_return']:.2f})")
    if s.get("wall_hz") and s["wall_hz"] < SLOW_WALL * s["hz"]:
        lines.append(f"  note: {s['wall_hz']:.1f} ticks per second of wall time: the simulator's own steps "
                     f"({s['env_ms']['mean']:.3f} ms each) are left out of the agent's clock, as if the world "
                     "ran on its own")
    if s.get("written_to"):
        lines.append(f"  written to {s['written_to']}")
    return "\n".join(lines)
