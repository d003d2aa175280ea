"""``lagless demo``: why temporal skip connections matter, in a few minutes of CPU.

Two 8-layer pipelined agents learn CartPole-v1, one per CPU core: ``skip`` with the last 4
actions appended to the observation (delay 1..8), and a plain ``chain`` (every observation
8 steps old). Both are evaluated with their delays and shown side by side, in a table and a
plot. Then the trained ``skip`` actor is timed with the sequential and the fused executor,
and driven against a wall clock (``lagless run``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from lagless.errors import LaglessError
from lagless.realtime.evaluate import evaluate
from lagless.realtime.ppo_config import PPOConfig
from lagless.runs import plot_comparison, read_metrics

DEMO_ENV = "CartPole-v1"
DEMO_LAYERS = 8
DEMO_STEPS = 200_000
DEMO_AGENTS = {  # label -> train flags
    "skip + last 4 actions": ["--arch", "skip", "--last-actions", "4"],
    "chain": ["--arch", "chain", "--last-actions", "0"],
}


def _last_step(run_dir: Path) -> int:
    """The step of the newest metrics row, 0 before the first one (for the progress bars)."""
    try:
        steps = read_metrics(run_dir / "metrics.csv")["step"]
    except LaglessError:
        return 0
    return int(steps[-1]) if len(steps) else 0


def run_demo(out: str | Path, *, steps: int = DEMO_STEPS, seed: int = 1, layers: int = DEMO_LAYERS) -> list[dict]:
    """Train both agents in parallel subprocesses, evaluate them, print a table, write a plot."""
    if steps < 2048:
        raise LaglessError(f"--steps must be at least 2048 (one rollout), got {steps}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {label: out / label.split()[0] for label in DEMO_AGENTS}
    procs = {}
    for label, flags in DEMO_AGENTS.items():
        run_dir = runs[label]
        resume = (run_dir / "config.json").exists()
        cmd = [sys.executable, "-m", "lagless.cli", "train"]
        cmd += ["--resume", str(run_dir)] if resume else [
            "--env", DEMO_ENV, "--tau", "1", "--layers", str(layers), "--seed", str(seed),
            "--run-dir", str(run_dir), *flags]
        cmd += ["--total-steps", str(steps), "--threads", "1", "--no-progress"]
        log = open(out / f"{run_dir.name}.log", "w")  # noqa: SIM115 (closed below)
        procs[label] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "OMP_NUM_THREADS": "1"}), log)
    batch = PPOConfig().num_envs * PPOConfig().rollout_steps
    total = -(-steps // batch) * batch  # training stops at the first whole rollout past `steps`
    try:
        _follow(procs, runs, total)
    finally:
        for p, log in procs.values():
            if p.poll() is None:
                p.terminate()
            log.close()
    for label, (p, _) in procs.items():
        if p.returncode != 0:
            raise LaglessError(f"training '{label}' failed (exit {p.returncode}): see {out}/{runs[label].name}.log")

    rows = []
    for label in DEMO_AGENTS:
        s = evaluate(runs[label], episodes=30, seed=seed + 10_000)
        m = read_metrics(runs[label] / "metrics.csv")
        rows.append({"agent": label, "delay": f"{s['actor_min_delay']}..{s['actor_max_delay']}",
                     "steps": s["step"], "train_return": float(m["charts/recent_return"][-1]),
                     "eval_mean": s["mean"], "eval_std": s["std"], "sps": float(m["charts/sps"][-1])})
    plot = plot_comparison({label: runs[label] / "metrics.csv" for label in DEMO_AGENTS},
                           out / "comparison.png", title=f"{DEMO_ENV}, {layers} layers, tau 1")
    print(format_table(rows))
    print(f"plot: {plot}   runs: {', '.join(str(r) for r in runs.values())}")
    skip_run = runs[next(iter(DEMO_AGENTS))]
    print(fused_speedup_line(skip_run))
    print(realtime_lines(skip_run, layers))
    return rows


def realtime_lines(run_dir: Path, layers: int, hz: float = 100.0, layer_ms: float = 2.0,
                   max_ticks: int = 300) -> str:
    """The trained skip actor (fused) on a wall clock, with slow hardware simulated ('lagless run')."""
    from lagless.realtime.runner import describe, run_agent

    s = run_agent(run_dir, hz=hz, episodes=1, layer_ms=layer_ms, max_ticks=max_ticks, fused=True, threads=1)
    return (f"wall clock ('lagless run {run_dir} --hz {hz:g} --layer-ms {layer_ms:g} --fused', one episode, "
            f"at most {max_ticks} ticks):\n{describe(s)}\n"
            f"  an instant network of the same depth would need {layers} x {layer_ms:g} = {layers * layer_ms:g} ms "
            f"per step, more than the {1000 / hz:g} ms tick: it would miss its deadlines")


def _follow(procs: dict, runs: dict, total: int) -> None:
    """Progress of the training subprocesses: two tqdm bars on a terminal, plain lines in a log."""
    tty = sys.stderr.isatty()
    bars = {label: tqdm(total=total, desc=f"{label:<22}", unit="step", position=i, dynamic_ncols=True)
            for i, label in enumerate(procs)} if tty else {}
    last_line = 0.0
    try:
        while True:
            running = any(p.poll() is None for p, _ in procs.values())
            done = {label: min(_last_step(runs[label]), total) for label in procs}
            if tty:
                for label, bar in bars.items():
                    bar.n = done[label]
                    bar.refresh()
            elif time.monotonic() - last_line >= 15 or not running:  # a log file gets one line per 15 s
                last_line = time.monotonic()
                print("[demo] " + " | ".join(f"{label}: {n:,}/{total:,} steps" for label, n in done.items()),
                      file=sys.stderr, flush=True)
            if not running:
                return
            time.sleep(1.0)
    finally:
        for bar in bars.values():
            bar.close()


def fused_speedup_line(run_dir: Path, steps: int = 300) -> str:
    """Per-step time of the trained actor, sequential against fused (batch 1, one thread)."""
    import torch

    from lagless.trainers import load_policy

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = {}
        for fused in (False, True):
            policy = load_policy(run_dir, fused=fused)
            x = torch.zeros(1, policy.layout.flat_dim)
            starts = torch.zeros(1, dtype=torch.bool)
            with torch.inference_mode():
                state = policy.actor.initial_state(1)
                best = float("inf")
                for _ in range(5):
                    t0 = time.perf_counter()
                    for _ in range(steps):
                        _, state = policy.actor(x, state, starts)
                    best = min(best, (time.perf_counter() - t0) / steps)
            times[fused] = best * 1e3
            native = fused and policy.actor.runs_native
    finally:
        torch.set_num_threads(threads)
    return (f"fused executor on the trained skip actor (batch 1, 1 thread): {times[False]:.3f} ms -> "
            f"{times[True]:.3f} ms per step ({times[False] / times[True]:.1f}x, {'C++' if native else 'Python'} "
            "step; 'lagless eval --fused')")


def format_table(rows: list[dict]) -> str:
    head = f"{'agent':<23}{'delay':>7}{'steps':>10}{'train return':>14}{'eval return':>16}{'steps/s':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['agent']:<23}{r['delay']:>7}{r['steps']:>10}{r['train_return']:>14.2f}"
                     f"{r['eval_mean']:>10.2f} ± {r['eval_std']:<4.1f}{r['sps']:>9,.0f}")
    return "\n".join(lines)
