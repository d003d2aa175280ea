"""MinAtar delay benchmark: instant vs chain vs skip (+last actions) vs lstm, 4 layers, tau 1.

Runs the five MinAtar games x four actor architectures, one training run at a time, and merges
each finished run into ``benchmarks/results/minatar_delay.json`` as soon as it ends, so that the
table can be filled over several sittings::

    python benchmarks/minatar_delay.py --env Breakout --arch all --seeds 1
    python benchmarks/minatar_delay.py --skip-done            # everything not yet in the file

An interrupted run (its folder under ``--runs-root`` exists) is resumed from its last
checkpoint. ``final_return`` is computed from ``RUN/metrics.csv``: the mean return of the
training episodes that finished in the last 10% of the run's agent steps (per-update means
weighted by their episode counts), which is the same for fresh and resumed runs.

After each run (and at start) ``benchmarks/results/minatar_delay.md`` is regenerated from the
JSON. ``--report-only`` just regenerates it.

``--precision bf16`` trains with lagless's bfloat16 matmuls and convolutions instead; those
records carry ``precision: "bf16"`` and fill extra columns (e.g. ``instant bf16``), so that the
report shows whether the faster arithmetic learns as well as float32 (the goal uses float32).

``--obs-delay D`` wraps the environment so the agent sees each observation D steps late (with
the last 4 executed actions current); ``--arch instant --obs-delay 1`` is an ordinary network
that is one step late, roughly the best a pipelined network can do under lagless's convention (an
observation reaches the output one step after it arrives). Its column (``instant obs+1``)
tells the cost of that one step apart from the cost of pipelining.

``--arch obs_to_all res_skip`` also runs the registry's two other pipelined wirings (with skip's
last actions); they get their own columns and are not part of ``--arch all`` or the goal.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from records import load_records, machine

ROOT = Path(__file__).resolve().parent.parent
LAYERS = 4
ENVS = (
    "MinAtar/Asterix-v1",
    "MinAtar/Breakout-v1",
    "MinAtar/Freeway-v1",
    "MinAtar/Seaquest-v1",
    "MinAtar/SpaceInvaders-v1",
)
# arch -> last actions appended to the observation (one per layer: a stage whose input is d <= L
# steps old needs the d actions taken since); lagless feeds them to the dense layers undelayed
ARCHS = {"instant": 0, "chain": 0, "skip": LAYERS, "lstm": 0}  # the four: --arch all
# the registry's other pipelined wirings, run only when named; they get skip's actions
EXTRA_ARCHS = {"obs_to_all": LAYERS, "res_skip": LAYERS}
ALL_ARCHS = {**ARCHS, **EXTRA_ARCHS}
TAU = 1
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "minatar_delay.json"
DEFAULT_RUNS_ROOT = Path("runs") / "bench" / "minatar_delay"
KEY_FIELDS = ("env", "arch", "layers", "tau", "last_actions", "seed", "steps", "precision", "obs_delay")
KEY_DEFAULTS = {"precision": "fp32", "obs_delay": 0}  # for records written before these settings
PRECISIONS = ("fp32", "bf16")
FULL_COMMAND = "python benchmarks/minatar_delay.py --env all --arch all --seeds 1 --skip-done"


# ------------------------------------------------------------------ helpers


def resolve_envs(values: list[str]) -> list[str]:
    if not values or "all" in values:
        return list(ENVS)
    out = []
    for v in values:
        hits = [e for e in ENVS if e == v or e.split("/")[1].split("-")[0].lower() == v.lower()
                or e.split("/")[1].lower() == v.lower()]
        if len(hits) != 1:
            sys.exit(f"unknown --env '{v}': choose from all, "
                     + ", ".join(e.split("/")[1].split("-")[0] for e in ENVS) + " (or full ids)")
        if hits[0] not in out:
            out.append(hits[0])
    return out


def resolve_archs(values: list[str]) -> list[str]:
    if not values or "all" in values:
        return list(ARCHS)
    for v in values:
        if v not in ALL_ARCHS:
            sys.exit(f"unknown --arch '{v}': choose from all, {', '.join(ALL_ARCHS)}")
    return [a for a in ALL_ARCHS if a in values]


def last_actions_for(arch: str, obs_delay: int = 0) -> int:
    """Actions appended for ``arch``; an agent behind a delayed environment gets skip's."""
    return LAYERS if obs_delay else ALL_ARCHS[arch]


def setting(rec: dict, name: str):
    """A record's key field, with the default for records written before the field existed."""
    return rec.get(name, KEY_DEFAULTS.get(name))


def record_key(rec: dict) -> tuple:
    return tuple(rec[k] if k in rec else KEY_DEFAULTS[k] for k in KEY_FIELDS)


def column(rec: dict) -> str:
    """The report column of a record: its arch, plus its observation delay and precision when set."""
    precision, delay = setting(rec, "precision"), setting(rec, "obs_delay")
    return rec["arch"] + (f" obs+{delay}" if delay else "") + ("" if precision == "fp32" else f" {precision}")


def merge_record(path: Path, rec: dict) -> None:
    """Read, merge and write under a lock, so that two sittings in parallel lose no record."""
    import fcntl

    from lagless.runs import atomic_write_json

    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = [r for r in load_records(path) if record_key(r) != record_key(rec)]
        records.append(rec)
        records.sort(key=lambda r: (r["env"], list(ALL_ARCHS).index(r["arch"]) if r["arch"] in ALL_ARCHS
                                    else 99, r["arch"], setting(r, "obs_delay"), setting(r, "precision"),
                                    r["seed"], r["steps"]))
        atomic_write_json(path, records)


def run_dir_for(runs_root: Path, env: str, arch: str, seed: int, steps: int,
                precision: str = "fp32", obs_delay: int = 0) -> Path:
    game = env.split("/")[-1]
    suffix = ("" if precision == "fp32" else f"-{precision}") + (f"-d{obs_delay}" if obs_delay else "")
    k = last_actions_for(arch, obs_delay)
    return runs_root / f"{game}-{arch}-L{LAYERS}-t{TAU}-k{k}-s{seed}-n{steps}{suffix}"


def _episode_mean(m: dict, lo: float, hi: float) -> tuple[float, int]:
    """(mean return, episodes) of the episodes that ended at steps in ``(lo, hi]``."""
    steps, ret, n = m["step"], m["charts/episodic_return"], m["charts/episodes"]
    sel = (steps > lo) & (steps <= hi) & (n > 0) & ~np.isnan(ret)  # updates in which episodes ended
    total = float(n[sel].sum())
    return (float((ret[sel] * n[sel]).sum() / total) if total else math.nan), int(total)


def final_return_from_metrics(run_dir: Path) -> tuple[float, int, int]:
    """(mean return, episodes, last step) over episodes ending in the last 10% of steps."""
    from lagless.runs import read_metrics

    m = read_metrics(run_dir / "metrics.csv")
    last = float(m["step"].max())
    mean, episodes = _episode_mean(m, 0.9 * last, last)
    return mean, episodes, int(last)


def returns_by_fifth(run_dir: Path) -> list[float]:
    """Mean return of the episodes ending in each fifth of the run's steps: the learning curve."""
    from lagless.runs import read_metrics

    m = read_metrics(run_dir / "metrics.csv")
    last = float(m["step"].max())
    means = [_episode_mean(m, k / 5 * last, (k + 1) / 5 * last)[0] for k in range(5)]
    return [round(x, 4) if not math.isnan(x) else x for x in means]


def last_sps(run_dir: Path) -> float:
    from lagless.runs import read_metrics

    m = read_metrics(run_dir / "metrics.csv")
    sps = m["charts/sps"]
    sps = sps[~np.isnan(sps)]
    return float(sps[-1]) if len(sps) else math.nan


def time_to_stop(args, t_start: float, name: str) -> bool:
    """True (and says why) once ``--max-minutes`` have passed or ``--stop-file`` exists."""
    if args.max_minutes is not None and time.monotonic() - t_start > 60 * args.max_minutes:
        print(f"[{name}] --max-minutes reached: stopping", flush=True)
        return True
    if args.stop_file is not None and args.stop_file.exists():
        print(f"[{name}] {args.stop_file} exists: stopping", flush=True)
        return True
    return False


# ------------------------------------------------------------------ one run


def run_one(env: str, arch: str, seed: int, steps: int, runs_root: Path, out: Path,
            progress: bool, precision: str = "fp32", obs_delay: int = 0) -> dict:
    from lagless.realtime.ppo import train
    from lagless.realtime.ppo_config import PPOConfig

    rdir = run_dir_for(runs_root, env, arch, seed, steps, precision, obs_delay)
    resume = (rdir / "config.json").exists()
    config = PPOConfig(env=env, arch=arch, layers=LAYERS, tau=TAU,
                       last_actions=last_actions_for(arch, obs_delay), obs_delay=obs_delay,
                       seed=seed, total_steps=steps, run_dir=str(rdir), progress=progress,
                       threads=1, precision=precision)
    print(f"[minatar_delay] {'resuming' if resume else 'starting'} {env} {arch} {precision} seed {seed} "
          f"steps {steps} -> {rdir}", flush=True)
    t0 = time.perf_counter()
    result = train(config, resume=resume)
    wall = time.perf_counter() - t0
    final, episodes, last = final_return_from_metrics(rdir)
    sps = result.sps if result.sps > 0 else last_sps(rdir)
    rec = {
        "env": env, "arch": arch, "layers": LAYERS, "tau": TAU, "last_actions": config.last_actions,
        "fresh_actions": config.fresh_actions, "obs_delay": obs_delay,
        "seed": seed, "steps": steps, "precision": precision, "final_return": final,
        "return_by_fifth": returns_by_fifth(rdir), "sps": round(sps, 1),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    merge_record(out, rec)
    print(f"[minatar_delay] done {env} {arch} seed {seed}: final_return {final:.3f} "
          f"({episodes} episodes in steps > {0.9 * last:.0f}), {sps:.0f} steps/s, "
          f"{wall / 60:.1f} min{' (resumed)' if resume else ''}", flush=True)
    return rec


# ------------------------------------------------------------------ report


def _mean(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else math.nan


def curve_table(recs: list[dict], archs: list[str], label: dict[str, str]) -> list[str]:
    """Each arch's return over instant's, per fifth of training: does the gap close or widen?"""
    curves: dict[tuple[str, str], list[list[float]]] = {}
    for r in recs:
        if r.get("return_by_fifth"):
            curves.setdefault((r["env"], column(r)), []).append(r["return_by_fifth"])
    seed_mean = {k: np.nanmean(np.array(v, dtype=float), axis=0) for k, v in curves.items()}
    rows = []
    for a in archs:
        if a == "instant":
            continue
        games = [e for e in ENVS if (e, a) in seed_mean and (e, "instant") in seed_mean]
        if not games:
            continue
        ratios = np.array([seed_mean[(e, a)] / seed_mean[(e, "instant")] for e in games])
        cells = [f"{v:.2f}" for v in np.nanmean(ratios, axis=0)]
        rows.append(f"| {label[a]} | " + " | ".join(cells) + f" | {len(games)} |")
    if not rows:
        return []
    return [
        "### Over training: return / instant's, by fifth of the run",
        "",
        ("Per game, the mean return (over seeds) of the episodes ending in each fifth of the "
         "run's steps, divided by instant's in the same fifth, then averaged over games. A "
         "ratio that falls from left to right means instant is pulling away."),
        "",
        "| arch | 1st | 2nd | 3rd | 4th | 5th | games |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def backfill_curves(out: Path, runs_root: Path) -> int:
    """Add ``return_by_fifth`` to records written before it existed, from their run folders."""
    added = 0
    for r in load_records(out):
        if r.get("return_by_fifth") or r["arch"] not in ALL_ARCHS:
            continue
        rdir = run_dir_for(runs_root, r["env"], r["arch"], r["seed"], r["steps"],
                           setting(r, "precision"), setting(r, "obs_delay"))
        if (rdir / "metrics.csv").exists():
            merge_record(out, {**r, "return_by_fifth": returns_by_fifth(rdir)})
            added += 1
    return added


def write_report(out: Path, md: Path, steps: int, command: str) -> None:
    from lagless.runs import atomic_write_text

    recs = [r for r in load_records(out)
            if r["layers"] == LAYERS and r["tau"] == TAU and r["steps"] == steps
            and r["arch"] in ALL_ARCHS and r["last_actions"] == last_actions_for(r["arch"], setting(r, "obs_delay"))]
    cell: dict[tuple[str, str], list[float]] = {}
    for r in recs:
        cell.setdefault((r["env"], column(r)), []).append(r["final_return"])
    means = {k: _mean(v) for k, v in cell.items()}
    sps = {}
    for r in recs:
        sps.setdefault(column(r), []).append(r["sps"])
    archs = list(ARCHS) + sorted({column(r) for r in recs} - set(ARCHS))
    label = {"instant": "instant", "chain": "chain", "skip": f"skip +{ARCHS['skip']} actions", "lstm": "lstm"}
    label.update({a: f"{a} +{n} actions" for a, n in EXTRA_ARCHS.items()})
    label.update({a: a for a in archs if a not in label})

    lines = [
        "# MinAtar: real-time delay benchmark",
        "",
        (f"PPO (lagless defaults: 16 envs x 128 rollout steps), {LAYERS} layers, tau {TAU}, "
         f"{steps:,} agent steps per run; `skip` (and `obs_to_all`, `res_skip` where run) gets the last "
         f"{ARCHS['skip']} executed actions (last_actions, read undelayed by its dense layers and "
         "head: fresh_actions), the others get none. Columns named `ARCH bf16` train with `--precision bf16` (bfloat16 "
         "matmuls and convolutions); all others, and the goal, use float32. Columns named "
         "`ARCH obs+D` see every observation D steps late (the environment delays it) and get "
         "the last 4 actions: `instant obs+1` roughly bounds a pipelined network, whose "
         "freshest input is one step old."),
        "",
        ("`final_return`: mean return of the training episodes that ended in the last 10% of "
         "the run's agent steps (from `RUN/metrics.csv`: per-update `charts/episodic_return` "
         "weighted by `charts/episodes`). Cells: mean over seeds ± their standard deviation "
         "(n = seeds); `-` = not run yet."),
        "",
        "| game | " + " | ".join(label[a] for a in archs) + " |",
        "|---|" + "---:|" * len(archs),
    ]
    for env in ENVS:
        row = [env.split("/")[1]]
        for a in archs:
            v = cell.get((env, a))
            sd = f" ± {float(np.std(v, ddof=1)):.2f}" if v and len(v) > 1 else ""
            row.append(f"{means[(env, a)]:.2f}{sd} (n={len(v)})" if v else "-")
        lines.append("| " + " | ".join(row) + " |")

    # normalised by instant per game
    norm: dict[str, dict[str, float]] = {a: {} for a in archs}
    for env in ENVS:
        base = means.get((env, "instant"))
        if base is None or math.isnan(base) or base == 0:
            continue
        for a in archs:
            if (env, a) in means and not math.isnan(means[(env, a)]):
                norm[a][env] = means[(env, a)] / base
    row = ["**mean / instant**"]
    for a in archs:
        n = len(norm[a])
        row.append(f"{_mean(norm[a].values()):.3f} ({n} game{'s' * (n != 1)})" if n else "-")
    lines.append("| " + " | ".join(row) + " |")
    row = ["steps/s (mean)"]
    for a in archs:
        row.append(f"{_mean(sps[a]):,.0f}" if a in sps else "-")
    lines.append("| " + " | ".join(row) + " |")
    lines += ["", ("Mean / instant: per game, the arch's mean return divided by instant's, "
                   "then averaged over the games where both are done."), ""]

    # the goal
    need = ("instant", "chain", "skip")
    complete = [e for e in ENVS if all((e, a) in means for a in need)]
    missing = [f"{e.split('/')[1]}/{a}" for e in ENVS for a in need if (e, a) not in means]
    goal = ("**Goal** (skip with augmentation reaches at least 90% of instant's mean return "
            "and beats chain on average over the games): ")
    if not complete:
        goal += "not checkable yet: no game has instant, chain and skip all done."
    else:
        ok_games = [e for e in complete
                    if means[(e, "instant")] != 0 and not math.isnan(means[(e, "instant")])]
        s = _mean([means[(e, "skip")] / means[(e, "instant")] for e in ok_games])
        c = _mean([means[(e, "chain")] / means[(e, "instant")] for e in ok_games])
        raw_s = _mean([means[(e, "skip")] for e in complete])
        raw_c = _mean([means[(e, "chain")] for e in complete])
        met = s >= 0.9 and s > c
        goal += (f"**{'MET' if met else 'NOT MET'}** on {len(complete)} of {len(ENVS)} games "
                 f"({', '.join(e.split('/')[1] for e in complete)}): skip / instant = {s:.3f} "
                 f"({'>=' if s >= 0.9 else '<'} 0.9), chain / instant = {c:.3f} "
                 f"(skip {'beats' if s > c else 'does not beat'} chain; raw means skip "
                 f"{raw_s:.2f} vs chain {raw_c:.2f}).")
        if missing:
            goal += " Provisional: missing " + ", ".join(missing) + "."
    lines += [goal, ""] + curve_table(recs, archs, label)
    todo = [f"{e.split('/')[1]}/{a}" for e in ENVS for a in archs if (e, a) not in means]
    lines += [f"Cells not run yet: {', '.join(todo) if todo else 'none'}.", ""]

    dates = sorted(r["date"] for r in recs)
    machines = sorted({r["machine"] for r in recs})
    lines += [
        "## Reproduce",
        "",
        "Complete the table (one training at a time, 1 torch thread; interrupted runs resume):",
        "",
        "```",
        f"{FULL_COMMAND}" + ("" if steps == 500_000 else f" --steps {steps}"),
        "```",
        "",
        "Last command that updated this file (run or report):",
        "",
        "```",
        command,
        "```",
        "",
        (f"Machine: {'; '.join(machines) if machines else machine()} "
         f"(this report written on: {machine()})."),
        f"Runs dated {dates[0]} .. {dates[-1]}." if dates else "No runs yet.",
        f"Report generated {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}.",
        "",
    ]
    atomic_write_text(md, "\n".join(lines))


# ------------------------------------------------------------------ main


def previous_command(md: Path) -> str | None:
    """The training command recorded in an existing report (kept by --report-only)."""
    if not md.exists():
        return None
    lines = md.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Last command that updated") and i + 3 < len(lines):
            return lines[i + 3]
    return None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", nargs="+", default=["all"],
                   help="games: all, or names like Breakout / MinAtar/Breakout-v1")
    p.add_argument("--arch", nargs="+", default=["all"], help=f"all ({', '.join(ARCHS)}) or names from {', '.join(ALL_ARCHS)}")
    p.add_argument("--seeds", nargs="+", type=int, default=[1])
    p.add_argument("--steps", type=int, default=500_000, help="agent steps per run")
    p.add_argument("--skip-done", action="store_true",
                   help="skip runs whose record is already in the results file")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="lagless's --precision for these runs (bf16 fills extra columns)")
    p.add_argument("--obs-delay", type=int, default=0,
                   help="the environment shows each observation this many steps late (fills extra "
                        "columns, e.g. instant obs+1)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    p.add_argument("--md", type=Path, default=None,
                   help="report (default: the results JSON with .md)")
    p.add_argument("--runs-root", type=Path, default=DEFAULT_RUNS_ROOT)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report-only", action="store_true", help="only regenerate the report")
    p.add_argument("--backfill-curves", action="store_true",
                   help="add the learning curve (return by fifth of training) to records that "
                        "lack it, from their folders under --runs-root, then regenerate the report")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="start no new run after this many minutes (the current one finishes)")
    p.add_argument("--stop-file", type=Path, default=None,
                   help="start no new run once this file exists")
    args = p.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    envs, archs = resolve_envs(args.env), resolve_archs(args.arch)
    md = args.md or args.out.with_suffix(".md")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/minatar_delay.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    if args.backfill_curves:
        print(f"[minatar_delay] learning curves added to {backfill_curves(args.out, args.runs_root)} records")
    if args.report_only or args.backfill_curves:
        command = previous_command(md) or command
    write_report(args.out, md, args.steps, command.strip())
    if args.report_only or args.backfill_curves:
        print(md.read_text())
        return

    t_start = time.monotonic()
    for env in envs:
        for arch in archs:
            for seed in args.seeds:
                if time_to_stop(args, t_start, "minatar_delay"):
                    return
                key = (env, arch, LAYERS, TAU, last_actions_for(arch, args.obs_delay), seed, args.steps,
                       args.precision, args.obs_delay)
                if args.skip_done and any(record_key(r) == key for r in load_records(args.out)):
                    print(f"[minatar_delay] skip (done) {env} {arch} seed {seed}", flush=True)
                    continue
                run_one(env, arch, seed, args.steps, args.runs_root, args.out,
                        not args.no_progress, args.precision, args.obs_delay)
                write_report(args.out, md, args.steps, command.strip())
    print(f"[minatar_delay] results: {args.out}, report: {md}", flush=True)


if __name__ == "__main__":
    main()
