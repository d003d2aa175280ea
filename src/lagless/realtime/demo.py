"""``lagless demo``: why temporal skip connections matter, in a few minutes of CPU.

Two agents of the same depth learn MinAtar Breakout at tau 1, one per CPU core: ``skip``
with the last 4 actions appended to the observation, and a plain ``chain``. Then both are
evaluated with their delays and shown side by side, in a table and a plot.
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

DEMO_ENV = "MinAtar/Breakout-v1"
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


def run_demo(out: str | Path, *, steps: int = 400_000, seed: int = 1, layers: int = 4) -> list[dict]:
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
    bars = {label: tqdm(total=total, desc=f"{label:<18}", unit="step", position=i, dynamic_ncols=True)
            for i, label in enumerate(DEMO_AGENTS)}
    try:
        while any(p.poll() is None for p, _ in procs.values()):
            for label, bar in bars.items():
                bar.n = min(_last_step(runs[label]), total)
                bar.refresh()
            time.sleep(1.0)
    finally:
        for label, bar in bars.items():
            bar.n = min(_last_step(runs[label]), total)
            bar.close()
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
    return rows


def format_table(rows: list[dict]) -> str:
    head = f"{'agent':<20}{'delay':>7}{'steps':>10}{'train return':>14}{'eval return':>16}{'steps/s':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['agent']:<20}{r['delay']:>7}{r['steps']:>10}{r['train_return']:>14.2f}"
                     f"{r['eval_mean']:>10.2f} ± {r['eval_std']:<4.1f}{r['sps']:>9,.0f}")
    return "\n".join(lines)
