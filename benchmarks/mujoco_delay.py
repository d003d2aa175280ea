"""MuJoCo delay benchmark: SAC with instant, chain, skip (+2 last actions) and the one-step bound.

Four MuJoCo tasks x {``instant``, ``chain``, ``skip`` + last 2 actions, ``instant`` with
``--obs-delay 1`` (an ordinary network one step late, with the last 2 actions: roughly the best
any pipelined network can do)} at tau 1 with 4-layer actors of width 256, as in Anokhin et al.
Each finished run is merged into ``benchmarks/results/mujoco_delay.json`` at once (under a lock,
so sittings may run in parallel), and the report ``mujoco_delay.md`` is rewritten::

    python benchmarks/mujoco_delay.py --env HalfCheetah Hopper --seeds 1 2 3 --skip-done
    python benchmarks/mujoco_delay.py --env all --jobs 8 --device cuda   # a GPU machine

An interrupted run (its folder under ``--runs-root`` exists) resumes from its last checkpoint.
``final_return`` is the mean return of ``--eval-episodes`` episodes of the final policy, acting
deterministically (the mean action), on seeds the training never used.
Goal: ``skip`` + actions at least 90% of the one-step bound and above ``chain`` on every task.

``--precision bf16`` trains with lagless's bfloat16 matmuls instead; those records carry
``precision: "bf16"`` and fill their own columns (e.g. ``instant bf16``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import multiprocessing
import os
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minatar_delay import PRECISIONS, returns_by_fifth
from records import load_records, machine
from records import merge_record as merge_locked

ROOT = Path(__file__).resolve().parent.parent
ENVS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5")
LAYERS, HIDDEN, TAU, ACTIONS = 4, 256, 1, 2
# column -> (arch, last actions, observation delay)
COLUMNS = {"instant": ("instant", 0, 0), "chain": ("chain", 0, 0), "skip": ("skip", ACTIONS, 0),
           "instant obs+1": ("instant", ACTIONS, 1)}
KEY_FIELDS = ("env", "arch", "layers", "tau", "last_actions", "obs_delay", "seed", "steps", "precision")
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "mujoco_delay.json"
DEFAULT_RUNS_ROOT = Path("runs") / "bench" / "mujoco_delay"
GOAL = 0.9
FULL_COMMAND = ("OMP_NUM_THREADS=1 python benchmarks/mujoco_delay.py --env HalfCheetah Hopper --seeds 1 2 3 "
                "--skip-done   # one process per core, e.g. one per task")


def resolve_envs(values: list[str]) -> list[str]:
    if not values or "all" in values:
        return list(ENVS)
    out = []
    for v in values:
        hits = [e for e in ENVS if v.lower() in (e.lower(), e.split("-")[0].lower())]
        if len(hits) != 1:
            sys.exit(f"unknown --env '{v}': choose from all, " + ", ".join(e.split("-")[0] for e in ENVS))
        out += [h for h in hits if h not in out]
    return out


def base_column(rec: dict) -> str:
    return next(c for c, (a, k, d) in COLUMNS.items()
                if (a, k, d) == (rec["arch"], rec["last_actions"], rec["obs_delay"]))


def column(rec: dict) -> str:
    """The report column: the architecture's, plus `` bf16`` for runs in bfloat16."""
    return base_column(rec) + ("" if rec["precision"] == "fp32" else f" {rec['precision']}")


def merge_record(path: Path, rec: dict) -> None:
    merge_locked(path, rec, KEY_FIELDS,
                 lambda r: (r["env"], r["precision"] != "fp32", list(COLUMNS).index(base_column(r)), r["seed"],
                            r["steps"]))


def run_one(env: str, col: str, seed: int, steps: int, runs_root: Path, out: Path, device: str,
            eval_episodes: int, progress: bool, precision: str = "fp32") -> dict:
    """Train (or resume) one run, evaluate its final policy, merge the record."""
    import torch

    from lagless.realtime.evaluate import run_episodes
    from lagless.realtime.sac_config import SACConfig
    from lagless.runs import read_metrics
    from lagless.trainers import load_policy, train

    torch.set_num_threads(1)
    arch, last_actions, obs_delay = COLUMNS[col]
    suffix = "" if precision == "fp32" else f"-{precision}"
    rdir = runs_root / f"{env.split('-')[0]}-{col.replace(' ', '').replace('+', 'd')}{suffix}-s{seed}-n{steps}"
    resume = (rdir / "config.json").exists()
    config = SACConfig(env=env, arch=arch, layers=LAYERS, hidden=HIDDEN, tau=TAU, last_actions=last_actions,
                       obs_delay=obs_delay, seed=seed, total_steps=steps, run_dir=str(rdir),
                       checkpoint_every=max(10_000, steps // 5), device=device, threads=1, progress=progress,
                       tensorboard=False, precision=precision)
    print(f"[mujoco_delay] {'resuming' if resume else 'starting'} {env} {col} {precision} seed {seed} -> {rdir}", flush=True)
    t0 = time.perf_counter()
    train("sac", config, resume=resume)
    wall = time.perf_counter() - t0
    returns, _ = run_episodes(load_policy(rdir, device=device), eval_episodes, seed=10_000 + seed, greedy=True)
    m = read_metrics(rdir / "metrics.csv")
    ups = m.get("charts/updates_per_s", np.array([math.nan]))
    rec = {
        "env": env, "arch": arch, "layers": LAYERS, "hidden": HIDDEN, "tau": TAU,
        "last_actions": last_actions, "obs_delay": obs_delay, "seed": seed, "steps": steps,
        "precision": precision, "final_return": round(float(np.mean(returns)), 2), "final_return_std": round(float(np.std(returns)), 2),
        "eval_episodes": eval_episodes, "return_by_fifth": returns_by_fifth(rdir),
        "updates_per_s": round(float(np.nanmean(ups)), 1), "device": device,
        "wall_minutes": round(wall / 60, 1), "resumed": resume,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
    }
    merge_record(out, rec)
    print(f"[mujoco_delay] done {env} {col} {precision} seed {seed}: final_return {rec['final_return']:.1f}, "
          f"{rec['updates_per_s']:.0f} updates/s, {wall / 60:.1f} min", flush=True)
    return rec


def _stats(xs: list[float]) -> tuple[float, float, int]:
    return (float(np.mean(xs)), float(np.std(xs)), len(xs)) if xs else (math.nan, math.nan, 0)


def write_report(out: Path, md: Path, command: str) -> None:
    recs = load_records(out)
    lines = ["# MuJoCo delay benchmark (SAC)", "",
             (f"4-layer actors of width {HIDDEN}, tau {TAU}; `skip` and `instant obs+1` get the last {ACTIONS} "
             "actions; critics 256x256 see the current observation. `final_return`: mean of the final "
             "policy's deterministic evaluation episodes; mean ± sd over seeds (n)."), "",
             (f"Fill the table with `{FULL_COMMAND}` (runs resume and merge); this report was written by "
             f"`{command}`."), ""]
    columns = list(COLUMNS) + sorted({column(r) for r in recs} - set(COLUMNS))
    for steps in sorted({r["steps"] for r in recs}):
        lines += [f"## {steps:,} agent steps", "",
                  "| task | " + " | ".join(columns) + " | skip / bound | skip > chain |",
                  "|---|" + "---|" * (len(columns) + 2)]
        for env in ENVS:
            cells, means = [], {}
            for col in columns:
                xs = [r["final_return"] for r in recs if r["env"] == env and r["steps"] == steps
                      and column(r) == col]
                mean, sd, n = _stats(xs)
                means[col] = mean
                cells.append("" if not n else f"{mean:.0f} ± {sd:.0f} ({n})")
            if not any(cells):
                continue
            bound, skip, chain = means["instant obs+1"], means["skip"], means["chain"]
            shown = f"{skip / bound:.2f}" if bound > 0 else ""  # nan > 0 is False: no bound yet
            lines.append(f"| {env} | " + " | ".join(cells) + f" | {shown} | "
                         + ("" if math.isnan(skip) or math.isnan(chain) else ("yes" if skip > chain else "no"))
                         + " |")
        lines.append("")
    dates = sorted(r["date"][:10] for r in recs)
    machines = sorted({f"{r['machine']} ({r['device']})" for r in recs})
    lines += [(f"Goal: `skip` ≥ {GOAL:.0%} of `instant obs+1` and above `chain` on every task (fp32 columns; "
               "a column named `ARCH bf16` trains with `--precision bf16`)."), "",
              f"Runs dated {dates[0]} to {dates[-1]} on: {'; '.join(machines)}." if recs else "No runs yet."]
    md.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", nargs="*", default=["HalfCheetah", "Hopper"], help="tasks, or all")
    p.add_argument("--arch", nargs="*", default=list(COLUMNS),
                   help="columns: " + ", ".join(COLUMNS) + " ('bound' names 'instant obs+1', as in depth_tradeoff.py)")
    p.add_argument("--seeds", nargs="*", type=int, default=[1])
    p.add_argument("--steps", type=int, default=100_000, help="agent steps per run")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    p.add_argument("--skip-done", action="store_true", help="skip runs whose record is in the results file")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--md", type=Path, default=None, help="report (default: next to --out)")
    p.add_argument("--runs-root", type=Path, default=DEFAULT_RUNS_ROOT)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="lagless's --precision for the runs (bf16: matmuls in bfloat16)")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    md = args.md or args.out.with_suffix(".md")
    command = "python benchmarks/mujoco_delay.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.arch = ["instant obs+1" if a == "bound" else a for a in args.arch]
    if not args.report_only:
        bad = [c for c in args.arch if c not in COLUMNS]
        if bad:
            sys.exit(f"unknown --arch {bad}: choose from {', '.join(COLUMNS)} (quote 'instant obs+1', or say 'bound')")
        done = {(r["env"], column(r), r["seed"], r["steps"]) for r in load_records(args.out)}
        suffix = "" if args.precision == "fp32" else f" {args.precision}"
        todo = [(env, col, seed) for env in resolve_envs(args.env) for col in args.arch for seed in args.seeds
                if not (args.skip_done and (env, col + suffix, seed, args.steps) in done)]
        jobs = [(env, col, seed, args.steps, args.runs_root, args.out, args.device, args.eval_episodes,
                 args.jobs == 1, args.precision) for env, col, seed in todo]
        if args.jobs == 1:
            for job in jobs:
                run_one(*job)
        else:
            os.environ["OMP_NUM_THREADS"] = "1"
            # spawn, not fork: a forked child must not inherit a CUDA context
            with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                for fut in [pool.submit(run_one, *job) for job in jobs]:
                    fut.result()
    write_report(args.out, md, command)
    print(f"[mujoco_delay] report {md}")


if __name__ == "__main__":
    main()
