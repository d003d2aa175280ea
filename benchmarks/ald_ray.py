"""ALD's Ray backend: environment steps per second at 1, 2 and 4 Ray actors against the local backend,
and the same run with one actor killed midway (the step rate recovers, the score holds).

Each configuration trains ``lagless train --algo ald`` for ``--steps`` environment steps on one
task and records steps/s (environment steps over the training call's wall-clock, Ray's start
included and reported apart), the final greedy success of the LSTM, and the actor restarts.
With ``--kill-at S``, a second Ray run has one of its actors killed after S seconds (found by
the name the collector gives its actors).

    python benchmarks/ald_ray.py --actors 1 2 4 --steps 20000 --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import datetime as _dt
import shlex
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from records import load_records, machine, merge_record

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "ald_ray.json"
DEFAULT_RATIO = 1  # ALDConfig's default --distill-steps-per-rl-step (records without "ratio" used it)
KEY_FIELDS = ("env", "backend", "actors", "killed", "seed", "steps", "ratio")


def _kill_one_actor_after(seconds: float, done: threading.Event) -> None:
    import ray

    if done.wait(seconds):
        return
    names = sorted(n["name"] if isinstance(n, dict) else n for n in ray.util.list_named_actors(all_namespaces=True))
    names = [n for n in names if n.startswith("lagless-ald-")]
    if names:
        print(f"[ald_ray] killing {names[0]}", flush=True)
        ray.kill(ray.get_actor(names[0]))


def run_one(args, backend: str, actors: int, seed: int, killed: bool, out: Path) -> dict:
    import ray
    import torch

    from lagless.ald.config import ALDConfig
    from lagless.realtime.evaluate import run_episodes
    from lagless.runs import read_metrics
    from lagless.trainers import load_policy, train

    torch.set_num_threads(1)
    rdir = args.runs_root / f"{backend}-a{actors}-k{int(killed)}-s{seed}-r{args.ratio}"
    if rdir.exists():
        import shutil

        shutil.rmtree(rdir)  # a wall-clock measurement must not resume
    config = ALDConfig(env=args.env, backend=backend, num_actors=max(actors, 1), num_envs=args.num_envs, seed=seed,
                       total_steps=args.steps, run_dir=str(rdir), threads=1, progress=False, tensorboard=False,
                       distill_steps_per_rl_step=args.ratio)
    ray_start = 0.0
    if backend == "ray":
        t = time.perf_counter()
        ray.init(num_cpus=max(2, actors), include_dashboard=False, object_store_memory=200_000_000,
                 log_to_driver=False)
        ray_start = time.perf_counter() - t
    done = threading.Event()
    killer = threading.Thread(target=_kill_one_actor_after, args=(args.kill_at, done)) if killed else None
    if killer:
        killer.start()
    t0 = time.perf_counter()
    try:
        train("ald", config)
    finally:
        done.set()
        if killer:
            killer.join()
        if backend == "ray":
            ray.shutdown()
    wall = time.perf_counter() - t0
    returns, _ = run_episodes(load_policy(rdir), args.eval_episodes, seed=10_000 + seed, greedy=True)
    m = read_metrics(rdir / "metrics.csv")
    restarts = float(np.nanmax(m["charts/actor_restarts"])) if "charts/actor_restarts" in m else 0.0
    rec = {"env": args.env, "backend": backend, "actors": actors if backend == "ray" else 0, "killed": killed,
           "seed": seed, "steps": args.steps, "ratio": args.ratio, "num_envs": args.num_envs, "steps_per_s": round(args.steps / wall, 1),
           "ray_start_s": round(ray_start, 1), "final_success": float(np.mean(np.asarray(returns) > 0.5)),
           "actor_restarts": restarts, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine()}
    merge_record(out, rec, KEY_FIELDS, lambda r: tuple(_key(r)) + (r["seed"],))
    print(f"[ald_ray] {backend} actors {rec['actors']} killed {killed} seed {seed}: {rec['steps_per_s']} steps/s, "
          f"success {rec['final_success']:.2f}, restarts {restarts:.0f}", flush=True)
    return rec


def _key(r: dict) -> tuple:
    """A report row: everything but the seed (records before ``ratio`` existed used the default)."""
    return (r["env"], r["steps"], r.get("ratio", DEFAULT_RATIO), r["backend"], r["actors"], r["killed"])


def write_report(out: Path, command: str) -> None:
    recs = load_records(out)
    lines = ["# ALD: Ray backend against local", "", f"Command: `{command}`", "",
             "| task | steps | ratio | backend | actors | actor killed | seeds | steps/s | final success | restarts |",
             "|---|---:|---:|---|---:|---|---:|---:|---:|---:|"]
    for key in sorted({_key(r) for r in recs}):
        g = [r for r in recs if _key(r) == key]
        lines.append(f"| {key[0]} | {key[1]:,} | {key[2]} | {key[3]} | {key[4]} | {'yes' if key[5] else 'no'} | {len(g)} | "
                     f"{np.mean([r['steps_per_s'] for r in g]):,.0f} | {np.mean([r['final_success'] for r in g]):.2f} | "
                     f"{np.mean([r['actor_restarts'] for r in g]):.1f} |")
    machines = sorted({r["machine"] for r in recs})
    lines += ["", (f"Machines: {'; '.join(machines) or 'none yet'}. Ray starts its workers at nice 15: on busy cores "
              "they start slowly, so measure on an otherwise idle machine.")]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="lagless/TMaze-L10-v0")
    p.add_argument("--actors", nargs="+", type=int, default=[1, 2, 4])
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--seeds", nargs="+", type=int, default=[1])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--ratio", type=int, default=DEFAULT_RATIO,
                   help="--distill-steps-per-rl-step (8 lets the LSTM follow on the T-maze; see ald_memory)")
    p.add_argument("--kill-at", type=float, default=30.0, help="seconds into the killed run")
    p.add_argument("--no-kill", action="store_true", help="skip the run with a killed actor")
    p.add_argument("--eval-episodes", type=int, default=50)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--runs-root", type=Path, default=Path("runs") / "bench" / "ald_ray")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    command = "python benchmarks/ald_ray.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        for seed in args.seeds:
            run_one(args, "local", 0, seed, False, args.out)
            for k in args.actors:
                run_one(args, "ray", k, seed, False, args.out)
            if not args.no_kill:
                run_one(args, "ray", max(args.actors), seed, True, args.out)
    write_report(args.out, command)
    print(f"[ald_ray] report {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
