"""ALD on memory tasks: does the LSTM, distilled from a transformer, learn as fast as the transformer?

For each task: the transformer alone (``--method learner``), the LSTM alone (``actor``), the
asymmetric actor-critic (``asymmetric``) and ALD at each ``--ratios`` value (default 2 and 8) of
``--distill-steps-per-rl-step`` (``ald``; ``ald-bg``: the same with ``--distill-in-background``,
whose second thread takes a second core), ``--seeds`` each, all with ``lagless train --algo ald``'s
defaults otherwise (plus ``--learner-layers/--learner-hidden/--hidden`` here). A run records
its learning curve (training return against environment steps and against wall-clock
seconds, from ``metrics.csv``), and its final success: the share of ``--eval-episodes``
greedy episodes with return > 0.5 (the T-maze's reward is 1 for the right turn), and their mean
return (for tasks whose return is not a success, e.g. POPGym's, normalised to [-1, 1]).

``steps_to_threshold`` / ``seconds_to_threshold``: the first point at which a run's mean
training return over its last ``--window`` rows reaches 90% of the transformer's final
success on that task (mean over its seeds). On tasks scored by return rather than success
(POPGym's: normalised to [-1, 1], where a greedy success share says little) the threshold is
90% of the transformer's final training return instead (its last ``--window`` rows, mean over
seeds), so that both sides of the comparison are training returns. Goal (Parisotto & Salakhutdinov): ALD reaches the
threshold within 1.25x the transformer's steps and in at most 0.6x its wall-clock time, well
ahead of the LSTM alone in steps. First show that the task separates the transformer from
the LSTM (the LSTM alone must fall clearly short).

    python benchmarks/ald_memory.py --env lagless/TMaze-L10-v0 --seeds 1 2 3 --steps 200000
    python benchmarks/ald_memory.py --report-only
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from records import load_records, machine, merge_record

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "ald_memory.json"
KEY_FIELDS = ("env", "method", "ratio", "seed", "steps")
BASELINES = ("learner", "actor", "asymmetric")


def curve(run_dir: Path) -> tuple[list[int], list[float], list[float]]:
    """(steps, seconds, training return) per metrics row; seconds from the logged steps/s."""
    from lagless.runs import read_metrics

    m = read_metrics(run_dir / "metrics.csv")
    steps = m["step"]
    seconds = steps / np.maximum(m["charts/sps"], 1e-9)
    ret = m["charts/recent_return"]
    return [int(s) for s in steps], [round(float(s), 2) for s in seconds], [float(r) for r in ret]


def run_one(env: str, method: str, ratio: int, seed: int, args, out: Path) -> dict:
    import torch

    from lagless.ald.config import ALDConfig
    from lagless.realtime.evaluate import run_episodes
    from lagless.trainers import load_policy, train

    torch.set_num_threads(args.threads)
    rdir = args.runs_root / f"{env.replace('/', '-')}-{method}-r{ratio}-s{seed}-n{args.steps}"
    resume = (rdir / "config.json").exists()
    background = method == "ald-bg"  # ALD with --distill-in-background (a second thread distils)
    config = ALDConfig(env=env, method="ald" if background else method, distill_in_background=background,
                       distill_steps_per_rl_step=ratio, seed=seed,
                       total_steps=args.steps, hidden=args.hidden, learner_hidden=args.learner_hidden,
                       learner_layers=args.learner_layers, run_dir=str(rdir), threads=args.threads,
                       progress=False, tensorboard=False)
    t0 = time.perf_counter()
    train("ald", config, resume=resume)
    returns, _ = run_episodes(load_policy(rdir), args.eval_episodes, seed=10_000 + seed, greedy=True)
    steps, seconds, ret = curve(rdir)
    rec = {"env": env, "method": method, "ratio": ratio if method.startswith("ald") else 0, "seed": seed,
           "steps": args.steps, "final_success": float(np.mean(np.asarray(returns) > 0.5)),
           "final_return": float(np.mean(returns)),
           "curve": {"steps": steps, "seconds": seconds, "return": ret},
           "wall_minutes": round((time.perf_counter() - t0) / 60, 1), "resumed": resume, "threads": args.threads,
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
           "command": args.command}
    merge_record(out, rec, KEY_FIELDS, lambda r: (r["env"], r["method"], r["ratio"], r["seed"], r["steps"]))
    print(f"[ald_memory] {env} {method} r{rec['ratio']} seed {seed}: success {rec['final_success']:.2f}, "
          f"{rec['wall_minutes']} min", flush=True)
    return rec


def first_reach(rec: dict, threshold: float, window: int) -> tuple[float, float]:
    """(steps, seconds) at which the windowed training return first reaches ``threshold``."""
    c = rec["curve"]
    ret = np.asarray(c["return"], dtype=float)
    for i in range(len(ret)):
        seg = ret[max(0, i - window + 1):i + 1]
        if np.isfinite(seg).any() and np.nanmean(seg) >= threshold:
            return float(c["steps"][i]), float(c["seconds"][i])
    return math.nan, math.nan


def scored_by_return(env: str) -> bool:
    """POPGym's tasks pay a normalised return per step, not a success at the end."""
    return env.startswith("popgym-")


def threshold_for(env: str, recs: list[dict], window: int) -> float:
    """90% of the transformer's final success (or final training return, see the module doc)."""
    learner = [r for r in recs if r["env"] == env and r["method"] == "learner"]
    if not learner:
        return math.nan
    if scored_by_return(env):
        return 0.9 * float(np.mean([np.nanmean(r["curve"]["return"][-window:]) for r in learner]))
    return 0.9 * float(np.mean([r["final_success"] for r in learner]))


def commands_of(recs: list[dict], fallback: str) -> list[str]:
    """The commands that made the records, oldest first; ``fallback`` for records older than that field."""
    out: list[str] = []
    for r in sorted(recs, key=lambda r: r.get("date", "")):
        c = r.get("command") or fallback
        if c not in out:
            out.append(c)
    return out or [fallback]


def write_report(out: Path, legacy_command: str, window: int) -> None:
    recs = load_records(out)
    commands = commands_of(recs, legacy_command)
    head = ([f"Command: `{commands[0]}`"] if len(commands) == 1
            else ["Commands (one sitting each, oldest first):", "", *(f"- `{c}`" for c in commands)])
    lines = ["# ALD on memory tasks", "", *head, "",
             "| task | method | ratio | seeds | final success | final return | steps to threshold | seconds to threshold |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for env in sorted({r["env"] for r in recs}):
        mine = [r for r in recs if r["env"] == env]
        threshold = threshold_for(env, mine, window)
        groups = sorted({(r["method"], r["ratio"]) for r in mine})
        for method, ratio in groups:
            g = [r for r in mine if (r["method"], r["ratio"]) == (method, ratio)]
            reach = [first_reach(r, threshold, window) for r in g]
            steps = np.nanmean([s for s, _ in reach]) if any(np.isfinite(s) for s, _ in reach) else math.nan
            secs = np.nanmean([t for _, t in reach]) if any(np.isfinite(t) for _, t in reach) else math.nan
            lines.append(f"| {env} | {method} | {ratio} | {len(g)} | "
                         f"{np.mean([r['final_success'] for r in g]):.2f} | "
                         f"{np.mean([r.get('final_return', math.nan) for r in g]):.2f} | {steps:,.0f} | {secs:,.0f} |")
        lines.append("")
    lines += [(f"Threshold: 90% of the transformer's (method `learner`) final success (POPGym: of its final "
              f"training return, mean of its last {window} metric rows); reached when the training return over the "
              f"last {window} metric rows is at or above it (nan: never reached)."), ""]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    plot(recs, out.with_suffix(".png"))


def plot(recs: list[dict], path: Path) -> None:
    """Training return against environment steps and against seconds, per task and method (seed mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({r["env"] for r in recs})
    if not envs:
        return
    fig, axes = plt.subplots(len(envs), 2, figsize=(11, 3.6 * len(envs)), squeeze=False)
    for row, env in zip(axes, envs):
        for method, ratio in sorted({(r["method"], r["ratio"]) for r in recs if r["env"] == env}):
            g = [r["curve"] for r in recs if (r["env"], r["method"], r["ratio"]) == (env, method, ratio)]
            n = min(len(c["steps"]) for c in g)
            label = f"{method}" + (f" (ratio {ratio})" if method.startswith("ald") else "")
            ret = np.nanmean([c["return"][:n] for c in g], axis=0)
            row[0].plot(g[0]["steps"][:n], ret, label=label)
            row[1].plot(np.mean([c["seconds"][:n] for c in g], axis=0), ret, label=label)
        row[0].set(title=f"{env}: by environment steps", xlabel="steps", ylabel="training return")
        row[1].set(title=f"{env}: by wall-clock", xlabel="seconds", ylabel="training return")
        row[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", nargs="+", default=["lagless/TMaze-L10-v0"])
    p.add_argument("--methods", nargs="+", default=[*BASELINES, "ald"])
    p.add_argument("--ratios", nargs="+", type=int, default=[2, 8], help="ALD's distillation ratios")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--steps", type=int, default=200_000)
    p.add_argument("--hidden", type=int, default=128, help="LSTM units")
    p.add_argument("--learner-hidden", type=int, default=128)
    p.add_argument("--learner-layers", type=int, default=3)
    p.add_argument("--eval-episodes", type=int, default=50)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (ald-bg adds its own thread)")
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--skip-done", action="store_true")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--runs-root", type=Path, default=Path("runs") / "bench" / "ald_memory")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    args.command = "python benchmarks/ald_memory.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    # records from before they carried their command are credited to the report's first one
    md = args.out.with_suffix(".md")
    kept = re.search(r"^(?:Command: |- )`(.*)`$", md.read_text(), re.MULTILINE) if md.exists() else None
    legacy_command = kept.group(1) if kept else args.command
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        done = {tuple(r[k] for k in KEY_FIELDS) for r in load_records(args.out)}
        for env in args.env:
            for method in args.methods:
                for ratio in (args.ratios if method.startswith("ald") else [0]):
                    for seed in args.seeds:
                        if args.skip_done and (env, method, ratio, seed, args.steps) in done:
                            continue
                        run_one(env, method, ratio or 1, seed, args, args.out)
    write_report(args.out, legacy_command, args.window)
    print(f"[ald_memory] report {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
