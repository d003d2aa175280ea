"""Learning quality against a peer: lagless vs Stable-Baselines3, same network, wrappers and budget.

A speed-up that learns less is not a speed-up (DESIGN.md, "Measure learning against a peer").
For each task and seed this trains lagless and SB3 with the same network, the same wrapped
environment (``lagless.envs.make_single_env``), the same settings and the same step budget,
one run after the other in one process with the same torch thread count, then evaluates each
final policy on the same fresh episodes (``lagless.realtime.evaluate.run_episodes``, seeds
10000 + seed, never used in training):

- PPO on the five MinAtar games, 500k agent steps: the networks, settings and SB3 model of
  ``benchmarks/throughput.py`` (imported from it, not copied);
- SAC on HalfCheetah-v5 and Hopper-v5, 100k agent steps: actor obs -> 256 -> 256 -> mean and
  log-std, twin critics 256x256, batch 256, lr 3e-4, buffer 1M, 5000 random steps first,
  gamma 0.99, tau 0.005, automatic entropy tuning (also from ``throughput.py``).

Each finished run is merged into ``benchmarks/results/peer_quality.json`` (under a lock, so
several sittings can share the file) and ``peer_quality.md`` is regenerated::

    python benchmarks/peer_quality.py --tasks all --seeds 1 2 3 --skip-done
    python benchmarks/peer_quality.py --tasks HalfCheetah Hopper --seeds 1 2 3 --steps 200000
    python benchmarks/peer_quality.py --smoke                 # a tiny end-to-end check, into /tmp
    python benchmarks/peer_quality.py --report-only

Per run the record holds the mean return of ``--episodes`` evaluation episodes of the final
policy (SAC: the mean action, as SB3's ``evaluate_policy`` and CleanRL do; PPO: sampled
actions, which MinAtar policies need to avoid getting stuck), the wall-clock time of the
training call, and the learning curve: training-episode returns in 20 bins of steps, each
with the in-training wall-clock time at which its last episode ended. A run interrupted
before its record is written is started afresh (its folder is deleted), because its
wall-clock curve would otherwise have a hole; ``--skip-done`` skips runs already recorded.
Sittings may run in parallel (disjoint ``--tasks``/``--seeds``, ``--threads 1``, at most one
per core), but wall-clock times are only comparable between runs under the same load.

The report judges two goals per task:

- quality: lagless's mean evaluation return (over seeds) at or above SB3's within seed noise;
  noise is the pooled standard error of the difference of the two means,
  ``SE = sqrt(sd_lagless^2 / n_lagless + sd_sb3^2 / n_sb3)`` with ``sd`` the standard deviation
  of the per-seed means; a task fails only if lagless is below SB3 by more than 2 SE;
- time: the median over lagless seeds of the time at which the curve first reaches SB3's
  final training return (the mean over SB3 seeds of the last 10% of steps' training returns;
  the curve's own units, as the greedy evaluation return is on another scale) is at most 0.6x
  SB3's mean wall-clock time. The opposite crossing (SB3 reaching lagless's final return) is
  shown next to it.

``--libs lagless-bf16`` adds lagless trained with ``--precision bf16`` as a library of its own
(its own runs and rows, judged against the same SB3 runs, which are always float32).
"""

from __future__ import annotations

import argparse
import os
import sys


def _parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["all"],
                   help="all, ppo (the MinAtar games), sac (the MuJoCo tasks), or names such as "
                        "Breakout, Asterix, HalfCheetah, Hopper")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default 1 2 3 (--smoke: 1)")
    p.add_argument("--libs", nargs="+", default=["lagless", "sb3"], choices=("lagless", "lagless-bf16", "sb3"),
                   help="which libraries to run (lagless and sb3 by default; lagless-bf16: lagless with "
                        "--precision bf16)")
    p.add_argument("--steps", type=int, default=None,
                   help="agent steps per run (default: 500000 for PPO, 100000 for SAC)")
    p.add_argument("--episodes", type=int, default=None,
                   help="evaluation episodes of each final policy (default 30; --smoke: 2)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for both libraries")
    p.add_argument("--skip-done", action="store_true", help="skip runs already in the results file")
    p.add_argument("--smoke", action="store_true",
                   help="a tiny budget (PPO 4096 steps, SAC 2000 with 1000 random first, 2 evaluation "
                        "episodes, seed 1) to check the script end to end; results go to /tmp unless "
                        "--out/--md/--runs-root say otherwise")
    p.add_argument("--out", default=None, help="results JSON (default benchmarks/results/peer_quality.json)")
    p.add_argument("--md", default=None, help="report (default: the results JSON with .md)")
    p.add_argument("--runs-root", default=None, help="run folders (default runs/bench/peer_quality)")
    p.add_argument("--report-only", action="store_true", help="only regenerate the report")
    args = p.parse_args(argv)
    if args.smoke:
        args.out = args.out or "/tmp/lagless_peer_quality_smoke/peer_quality.json"
        args.runs_root = args.runs_root or "/tmp/lagless_peer_quality_smoke/runs"
    args.seeds = args.seeds or ([1] if args.smoke else [1, 2, 3])
    args.episodes = args.episodes or (2 if args.smoke else 30)
    args.out = args.out or "benchmarks/results/peer_quality.json"
    args.runs_root = args.runs_root or "runs/bench/peer_quality"
    return args


ARGS = _parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # before torch is imported, so the OpenMP pool gets the same size
    os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
    os.environ["MKL_NUM_THREADS"] = str(ARGS.threads)

import datetime as _dt
import math
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput as tp  # the SB3 models and lagless configs, shared
from records import load_records
from records import merge_record as merge_locked

from lagless.realtime.evaluate import run_episodes
from lagless.trainers import load_policy, train

TASKS = {  # short name -> (algorithm, Gymnasium id)
    "Asterix": ("ppo", "MinAtar/Asterix-v1"),
    "Breakout": ("ppo", "MinAtar/Breakout-v1"),
    "Freeway": ("ppo", "MinAtar/Freeway-v1"),
    "Seaquest": ("ppo", "MinAtar/Seaquest-v1"),
    "SpaceInvaders": ("ppo", "MinAtar/SpaceInvaders-v1"),
    "HalfCheetah": ("sac", "HalfCheetah-v5"),
    "Hopper": ("sac", "Hopper-v5"),
}
DEFAULT_STEPS = {"ppo": 500_000, "sac": 100_000}
SMOKE_STEPS = {"ppo": 4096, "sac": 2000}
SMOKE_SAC_LEARNING_STARTS = 1000
GREEDY = {"ppo": False, "sac": True}  # how the final policy is evaluated, the same for both libraries
NETWORKS = {"ppo": tp.NETWORK, "sac": tp.SAC_NETWORK}
CURVE_BINS = 20
FINAL_FRACTION = 0.1  # the "final training return": episodes ending in the last 10% of steps
TIME_GOAL = 0.6
KEY_FIELDS = ("task", "lib", "seed", "steps", "smoke")
LAGLESS_LIBS = {"lagless": "fp32", "lagless-bf16": "bf16"}  # lib -> lagless's --precision
EVAL_SEED_OFFSET = 10_000
GIT_AT_START: dict = {}  # the lagless code imported at start is the code measured


# ------------------------------------------------------------------ configs and models


def lagless_config(algo: str, env: str, steps: int, seed: int, threads: int, run_dir: str, smoke: bool,
                   precision: str = "fp32"):
    if algo == "ppo":
        return tp.lagless_config(env, steps, threads, run_dir, seed=seed, precision=precision)
    starts = SMOKE_SAC_LEARNING_STARTS if smoke else tp.SAC_LEARNING_STARTS
    return tp.sac_lagless_config(env, steps, threads, run_dir, seed=seed, learning_starts=starts,
                                 precision=precision)


def sb3_model(algo: str, env: str, seed: int, threads: int, smoke: bool):
    if algo == "ppo":
        return tp.make_sb3_model(env, threads, seed=seed, monitor=True)
    starts = SMOKE_SAC_LEARNING_STARTS if smoke else tp.SAC_LEARNING_STARTS
    return tp.make_sb3_sac(env, threads, seed=seed, learning_starts=starts, monitor=True)


def check_same_size(algo: str, env: str, threads: int) -> None:
    """Refuse to compare networks of different sizes (a changed default on either side)."""
    if algo == "ppo":
        n_lagless = tp.lagless_param_count(env)
        probe = tp.make_sb3_model(env, threads)
        n_sb3 = sum(p.numel() for p in probe.policy.parameters())
        probe.get_env().close()
    else:
        n_lagless, n_sb3 = tp.sac_param_counts(env, threads)
    if n_lagless != n_sb3:
        sys.exit(f"error: {env}: lagless has {n_lagless:,} parameters, SB3 {n_sb3:,}; fix the SB3 "
                 "model in benchmarks/throughput.py before comparing")


class SB3Policy:
    """An SB3 model dressed as a lagless ``Policy`` for ``run_episodes``, so both libraries are
    evaluated by the same code on the same environments, seeds and episode quotas."""

    def __init__(self, model, config):
        self.model, self.config = model, config  # config: lagless's, only for make_envs

    def initial_state(self, batch_size: int):
        return None

    def act(self, obs, state, episode_start, greedy: bool = False):
        action, _ = self.model.predict(obs, deterministic=greedy)
        return SimpleNamespace(action=action), state


def _episode_logger():
    from stable_baselines3.common.callbacks import BaseCallback

    class EpisodeLog(BaseCallback):
        """(step, seconds since learn started, return) of every finished training episode."""

        def _on_training_start(self) -> None:
            self.t0, self.rows = time.perf_counter(), []

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:  # VecMonitor's summary of a finished episode
                    self.rows.append((self.num_timesteps, time.perf_counter() - self.t0,
                                      float(info["episode"]["r"]), 1))
            return True

    return EpisodeLog()


# ------------------------------------------------------------------ curves


def lagless_episode_rows(run_dir: Path) -> list[tuple]:
    """(step, seconds, mean return, episodes) per metrics row with finished episodes.

    The loop's ``charts/sps`` is steps since the loop started over seconds since then, so for
    a run that was never resumed ``step / sps`` is the in-training wall-clock time of the row.
    """
    from lagless.runs import read_metrics

    m = read_metrics(run_dir / "metrics.csv")
    rows = []
    for step, ret, n, sps in zip(m["step"], m["charts/episodic_return"], m["charts/episodes"], m["charts/sps"]):
        if n > 0 and not math.isnan(ret) and sps > 0:
            rows.append((int(step), float(step / sps), float(ret), int(n)))
    return rows


def curve_from_rows(rows: list[tuple], total_steps: int, bins: int = CURVE_BINS) -> list[list]:
    """``bins`` points [step at the bin's end, seconds at its last episode, mean return, episodes]."""
    points = []
    for k in range(bins):
        lo, hi = k * total_steps / bins, (k + 1) * total_steps / bins
        sel = [r for r in rows if lo < r[0] <= hi or (k == bins - 1 and r[0] > hi)]
        n = sum(r[3] for r in sel)
        mean = sum(r[2] * r[3] for r in sel) / n if n else math.nan
        seconds = max(r[1] for r in sel) if sel else math.nan
        points.append([int(hi), round(seconds, 2), round(mean, 4), n])
    return points


def final_train_return(rows: list[tuple], total_steps: int) -> float:
    sel = [r for r in rows if r[0] > (1 - FINAL_FRACTION) * total_steps]
    n = sum(r[3] for r in sel)
    return sum(r[2] * r[3] for r in sel) / n if n else math.nan


def by_fifth(curve: list[list]) -> list[float]:
    """Mean return per fifth of the run, from the curve's bins (weighted by episodes)."""
    per = len(curve) // 5
    out = []
    for k in range(5):
        pts = [p for p in curve[k * per:(k + 1) * per] if p[3]]
        n = sum(p[3] for p in pts)
        out.append(round(sum(p[2] * p[3] for p in pts) / n, 4) if n else math.nan)
    return out


def time_to_reach(curve: list[list], target: float) -> float:
    """Seconds at the end of the first curve bin whose mean return is >= target (inf: never)."""
    for _step, seconds, mean, n in curve:
        if n and not math.isnan(mean) and mean >= target:
            return seconds
    return math.inf


# ------------------------------------------------------------------ one run


def evaluate(policy, algo: str, seed: int, episodes: int) -> dict:
    returns, lengths = run_episodes(policy, episodes, seed=EVAL_SEED_OFFSET + seed, greedy=GREEDY[algo])
    r = np.asarray(returns)
    return {"mean": float(r.mean()), "std": float(r.std()), "episodes": len(returns),
            "mean_length": float(np.mean(lengths)), "greedy": GREEDY[algo],
            "seed": EVAL_SEED_OFFSET + seed, "returns": [round(x, 3) for x in returns]}


def run_lagless(algo, env, steps, seed, threads, run_dir: Path, smoke: bool, episodes: int,
                precision: str = "fp32") -> dict:
    config = lagless_config(algo, env, steps, seed, threads, str(run_dir), smoke, precision)
    t0 = time.perf_counter()
    result = train(algo, config)
    wall = time.perf_counter() - t0
    rows = lagless_episode_rows(run_dir)
    return {"steps_done": result.global_step, "wall_s": round(wall, 2), "sps": round(result.sps, 1),
            "rows": rows, "eval": evaluate(load_policy(run_dir), algo, seed, episodes)}


def run_sb3(algo, env, steps, seed, threads, run_dir: Path, smoke: bool, episodes: int) -> dict:
    model = sb3_model(algo, env, seed, threads, smoke)
    log = _episode_logger()
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=log)
    wall = time.perf_counter() - t0
    model.get_env().close()
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "sb3_model.zip")  # for a later look; the record does not need it
    config = lagless_config(algo, env, steps, seed, threads, "", smoke)
    done = int(model.num_timesteps)
    return {"steps_done": done, "wall_s": round(wall, 2), "sps": round(done / wall, 1),
            "rows": log.rows, "eval": evaluate(SB3Policy(model, config), algo, seed, episodes)}


def run_one(task: str, lib: str, seed: int, steps: int, args) -> dict:
    algo, env = TASKS[task]
    run_dir = Path(args.runs_root) / f"{task}-{lib}-s{seed}-n{steps}{'-smoke' if args.smoke else ''}"
    if run_dir.exists():  # an interrupted run: its wall-clock curve would have a hole, start afresh
        print(f"[peer_quality] removing unfinished run {run_dir}", flush=True)
        shutil.rmtree(run_dir)
    print(f"[peer_quality] {task} ({env}) {algo} {lib} seed {seed}, {steps:,} steps -> {run_dir}", flush=True)
    torch.set_num_threads(args.threads)
    if lib in LAGLESS_LIBS:
        res = run_lagless(algo, env, steps, seed, args.threads, run_dir, args.smoke, args.episodes, LAGLESS_LIBS[lib])
    else:
        res = run_sb3(algo, env, steps, seed, args.threads, run_dir, args.smoke, args.episodes)
    curve = curve_from_rows(res["rows"], res["steps_done"])
    rec = {
        "task": task, "env": env, "algo": algo, "lib": lib, "seed": seed, "steps": steps,
        "smoke": bool(args.smoke), "steps_done": res["steps_done"], "threads": args.threads,
        "network": NETWORKS[algo], "eval": res["eval"],
        "final_train_return": round(final_train_return(res["rows"], res["steps_done"]), 4),
        "return_by_fifth": by_fifth(curve), "curve": curve,
        "wall_s": res["wall_s"], "sps": res["sps"],
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": tp.machine_info(), "git": GIT_AT_START, "command": tp.command_line(),
    }
    merge_record(Path(args.out), rec)
    print(f"[peer_quality] done {task} {lib} seed {seed}: eval {rec['eval']['mean']:.2f} over "
          f"{rec['eval']['episodes']} episodes, final training return {rec['final_train_return']:.2f}, "
          f"{rec['wall_s'] / 60:.1f} min", flush=True)
    return rec


# ------------------------------------------------------------------ results


def record_key(rec: dict) -> tuple:
    return tuple(rec[k] for k in KEY_FIELDS)


def merge_record(path: Path, rec: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    order = list(TASKS)
    merge_locked(path, rec, KEY_FIELDS, lambda r: (order.index(r["task"]) if r["task"] in order else 99,
                                                  r["steps"], r["lib"], r["seed"]))


def _stats(xs: list[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation (0 for one value), n)."""
    a = np.asarray(xs, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0, len(a)


def _nanmean(rows) -> np.ndarray:
    """Column means ignoring NaN (a bin or fifth without finished episodes), NaN if all are."""
    a = np.asarray(rows, dtype=float)
    n = (~np.isnan(a)).sum(axis=0)
    total = np.where(np.isnan(a), 0.0, a).sum(axis=0)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _fmt_s(seconds: float) -> str:
    if math.isinf(seconds):
        return "never"
    if math.isnan(seconds):
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def compare(recs: list[dict], variant: str = "lagless") -> dict | None:
    """The goal checks of one (task, steps) cell for one lagless variant (``lagless`` or
    ``lagless-bf16``, called "lagless" in the result), or None until both sides have runs."""
    lib = {name: [r for r in recs if r["lib"] == source] for name, source in (("lagless", variant), ("sb3", "sb3"))}
    if not lib["lagless"] or not lib["sb3"]:
        return None
    ev = {k: _stats([r["eval"]["mean"] for r in v]) for k, v in lib.items()}
    diff = ev["lagless"][0] - ev["sb3"][0]
    se = math.sqrt(ev["lagless"][1] ** 2 / ev["lagless"][2] + ev["sb3"][1] ** 2 / ev["sb3"][2])
    if diff >= 0:
        quality = "at or above"
    elif min(ev["lagless"][2], ev["sb3"][2]) < 2:
        quality = "BELOW (one seed: no noise estimate)"
    elif diff >= -2 * se:
        quality = "below, within noise"
    else:
        quality = "BELOW"
    final = {k: float(_nanmean([r["final_train_return"] for r in v])) for k, v in lib.items()}
    wall = {k: float(np.mean([r["wall_s"] for r in v])) for k, v in lib.items()}
    lag_reach = float(np.median([time_to_reach(r["curve"], final["sb3"]) for r in lib["lagless"]]))
    sb3_reach = float(np.median([time_to_reach(r["curve"], final["lagless"]) for r in lib["sb3"]]))
    time_ratio = lag_reach / wall["sb3"]
    return {"ev": ev, "diff": diff, "se": se, "quality": quality, "quality_ok": not quality.startswith("BELOW"),
            "final": final, "wall": wall, "lag_reach": lag_reach, "sb3_reach": sb3_reach,
            "time_ratio": time_ratio, "time_ok": time_ratio <= TIME_GOAL}


def write_report(out: Path, md: Path) -> None:
    from lagless.runs import atomic_write_text

    records = load_records(out)
    cells: dict[tuple, list[dict]] = {}
    for r in records:
        cells.setdefault((r["task"], r["steps"], r["smoke"]), []).append(r)
    order = list(TASKS)
    cell_keys = sorted(cells, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1], k[2]))
    # one row per cell and lagless variant present (plain lagless when neither is there yet)
    keys = [(*k, v) for k in cell_keys
            for v in ([v for v in LAGLESS_LIBS if any(r["lib"] == v for r in cells[k])] or ["lagless"])]
    results = {k: compare(cells[k[:3]], k[3]) for k in keys}

    lines = [
        "# Learning against a peer: lagless vs Stable-Baselines3",
        "",
        ("Generated by `benchmarks/peer_quality.py`. Both libraries train the same network on the "
         "same wrapped environment (`lagless.envs.make_single_env`) with the same settings and step "
         "budget, one run after the other in one process with the same torch threads. PPO "
         f"(MinAtar): {tp.NETWORK}; 16 envs x 128 steps, 8 minibatches x 4 epochs, lr 5e-4 annealed. "
         f"SAC (MuJoCo): {tp.SAC_NETWORK}; batch 256, lr 3e-4, buffer 1M, 5000 random steps, gamma "
         "0.99, tau 0.005, automatic entropy. Settings shared with `benchmarks/throughput.py`."),
        "",
        ("**Evaluation**: mean return of each seed's final policy over fresh episodes (seeds "
         "10000 + seed; SAC acts with the mean action, PPO samples), the same code for both "
         "libraries. Cells: mean over seeds ± their standard deviation (n seeds). **Quality goal**: "
         "lagless's mean at or above SB3's within seed noise, i.e. not below by more than 2 SE, "
         "SE = sqrt(sd_l²/n_l + sd_s²/n_s) of the difference of the means."),
        "",
        "| task | steps | lagless eval | SB3 eval | lagless - SB3 | 2 SE | quality |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for k in keys:
        c = results[k]
        label = _label(k)
        if c is None:
            libs = sorted({r["lib"] for r in cells[k[:3]]})
            lines.append(f"| {label} | {k[1]:,} | only {', '.join(libs)} so far | | | | - |")
            continue
        cell = {lib: f"{m:.2f} ± {sd:.2f} (n={n})" for lib, (m, sd, n) in c["ev"].items()}
        lines.append(f"| {label} | {k[1]:,} | {cell['lagless']} | {cell['sb3']} | {c['diff']:+.2f} | "
                     f"{2 * c['se']:.2f} | {c['quality']} |")
    lines += [
        "",
        ("**Time goal**: lagless reaches SB3's final training return (mean over SB3 seeds of the "
         f"training episodes in the last {FINAL_FRACTION:.0%} of steps) in at most {TIME_GOAL}x "
         "SB3's wall-clock time. `lagless reaches SB3 final`: median over lagless seeds of the "
         "in-training time at the end of the first of 20 curve bins whose mean training return "
         "is at least that value (`never`: not within the budget); `SB3 reaches lagless final` "
         "the other way round. Wall clock: the training call (lagless `train`, SB3 "
         "`model.learn`), mean over seeds."),
        "",
        ("| task | steps | lagless final train | SB3 final train | lagless wall | SB3 wall | lagless "
         "reaches SB3 final | / SB3 wall | SB3 reaches lagless final | time goal |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for k in keys:
        c = results[k]
        if c is None:
            continue
        label = _label(k)
        ratio = "-" if math.isinf(c["time_ratio"]) else f"{c['time_ratio']:.2f}x"
        lines.append(f"| {label} | {k[1]:,} | {c['final']['lagless']:.2f} | {c['final']['sb3']:.2f} | "
                     f"{_fmt_s(c['wall']['lagless'])} | {_fmt_s(c['wall']['sb3'])} | "
                     f"{_fmt_s(c['lag_reach'])} | {ratio} | {_fmt_s(c['sb3_reach'])} | "
                     f"{'met' if c['time_ok'] else 'NOT MET'} |")
    for variant in LAGLESS_LIBS:
        done = [k for k in keys if results[k] is not None and not k[2] and k[3] == variant]
        if done:
            q = all(results[k]["quality_ok"] for k in done)
            t = all(results[k]["time_ok"] for k in done)
            missing = [t_ for t_ in TASKS if not any(k[0] == t_ for k in done)]
            lines += ["", (f"**Goal** ({variant}) on {len(done)} task budget(s): quality "
                           f"{'MET' if q else 'NOT MET'}, time {'MET' if t else 'NOT MET'}"
                           + (f"; not run yet: {', '.join(missing)}." if missing else "."))]
    lines += [
        "",
        "## Learning curves: mean training return by fifth of the run (mean over seeds)",
        "",
        "| task | steps | lib | 1st | 2nd | 3rd | 4th | 5th | seeds |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for k in cell_keys:
        for lib in (*LAGLESS_LIBS, "sb3"):
            rs = [r for r in cells[k] if r["lib"] == lib]
            if not rs:
                continue
            fifths = _nanmean([r["return_by_fifth"] for r in rs])
            label = k[0] + (" (smoke)" if k[2] else "")
            lines.append(f"| {label} | {k[1]:,} | {lib} | " + " | ".join(f"{x:.2f}" for x in fifths)
                         + f" | {len(rs)} |")
    lines += ["", "## Runs", "",
              "| task | steps | lib | seed | eval mean (episodes) | final train | wall | steps/s | date | machine | lagless code |",
              "|---|---:|---|---:|---:|---:|---:|---:|---|---|---|"]
    for k in cell_keys:
        for r in sorted(cells[k], key=lambda r: (r["lib"], r["seed"])):
            m, g = r["machine"], r["git"]
            code = g.get("commit", "?") + (" + local edits" if g.get("modified_src") else "")
            lines.append(f"| {r['task']} | {r['steps']:,} | {r['lib']} | {r['seed']} | "
                         f"{r['eval']['mean']:.2f} ({r['eval']['episodes']}) | {r['final_train_return']:.2f} | "
                         f"{_fmt_s(r['wall_s'])} | {r['sps']:,.0f} | {r['date']} | "
                         f"{m.get('nproc', '?')} CPUs, {m.get('cpu', '?')} | {code} |")
    commands = sorted({r["command"] for r in records})
    lines += ["", "Commands that produced these runs (from the repository root):", ""]
    lines += [f"- `{c}`" for c in commands]
    lines += ["", "Complete the table (one run at a time; runs already recorded are skipped):", "",
              "```", "python benchmarks/peer_quality.py --tasks all --seeds 1 2 3 --skip-done", "```", ""]
    md.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(md, "\n".join(lines))


def _label(key: tuple) -> str:
    """A report row's task: ``HalfCheetah``, ``HalfCheetah (lagless bf16)``, ``... (smoke)``."""
    task, _, smoke, variant = key
    return task + ("" if variant == "lagless" else f" ({variant.replace('-', ' ')})") + (" (smoke)" if smoke else "")


# ------------------------------------------------------------------ main


def resolve_tasks(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        if v == "all":
            names = list(TASKS)
        elif v in ("ppo", "sac"):
            names = [t for t, (algo, _) in TASKS.items() if algo == v]
        else:
            names = [t for t, (_, env) in TASKS.items() if v.lower() in (t.lower(), env.lower())]
            if not names:
                sys.exit(f"unknown task '{v}': choose from all, ppo, sac, {', '.join(TASKS)}")
        out += [n for n in names if n not in out]
    return out


def main(args: argparse.Namespace) -> int:
    global GIT_AT_START
    GIT_AT_START = tp.git_state()
    out = Path(args.out)
    md = Path(args.md) if args.md else out.with_suffix(".md")
    if args.report_only:
        write_report(out, md)
        print(md.read_text())
        return 0
    torch.set_num_threads(args.threads)
    for task in resolve_tasks(args.tasks):
        algo, env = TASKS[task]
        steps = args.steps or (SMOKE_STEPS if args.smoke else DEFAULT_STEPS)[algo]
        check_same_size(algo, env, args.threads)
        for seed in args.seeds:
            for lib in args.libs:
                key = (task, lib, seed, steps, bool(args.smoke))
                if args.skip_done and any(record_key(r) == key for r in load_records(out)):
                    print(f"[peer_quality] skip (done) {task} {lib} seed {seed}", flush=True)
                    continue
                run_one(task, lib, seed, steps, args)
                write_report(out, md)
    write_report(out, md)
    print(f"[peer_quality] results: {out}, report: {md}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
