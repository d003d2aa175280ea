"""Depth trade-off: final return against actor depth for chain, skip (+ last actions) and the bound.

Issue 15, item 3. Deeper pipelined actors see older observations (a chain of L layers acts on an
observation L steps old), so depth buys capacity at the price of delay. For layers {2, 4, 8, 16}
this runs four columns per depth, at tau 1:

- ``instant``: an ordinary network of that depth (no delay; the unreachable reference);
- ``chain``: the plain pipelined chain, L steps late, no last actions;
- ``skip``: temporal skip connections plus the last L executed actions (one per layer, the
  convention of ``minatar_delay.py``), read undelayed by the dense layers (fresh_actions);
- ``instant obs+1``: an ordinary network behind a one-step observation delay (``--obs-delay 1``)
  with the same L last actions as skip: roughly the best a pipelined network can do, its freshest
  input being one step old. ``skip / bound`` in the report is skip over this column.

Tasks, each with its algorithm and default budget (``--steps`` overrides)::

    CartPole-v1, Acrobot-v1          PPO, 200k steps   (delay bites, cheap; + an evaluation)
    MinAtar/SpaceInvaders-v1,
    MinAtar/Freeway-v1               PPO, 500k steps
    Hopper-v5                        SAC, 100k steps   (+ an evaluation, as mujoco_delay.py)

The two MinAtar games are those of ``benchmarks/results/minatar_delay.md`` (4 layers, 3 seeds)
where delay costs most and the skip-chain gap is clearest against the seed spread:
SpaceInvaders (chain 0.47 of instant, skip - chain = +3.0 with seed sds 1.3 / 0.8) and Freeway
(skip - chain = +2.4 with sds 0.7 / 1.5, skip even above the one-step bound). Asterix and
Seaquest lose as much to delay but skip barely beats chain there (Asterix 1.00 vs 0.95, Seaquest
returns near 1 with large spread), and in Breakout chain beats instant (no delay cost to study).
Hopper-v5 is the MuJoCo task with the clearest gap in ``mujoco_delay.md`` (skip 1534 vs chain
140, seed 1). PPO runs use ``lagless train``'s PPO defaults (16 envs x 128 steps, width 128);
SAC runs are configured as in ``mujoco_delay.py`` (width 256, checkpoints every fifth).

``final_return`` is minatar_delay's: the mean return of the training episodes ending in the last
10% of a run's steps (from ``RUN/metrics.csv``). Where cheap (CartPole, Acrobot: 30 episodes
sampling the policy, as ``lagless eval``; Hopper: 10 deterministic episodes, as mujoco_delay.py)
the final policy is also evaluated on seeds 10000 + seed, recorded as ``eval_return``; the
report uses ``eval_return`` where present.

``--precision bf16`` trains with lagless's bfloat16 matmuls (about half a SAC run's time on a CPU
with bfloat16 units); records carry ``precision`` and the report names each task's precisions.

One training at a time; each finished run is merged into ``benchmarks/results/depth_tradeoff.json``
(under a lock) and the report ``.md`` and plot ``.png`` are regenerated. An interrupted run (its
folder under ``--runs-root`` exists) resumes from its last checkpoint. The loop runs seed by seed
(all tasks, depths and columns of seed 1 first), so complete one-seed tables come early::

    python benchmarks/depth_tradeoff.py --env CartPole-v1 Acrobot-v1 --seeds 1 2 3 --skip-done
    python benchmarks/depth_tradeoff.py --env SpaceInvaders Freeway Hopper --seeds 1 2 3 --skip-done
    python benchmarks/depth_tradeoff.py --report-only
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import shlex
import sys
import time
from itertools import pairwise
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minatar_delay import (
    PRECISIONS,
    final_return_from_metrics,
    last_sps,
    previous_command,
    returns_by_fifth,
    setting,
    time_to_stop,
)
from mujoco_delay import _stats
from records import load_records, machine
from records import merge_record as merge_locked

ROOT = Path(__file__).resolve().parent.parent
# task -> (algorithm, default steps, evaluation (episodes, greedy) or None)
TASKS = {
    "CartPole-v1": ("ppo", 200_000, (30, False)),
    "Acrobot-v1": ("ppo", 200_000, (30, False)),
    "MinAtar/SpaceInvaders-v1": ("ppo", 500_000, None),
    "MinAtar/Freeway-v1": ("ppo", 500_000, None),
    "Hopper-v5": ("sac", 100_000, (10, True)),
}
LAYERS = (2, 4, 8, 16)
TAU = 1
SAC_HIDDEN = 256  # as mujoco_delay.py
# column -> (arch, observation delay); skip and the bound get one last action per layer
COLUMNS = {"instant": ("instant", 0), "chain": ("chain", 0), "skip": ("skip", 0), "instant obs+1": ("instant", 1)}
BOUND = "instant obs+1"
# the return a fraction of the bound is measured from: 0, or the random policy's where returns are
# negative (Acrobot-v1: -500, every step of the 500-step limit costs -1)
FLOOR = {"Acrobot-v1": -500.0}
GOAL_BOUND = 0.9
# "not shrinking": each deeper gap at least this share of the previous one (CartPole's gap is capped at
# 500 minus a near-random chain, so noise of a few points in chain's return must not fail the goal)
GAP_KEEP = 0.95
GOAL_BOUND_TASKS = ("CartPole-v1", "Acrobot-v1")
KEY_FIELDS = ("env", "algo", "arch", "layers", "tau", "last_actions", "obs_delay", "seed", "steps", "precision")
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "depth_tradeoff.json"
DEFAULT_RUNS_ROOT = Path("runs") / "bench" / "depth_tradeoff"
FULL_COMMAND = ("OMP_NUM_THREADS=1 python benchmarks/depth_tradeoff.py --env all --seeds 1 2 3 --skip-done")


def short(env: str) -> str:
    return env.split("/")[-1].split("-")[0]


def resolve_envs(values: list[str]) -> list[str]:
    if not values or "all" in values:
        return list(TASKS)
    out = []
    for v in values:
        hits = [e for e in TASKS if v.lower() in (e.lower(), e.split("/")[-1].lower(), short(e).lower())]
        if len(hits) != 1:
            sys.exit(f"unknown --env '{v}': choose from all, " + ", ".join(short(e) for e in TASKS))
        out += [h for h in hits if h not in out]
    return out


def last_actions_for(col: str, layers: int) -> int:
    return 0 if col in ("instant", "chain") else layers


def column(rec: dict) -> str | None:
    """The report column of a record, None for a setting this benchmark does not run."""
    for col, (arch, delay) in COLUMNS.items():
        if (rec["arch"], rec["obs_delay"], rec["last_actions"]) == (arch, delay,
                                                                    last_actions_for(col, rec["layers"])):
            return col
    return None


def merge_record(path: Path, rec: dict) -> None:
    order = list(TASKS)
    merge_locked(path, rec, KEY_FIELDS, lambda r: (
        order.index(r["env"]) if r["env"] in order else 99, r["layers"],
        list(COLUMNS).index(column(r)) if column(r) else 99, r["seed"], r["steps"]))


def record_key(rec: dict) -> tuple:
    """A record's key, ``precision`` defaulting to fp32 for records written before the flag."""
    return tuple(setting(rec, k) for k in KEY_FIELDS)


def run_dir_for(runs_root: Path, env: str, col: str, layers: int, seed: int, steps: int,
                precision: str = "fp32") -> Path:
    tag = col.replace(" obs+", "-d") + ("" if precision == "fp32" else f"-{precision}")
    return runs_root / f"{short(env)}-{tag}-L{layers}-t{TAU}-k{last_actions_for(col, layers)}-s{seed}-n{steps}"


# ------------------------------------------------------------------ one run


def make_config(env: str, col: str, layers: int, seed: int, steps: int, rdir: Path, progress: bool,
                precision: str = "fp32"):
    algo = TASKS[env][0]
    arch, delay = COLUMNS[col]
    common = {"env": env, "arch": arch, "layers": layers, "tau": TAU, "last_actions": last_actions_for(col, layers),
              "obs_delay": delay, "seed": seed, "total_steps": steps, "run_dir": str(rdir), "threads": 1,
              "progress": progress, "tensorboard": False, "precision": precision}
    if algo == "sac":
        from lagless.realtime.sac_config import SACConfig

        return SACConfig(hidden=SAC_HIDDEN, checkpoint_every=max(10_000, steps // 5), **common)
    from lagless.realtime.ppo_config import PPOConfig

    return PPOConfig(**common)


def run_one(env: str, col: str, layers: int, seed: int, steps: int, runs_root: Path, out: Path,
            progress: bool, command: str, precision: str = "fp32") -> dict:
    """Train (or resume) one run, evaluate it where cheap, merge its record."""
    from lagless.trainers import load_policy, train

    algo, _, evaluation = TASKS[env]
    rdir = run_dir_for(runs_root, env, col, layers, seed, steps, precision)
    resume = (rdir / "config.json").exists()
    config = make_config(env, col, layers, seed, steps, rdir, progress, precision)
    print(f"[depth_tradeoff] {'resuming' if resume else 'starting'} {env} {col} {precision} L{layers} seed {seed} "
          f"steps {steps} -> {rdir}", flush=True)
    t0 = time.perf_counter()
    result = train(algo, config, resume=resume)
    wall = time.perf_counter() - t0
    final, episodes, _ = final_return_from_metrics(rdir)
    rec = {
        "env": env, "algo": algo, "arch": config.arch, "layers": layers, "tau": TAU,
        "last_actions": config.last_actions, "obs_delay": config.obs_delay, "hidden": config.hidden,
        "seed": seed, "steps": steps, "precision": precision, "final_return": round(final, 3),
        "final_episodes": episodes,
        "return_by_fifth": returns_by_fifth(rdir),
        "sps": round(result.sps if result.sps > 0 else last_sps(rdir), 1),
        "wall_minutes": round(wall / 60, 2), "resumed": resume,
    }
    if evaluation:
        from lagless.realtime.evaluate import run_episodes

        n, greedy = evaluation
        t1 = time.perf_counter()
        returns, _ = run_episodes(load_policy(rdir), n, seed=10_000 + seed, greedy=greedy)
        rec.update(eval_return=round(float(np.mean(returns)), 3), eval_return_std=round(float(np.std(returns)), 3),
                   eval_episodes=n, eval_greedy=greedy, eval_minutes=round((time.perf_counter() - t1) / 60, 2))
    rec.update(date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), machine=machine(),
               command=command)
    merge_record(out, rec)
    ev = f", eval_return {rec['eval_return']:.1f}" if "eval_return" in rec else ""
    print(f"[depth_tradeoff] done {env} {col} L{layers} seed {seed}: final_return {final:.2f} "
          f"({episodes} episodes){ev}, {rec['sps']:.0f} steps/s, {wall / 60:.1f} min"
          f"{' (resumed)' if resume else ''}", flush=True)
    return rec


# ------------------------------------------------------------------ report


def score(rec: dict) -> float:
    """What the report compares: the evaluation where there is one, else final_return."""
    return rec.get("eval_return", rec["final_return"])


def cells(recs: list[dict]) -> dict[tuple[str, int, str], list[float]]:
    """(env, layers, column) -> scores over seeds, for the records at each task's chosen budget."""
    out: dict[tuple[str, int, str], list[float]] = {}
    for r in recs:
        col = column(r)
        if col is not None and r["tau"] == TAU:
            out.setdefault((r["env"], r["layers"], col), []).append(score(r))
    return out


def fraction(env: str, x: float, bound: float) -> float:
    floor = FLOOR.get(env, 0.0)
    return (x - floor) / (bound - floor) if bound - floor > 0 else math.nan


def bound_note(means: dict, env: str, L: int) -> str:
    """A flag for a depth where the bound fell below chain (it learned worse than a network L steps late)."""
    b, ch = means.get((env, L, BOUND), math.nan), means.get((env, L, "chain"), math.nan)
    return " (bound < chain)" if b < ch else ""


def select(recs: list[dict], steps: dict[str, int]) -> list[dict]:
    return [r for r in recs if r["env"] in TASKS and r["steps"] == steps[r["env"]]]


def _depths(means: dict, env: str, a: str, b: str, least: int = 1) -> list[int]:
    return [L for L in LAYERS if L >= least and (env, L, a) in means and (env, L, b) in means]


def _goal(name: str, desc: str, envs, depths_of, judge, label: str) -> str:
    """One goal line: ``judge(env, depths)`` gives (text, met) for each task with depths to check."""
    per_task, met, checked = [], True, 0
    for env in envs:
        depths = depths_of(env)
        if depths:
            text, ok = judge(env, depths)
            per_task.append(f"{short(env)} {text}")
            met, checked = met and ok, checked + 1
    if not checked:
        return f"- **{name}** ({desc}): nothing to check yet."
    return (f"- **{name}** ({desc}): **{'MET' if met else 'NOT MET'}** on the {checked} of {len(envs)} task(s) "
            f"run so far. {label}: " + "; ".join(per_task) + ".")


def goals(c: dict, means: dict) -> list[str]:
    def gap(env, depths):
        gaps = [means[(env, L, "skip")] - means[(env, L, "chain")] for L in depths]
        above, growing = all(g > 0 for g in gaps), all(b >= GAP_KEEP * a for a, b in pairwise(gaps))
        return (", ".join(f"L{L} {g:+.1f}" for L, g in zip(depths, gaps))
                + f" ({'above' if above else 'NOT above'}, {'not shrinking' if growing else 'SHRINKS'})",
                above and growing)

    def bound(env, depths):
        fr = [fraction(env, means[(env, L, "skip")], means[(env, L, BOUND)]) for L in depths]
        ok = all(f >= GOAL_BOUND for f in fr)
        return ", ".join(f"L{L} {f:.2f}{bound_note(means, env, L)}" for L, f in zip(depths, fr)) + (
            f" ({'met' if ok else 'NOT met'})"), ok

    lines = [
        _goal("Goal 1", "`skip` + actions above `chain` at 4 layers and deeper on every task, mean over seeds, "
              f"the gap not shrinking as depth grows (each deeper gap >= {GAP_KEEP:.0%} of the previous)",
              list(TASKS),
              lambda env: _depths(means, env, "skip", "chain", least=4), gap, "skip - chain"),
        _goal("Goal 2", f"on CartPole-v1 and Acrobot-v1, `skip` + actions within {GOAL_BOUND:.0%} of the one-step "
              f"bound `{BOUND}` at every depth", list(GOAL_BOUND_TASKS),
              lambda env: _depths(means, env, "skip", BOUND), bound, "skip / bound"),
    ]
    other = [env for env in TASKS if env not in GOAL_BOUND_TASKS]
    meas = []
    for env in other:
        depths = _depths(means, env, "skip", BOUND)
        if depths:
            meas.append(f"{short(env)} " + ", ".join(
                f"L{L} {fraction(env, means[(env, L, 'skip')], means[(env, L, BOUND)]):.2f}" for L in depths))
    lines.append("- Measured, not a goal (MinAtar, Hopper): skip / bound = "
                 + ("; ".join(meas) if meas else "not run yet") + ".")
    return lines


def write_report(out: Path, md: Path, png: Path, steps: dict[str, int], command: str) -> None:
    from lagless.runs import atomic_write_text

    recs = select(load_records(out), steps)
    c = cells(recs)
    means = {k: float(np.mean(v)) for k, v in c.items()}
    lines = [
        "# Depth trade-off: return against actor depth", "",
        (f"tau {TAU}; layers {', '.join(map(str, LAYERS))}. `skip` and `{BOUND}` (an ordinary network behind a "
         "one-step observation delay: the bound for a pipelined network) get the last L executed actions at L "
         "layers; `instant` and `chain` get none. PPO: `lagless train` defaults (16 envs x 128 steps, width 128). "
         f"SAC: width {SAC_HIDDEN}, as `mujoco_delay.py`."), "",
        ("Score: `eval_return` where recorded (CartPole, Acrobot: 30 episodes sampling the final policy; Hopper: "
         "10 deterministic episodes; seeds 10000 + seed), else `final_return` (mean return of the training "
         "episodes ending in the last 10% of steps). Cells: mean ± sd over seeds (n). `skip / bound`: "
         "(skip - floor) / (bound - floor), floor 0 except Acrobot-v1, whose floor is the random policy's -500 "
         "(the 500-step limit at -1 a step), so the fraction is of the improvement over doing nothing."), "",
    ]
    for env, (algo, _, evaluation) in TASKS.items():
        if not any(k[0] == env for k in c):
            continue
        what = "eval_return" if evaluation else "final_return"
        precisions = ", ".join(sorted({setting(r, "precision") for r in recs if r["env"] == env}))
        lines += [f"## {env} ({algo.upper()}, {steps[env]:,} steps, {precisions}, {what})", "",
                  "| layers | " + " | ".join(COLUMNS) + " | skip / bound | skip - chain |",
                  "|---:|" + "---:|" * (len(COLUMNS) + 2)]
        for L in LAYERS:
            row = []
            for col in COLUMNS:
                mean, sd, n = _stats(c.get((env, L, col), []))
                row.append(f"{mean:.1f} ± {sd:.1f} ({n})" if n else "-")
            s, b, ch = (means.get((env, L, k), math.nan) for k in ("skip", BOUND, "chain"))
            fr = fraction(env, s, b)
            row += ["-" if math.isnan(fr) else f"{fr:.2f}{bound_note(means, env, L)}", "-" if math.isnan(s - ch) else f"{s - ch:+.1f}"]
            lines.append(f"| {L} | " + " | ".join(row) + " |")
        train_only = [r for r in recs if r["env"] == env and "eval_return" in r]
        if train_only:
            ft = {}
            for r in train_only:
                ft.setdefault((r["layers"], column(r)), []).append(r["final_return"])
            lines += ["", "final_return (training episodes, last 10% of steps), mean over seeds: " + "; ".join(
                f"L{L} " + ", ".join(f"{col} {np.mean(ft[(L, col)]):.1f}" for col in COLUMNS if (L, col) in ft)
                for L in LAYERS if any((L, col) in ft for col in COLUMNS)) + "."]
        mins = [r["wall_minutes"] for r in recs if r["env"] == env]
        lines += ["", (f"Training time per run here: {np.mean(mins):.1f} min on average ({min(mins):.1f}-"
                       f"{max(mins):.1f}), {len(mins)} runs."), ""]
    lines += ["## Goals", ""] + goals(c, means) + [""]
    todo = []
    seeds_seen = sorted({r["seed"] for r in recs}) or [1]
    for env in TASKS:
        for L in LAYERS:
            for col in COLUMNS:
                n = len(c.get((env, L, col), []))
                if n < 3:
                    todo.append(f"{short(env)}/L{L}/{col} ({n} of 3 seeds)")
    lines += [f"Cells with fewer than 3 seeds: {len(todo)} of {len(TASKS) * len(LAYERS) * len(COLUMNS)}"
              + (": " + ", ".join(todo) if todo and len(todo) <= 40 else "") + ".", "",
              "## Reproduce", "", "Fill the table (one training at a time, 1 torch thread; interrupted runs resume):",
              "", "```", FULL_COMMAND, "```", "", "Last command that updated this file (run or report):", "",
              "```", command, "```", ""]
    dates = sorted(r["date"] for r in recs)
    machines = sorted({r["machine"] for r in recs})
    lines += [f"Machine: {'; '.join(machines) if machines else machine()} (report written on {machine()}).",
              f"Runs dated {dates[0]} .. {dates[-1]}; seeds {seeds_seen}." if dates else "No runs yet.",
              f"Report generated {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}.", ""]
    atomic_write_text(md, "\n".join(lines))
    plot(c, png, steps)


def plot(c: dict, png: Path, steps: dict[str, int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = [e for e in TASKS if any(k[0] == e for k in c)]
    if not envs:
        return
    fig, axes = plt.subplots(1, len(envs), figsize=(4.2 * len(envs), 3.6), squeeze=False)
    for ax, env in zip(axes[0], envs):
        for col in COLUMNS:
            pts = [(L, np.mean(c[(env, L, col)]), np.std(c[(env, L, col)])) for L in LAYERS if (env, L, col) in c]
            if pts:
                x, y, e = map(np.array, zip(*pts))
                ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=col)
        ax.set_xscale("log", base=2)
        ax.set_xticks(LAYERS, [str(L) for L in LAYERS])
        ax.set_xlabel("layers")
        ax.set_title(f"{env} ({TASKS[env][0].upper()}, {steps[env] // 1000}k)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("return (eval where recorded)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    tmp = png.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, png)


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", nargs="+", default=["all"], help="tasks: all, or " + ", ".join(TASKS))
    p.add_argument("--layers", nargs="+", type=int, default=list(LAYERS))
    p.add_argument("--arch", nargs="+", default=list(COLUMNS),
                   help="columns: " + ", ".join(COLUMNS) + " (quote 'instant obs+1', or write bound)")
    p.add_argument("--seeds", nargs="+", type=int, default=[1])
    p.add_argument("--steps", type=int, default=None, help="agent steps per run (default: each task's own)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="lagless's --precision for these runs (bf16: bfloat16 matmuls, about half a SAC run's "
                        "time on a CPU with bfloat16 units); records carry it and the report says it per task")
    p.add_argument("--skip-done", action="store_true", help="skip runs whose record is in the results file")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    p.add_argument("--md", type=Path, default=None, help="report (default: next to --out, .md; plot .png)")
    p.add_argument("--runs-root", type=Path, default=DEFAULT_RUNS_ROOT)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report-only", action="store_true", help="only regenerate the report and plot")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="start no new run after this many minutes (the current one finishes)")
    p.add_argument("--stop-file", type=Path, default=None, help="start no new run once this file exists")
    args = p.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    envs = resolve_envs(args.env)
    archs = [BOUND if a == "bound" else a for a in args.arch]
    bad = [a for a in archs if a not in COLUMNS] + [L for L in args.layers if L < 1]
    if bad:
        sys.exit(f"unknown --arch/--layers {bad}: columns {', '.join(COLUMNS)}")
    steps = {e: args.steps or TASKS[e][1] for e in TASKS}
    md = args.md or args.out.with_suffix(".md")
    png = md.with_suffix(".png")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/depth_tradeoff.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.report_only:
        command = previous_command(md) or command
        write_report(args.out, md, png, steps, command)
        print(md.read_text())
        return
    write_report(args.out, md, png, steps, command)
    progress = not args.no_progress and sys.stderr.isatty()
    t_start = time.monotonic()
    for seed in args.seeds:  # seed by seed: complete one-seed tables first
        for env in envs:
            for L in args.layers:
                for col in archs:
                    if time_to_stop(args, t_start, "depth_tradeoff"):
                        return
                    arch, delay = COLUMNS[col]
                    key = (env, TASKS[env][0], arch, L, TAU, last_actions_for(col, L), delay, seed, steps[env],
                           args.precision)
                    if args.skip_done and any(record_key(r) == key for r in load_records(args.out)):
                        print(f"[depth_tradeoff] skip (done) {env} {col} L{L} seed {seed}", flush=True)
                        continue
                    run_one(env, col, L, seed, steps[env], args.runs_root, args.out, progress, command,
                            args.precision)
                    write_report(args.out, md, png, steps, command)
    print(f"[depth_tradeoff] results: {args.out}, report: {md}, plot: {png}", flush=True)


if __name__ == "__main__":
    main()
