"""Real-time runner benchmark: a pipelined ``skip`` agent against ``instant`` of the same depth, on a wall clock.

Two PPO agents on CartPole-v1, 8 layers of width 64 (trained here if missing, about half a
minute each on one core): ``skip`` with the last 4 actions appended (delay 1..8) and
``instant`` (delay 0). Each is driven by ``lagless run``'s clock (``lagless.realtime.runner``)
at rates from comfortable to impossible, with the measured compute only (``--layer-ms 0``) and
with 2 ms of simulated compute per layer (a pipelined step costs 2 ms, its layers running in
parallel; an instant step 8 x 2 = 16 ms, in series). Every (agent, layer ms, rate) is merged
into ``benchmarks/results/realtime_runner.json``; ``realtime_runner.md`` (table) and
``realtime_runner.png`` (return and deadline misses against the rate) are rewritten::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/realtime_runner.py
    .venv/bin/python benchmarks/realtime_runner.py --hz 100 200 --layer-ms 2 --episodes 5

``untimed`` is the agent's greedy return without a clock (``lagless eval``'s loop, 10 episodes):
what the agent scores when the world waits for it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from records import load_records, machine, merge_record

ROOT = Path(__file__).resolve().parent.parent
ENV, LAYERS, HIDDEN, STEPS, SEED = "CartPole-v1", 8, 64, 200_000, 1
AGENTS = {"skip": {"arch": "skip", "last_actions": 4}, "instant": {"arch": "instant", "last_actions": 0}}
HZ = (50, 100, 200, 500, 1000, 2000, 5000)
LAYER_MS = (0.0, 2.0)
KEY_FIELDS = ("agent", "layer_ms", "hz", "steps", "seed")
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "realtime_runner.json"
DEFAULT_RUNS_ROOT = Path("runs") / "bench" / "realtime_runner"
FULL_COMMAND = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/realtime_runner.py"


def ensure_agent(name: str, runs_root: Path, steps: int, seed: int) -> Path:
    """The agent's run folder, trained (or resumed) to ``steps`` agent steps if it is not already."""
    from lagless.realtime.ppo_config import PPOConfig
    from lagless.runs import checkpoint_step, list_checkpoints
    from lagless.trainers import train

    run = runs_root / f"{name}-l{LAYERS}-h{HIDDEN}-{steps}-s{seed}"
    done = [checkpoint_step(p) for p in list_checkpoints(run)] if run.exists() else []
    if done and max(done) >= steps:
        return run
    config = PPOConfig(env=ENV, layers=LAYERS, hidden=HIDDEN, total_steps=steps, seed=seed, run_dir=str(run),
                       progress=False, tensorboard=False, threads=1, **AGENTS[name])
    t = time.perf_counter()
    print(f"training {name} ({steps:,} steps) in {run}", flush=True)
    train("ppo", config, resume=bool(done))
    print(f"  trained in {time.perf_counter() - t:.0f} s", flush=True)
    return run


def untimed_return(policy, seed: int, episodes: int = 10) -> float:
    from lagless.realtime.evaluate import run_episodes

    returns, _ = run_episodes(policy, episodes, seed=seed, greedy=True)
    return float(np.mean(returns))


def measure(name: str, policy, untimed: float, *, hz: float, layer_ms: float, episodes: int, seed: int,
            steps: int, command: str) -> dict:
    from lagless.realtime.runner import run_realtime

    s = run_realtime(policy, hz=hz, episodes=episodes, layer_ms=layer_ms, greedy=True, seed=seed + 10_000)
    lt, lo = s["latency_ticks"] or {}, s["latency_ticks_oldest"] or {}
    return {
        "agent": name, "arch": s["arch"], "last_actions": AGENTS[name]["last_actions"], "env": ENV,
        "layers": LAYERS, "hidden": HIDDEN, "steps": steps, "seed": seed, "eval_seed": seed + 10_000, "hz": hz, "layer_ms": layer_ms,
        "simulated_step_ms": s["simulated_step_ms"], "episodes": episodes, "untimed_return": untimed,
        "mean_return": s["mean_return"], "returns": s["returns"], "ticks": s["ticks"],
        "deadline_misses": s["deadline_misses"], "miss_rate": s["miss_rate"],
        "latency_ticks_min": lt.get("min"), "latency_ticks_max": lt.get("max"),
        "latency_ticks_oldest_max": lo.get("max"),
        "latency_ticks_mean": lt.get("mean"), "latency_ms_mean": (s["latency_ms"] or {}).get("mean"),
        "compute_ms_mean": (s["compute_ms"] or {}).get("mean"), "env_ms_mean": (s["env_ms"] or {}).get("mean"),
        "achieved_hz": s["achieved_hz"], "wall_hz": s["wall_hz"],
        "tick_late_ms_mean": (s["tick_late_ms"] or {}).get("mean"),
        "load_avg_1min": round(os.getloadavg()[0], 2), "command": command, "machine": machine(), "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _cell(r: dict | None) -> str:
    if r is None:
        return "-"
    lat = f"{r['latency_ticks_min']}..{r['latency_ticks_max']}" if r["latency_ticks_min"] is not None else "-"
    return f"{r['mean_return']:.0f} | {100 * (r['miss_rate'] or 0):.0f}% | {lat}"


def write_report(out: Path, records: list[dict]) -> None:
    md, png = out.with_suffix(".md"), out.with_suffix(".png")
    by = {(r["agent"], r["layer_ms"], r["hz"]): r for r in records}
    first = records[0]
    lines = [
        "# Real-time runner: pipelined skip against instant on a wall clock",
        "",
        (f"{ENV}, PPO, {LAYERS} layers of width {HIDDEN}, {first['steps']:,} agent steps, seed {first['seed']}; "
        f"`skip` with the last {AGENTS['skip']['last_actions']} actions (delay 1..{LAYERS}), `instant` (delay 0). "
        f"Each cell: mean greedy return over {first['episodes']} episodes (CartPole's limit: 500) | deadline "
        "misses (ticks that repeated the previous action) | observation-to-action latency in ticks through the "
        "newest observation the action depends on, min..max (skip's oldest path adds up to 7 ticks). `--layer-ms 2` adds 2 ms per layer: a pipelined step costs "
        "2 ms (its layers in parallel), an instant step 16 ms (in series)."),
        "",
        (f"Machine: {first['machine']}; torch {first['torch']}, {first['threads']} thread(s); "
        f"{first['date'][:10]}. Command: `{first['command']}`."),
        "",
    ]
    loads = [r["load_avg_1min"] for r in records if r.get("load_avg_1min") is not None]
    if loads:
        lines += [(f"Load average (1 min) when each measurement started: {min(loads):.1f} to {max(loads):.1f} "
                  f"on {os.cpu_count()} CPUs."), ""]
    untimed = {a: next((r["untimed_return"] for r in records if r["agent"] == a), None) for a in AGENTS}
    lines.append("Untimed (the world waits for the agent): " +
                 ", ".join(f"{a} {v:.0f}" for a, v in untimed.items() if v is not None) + ".")
    lines.append("")
    for layer_ms in sorted({r["layer_ms"] for r in records}):
        rates = sorted({r["hz"] for r in records if r["layer_ms"] == layer_ms})
        compute = {a: [r["compute_ms_mean"] for r in records if r["agent"] == a and r["layer_ms"] == layer_ms
                       and r["compute_ms_mean"] is not None] for a in AGENTS}
        costs = ", ".join(f"{a} {min(v):.2f} to {max(v):.2f} ms" for a, v in compute.items() if v)
        lines += [f"## --layer-ms {layer_ms:g} (measured compute per action, mean at each rate: {costs})", "",
                  ("| Hz | ms per tick | skip return | skip misses | skip latency (ticks) "
                  "| instant return | instant misses | instant latency (ticks) |"),
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for hz in rates:
            lines.append(f"| {hz:g} | {1000 / hz:g} | {_cell(by.get(('skip', layer_ms, hz)))} "
                         f"| {_cell(by.get(('instant', layer_ms, hz)))} |")
        lines.append("")
    md.write_text("\n".join(lines))
    plot(records, png)
    print(f"wrote {md} and {png}")


def plot(records: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = {"skip": "tab:blue", "instant": "tab:red"}
    for agent in AGENTS:
        for layer_ms, style in zip(sorted({r["layer_ms"] for r in records}), ("-", "--", ":")):
            rs = sorted((r for r in records if r["agent"] == agent and r["layer_ms"] == layer_ms),
                        key=lambda r: r["hz"])
            if not rs:
                continue
            hz = [r["hz"] for r in rs]
            label = f"{agent}, {layer_ms:g} ms/layer"
            axes[0].plot(hz, [r["mean_return"] for r in rs], style, marker="o", color=colors[agent], label=label)
            axes[1].plot(hz, [100 * (r["miss_rate"] or 0) for r in rs], style, marker="o", color=colors[agent],
                         label=label)
    axes[0].set(xscale="log", xlabel="environment rate (Hz)", ylabel="mean return", title="return on the clock")
    axes[1].set(xscale="log", xlabel="environment rate (Hz)", ylabel="deadline misses (% of ticks)",
                title="deadline misses")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{ENV}, {LAYERS}-layer PPO agents: pipelined skip vs instant")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hz", type=float, nargs="+", default=list(HZ), help="rates (ticks per second)")
    p.add_argument("--layer-ms", type=float, nargs="+", default=list(LAYER_MS), help="simulated ms per layer")
    p.add_argument("--agents", nargs="+", choices=list(AGENTS), default=list(AGENTS))
    p.add_argument("--episodes", type=int, default=3, help="episodes per measurement")
    p.add_argument("--steps", type=int, default=STEPS, help="training steps per agent")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--runs-root", type=Path, default=DEFAULT_RUNS_ROOT)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args()
    prefix = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    command = prefix + ".venv/bin/python benchmarks/realtime_runner.py" + "".join(
        " " + shlex.quote(a) for a in sys.argv[1:])
    torch.set_num_threads(1)
    from lagless.trainers import load_policy

    args.out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for name in args.agents:
        run = ensure_agent(name, args.runs_root, args.steps, args.seed)
        policy = load_policy(run)
        untimed = untimed_return(policy, seed=args.seed + 10_000)
        print(f"{name}: untimed return {untimed:.1f}", flush=True)
        for layer_ms in args.layer_ms:
            for hz in args.hz:
                rec = measure(name, policy, untimed, hz=hz, layer_ms=layer_ms, episodes=args.episodes,
                              seed=args.seed, steps=args.steps, command=command)
                merge_record(args.out, rec, KEY_FIELDS,
                             lambda r: (list(AGENTS).index(r["agent"]), r["layer_ms"], r["hz"]))
                print(f"  {name} {layer_ms:g} ms/layer {hz:g} Hz: return {rec['mean_return']:.1f}, misses "
                      f"{rec['deadline_misses']}/{rec['ticks']}, latency {rec['latency_ticks_min']}.."
                      f"{rec['latency_ticks_max']} ticks, compute {rec['compute_ms_mean']:.2f} ms "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
    write_report(args.out, load_records(args.out))


if __name__ == "__main__":
    main()
