"""Behaviour discovery at scale: accuracy on planted behaviours, time and peak memory.

For each synthetic size, ``planted_behaviours`` makes episodes with known behaviours and
``discover`` is scored by the adjusted Rand index of its labels against them. For each
``--data`` dataset (an .npz, Minari folder or id), only time and peak memory are measured.
Every measurement runs in a fresh child process, so one run's peak memory does not hide
another's; peak memory is the child's largest resident set size (psutil sampling every
50 ms, and getrusage's maximum), dataset included. Time is the wall clock of ``discover``
(training, coding every step, clustering, writing OUT), not of making or loading the data.
Results are merged into ``benchmarks/results/explain_scale.json`` (one record per name),
with the exact command, machine, date and lagless version.

    python benchmarks/explain_scale.py                          # 10k, 100k, 1M planted steps
    python benchmarks/explain_scale.py --sizes 10000 100000 --updates 1000
    python benchmarks/explain_scale.py --sizes --data runs/breakout.npz
    python benchmarks/explain_scale.py --kind periodic --sizes 12000   # another generator kind
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RESULTS = Path("benchmarks/results/explain_scale.json")


def _parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000],
                   help="planted-behaviour dataset sizes in steps (none: skip)")
    p.add_argument("--data", action="append", default=[], metavar="PATH",
                   help="a recorded dataset to time (repeatable): .npz, Minari folder or id")
    p.add_argument("--behaviours", type=int, default=4, help="planted behaviours")
    p.add_argument("--kind", default=None,
                   help="a lagless.explain.synthetic.GENERATORS kind, in episodes of --episode-steps "
                        "steps (default: planted_behaviours, episodes of 100-300 steps)")
    p.add_argument("--episode-steps", type=int, default=300, help="steps per episode with --kind")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads of discovery (its --threads)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of discovery")
    p.add_argument("--updates", type=int, default=None, help="training updates (default: the config's, which grow with the data)")
    p.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    p.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)  # internal: one measurement
    return p.parse_args(argv)


# --------------------------------------------------------------------------- one measurement
class PeakRSS:
    """Largest resident set size of this process, sampled in a thread (bytes)."""

    def __init__(self, every: float = 0.05) -> None:
        import psutil

        self._proc, self._every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self._every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def measure(spec: str, args: argparse.Namespace) -> dict:
    """Run discovery once: ``synthetic:N`` (scored by ARI) or ``data:PATH`` (timed only)."""
    from sklearn.metrics import adjusted_rand_score

    from lagless.explain.discover import discover
    from lagless.explain.discover_config import DiscoverConfig

    kind, _, what = spec.partition(":")
    config = DiscoverConfig(seed=args.seed, progress=False, threads=args.threads)
    if args.updates is not None:
        config.updates = args.updates
    truth = None
    with PeakRSS() as rss:
        made = time.perf_counter()
        if kind == "synthetic" and args.kind is not None:
            from lagless.explain.synthetic import make_synthetic

            episodes = max(1, int(what) // args.episode_steps)
            data, truth = make_synthetic(args.kind, episodes, args.episode_steps, args.seed)
            source = f"make_synthetic({args.kind!r}, {episodes}, {args.episode_steps}, seed={args.seed})"
        elif kind == "synthetic":
            from lagless.explain.synthetic import planted_behaviours

            data, truth = planted_behaviours(int(what), num_behaviours=args.behaviours, seed=args.seed)
            source = f"planted_behaviours({what}, num_behaviours={args.behaviours}, seed={args.seed})"
        else:
            from lagless.explain.datasets import load_dataset

            data, source = load_dataset(what), what
        made = time.perf_counter() - made
        with tempfile.TemporaryDirectory() as out:
            began = time.perf_counter()
            summary = discover(data, out, config, source=source)
            seconds = time.perf_counter() - began
            labels = None
            if truth is not None:
                import numpy as np

                labels = np.load(Path(out) / "labels.npy")
            attribution = time_attribution(out, data, what) if kind == "data" else None
    name = f"{kind}-{args.kind}:{what}" if kind == "synthetic" and args.kind else f"{kind}:{what}"
    record = {
        "name": name, "kind": kind, "steps": data.num_steps,
        "episodes": summary["num_episodes"], "discover_s": round(seconds, 2),
        "steps_per_s": round(data.num_steps / seconds, 1), "data_s": round(made, 2),
        "peak_rss_mib": round(max(rss.peak, _ru_maxrss()) / 2**20, 1),
        "num_behaviours": summary["num_behaviours"], "codes_in_use": summary["codes_in_use"],
        "perplexity": round(summary["perplexity"], 2),
        "reconstruction_mse": summary["reconstruction_mse"],
        "updates": summary["updates"], "threads": config.threads,
    }
    if labels is not None:
        from lagless.explain.segments import find_segments

        planted = len(find_segments(truth, data.episode_ids()))
        record["ari"] = round(float(adjusted_rand_score(truth, labels)), 4)
        record["planted_behaviours"] = int(truth.max()) + 1
        record["planted_segments"] = planted
        record["num_segments"] = summary["num_segments"]
        record["segments_per_planted"] = round(summary["num_segments"] / planted, 2)
        # Where each planted behaviour went: its steps' found labels, largest shares first.
        record["found_of_planted"] = [
            [[int(f), round(float(c) / (truth == b).sum(), 3)]
             for f, c in sorted(enumerate(np.bincount(labels[truth == b])), key=lambda fc: -fc[1]) if c]
            for b in range(int(truth.max()) + 1)]
    if attribution is not None:
        record["attribution"] = attribution
    return record


def _ru_maxrss() -> int:
    """getrusage's peak RSS in bytes (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


# --------------------------------------------------------------------------- hook: attribution
def time_attribution(out_dir: str, data, source: str) -> dict | None:
    """Time `lagless explain attribute --recorded` on OUT (the agent's own recorded action
    probabilities, 256 query states, default updates), dataset reload included.

    Returns None for a dataset without recorded ``policy_probs``.
    """
    from lagless.explain.attribute import attribute
    from lagless.explain.datasets import load_extras

    if "policy_probs" not in load_extras(source):
        return None
    began = time.perf_counter()
    result = attribute(out_dir, recorded=True, progress=False)
    return {"attribute_s": round(time.perf_counter() - began, 2), "queries": len(result["queries"]),
            "policies_trained": 1 + 2 * int(result["num_behaviours"])}


# --------------------------------------------------------------------------- driver
def machine() -> dict:
    import torch

    from lagless import __version__

    model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "cores": cores, "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform(), "lagless_version": __version__}


def run_child(spec: str, argv: list[str]) -> dict:
    env = dict(os.environ)
    threads = str(_parse_args(argv).threads)
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, __file__, *argv, "--child", spec]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{spec} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def merge(path: Path, header: dict, records: list[dict]) -> dict:
    old = json.loads(path.read_text()) if path.exists() else {}
    by_name = {r["name"]: r for r in old.get("runs", [])}
    for r in records:
        by_name[r["name"]] = dict(r, command=header["command"], date=header["date"])
    result = {**header, "runs": sorted(by_name.values(), key=lambda r: (r["kind"], r["steps"]))}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args)))
        return
    specs = [f"synthetic:{n}" for n in args.sizes] + [f"data:{d}" for d in args.data]
    child_argv = [a for a in argv if a != "--child"]
    header = {"command": shlex.join(["python", "benchmarks/explain_scale.py", *argv]),
              "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
              "machine": machine()}
    records = []
    for spec in specs:
        print(f"{spec} ...", flush=True)
        record = run_child(spec, child_argv)
        print("  " + ", ".join(f"{k}={v}" for k, v in record.items() if k not in ("name", "kind")), flush=True)
        records.append(record)
    merge(args.out, header, records)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
