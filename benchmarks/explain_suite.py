"""Behaviour discovery on every planted-behaviour generator, at default settings.

For each ``lagless.explain.synthetic.GENERATORS`` kind, size and seed, one run of
``benchmarks/explain_scale.py`` (a fresh child process: time and peak memory of ``discover``)
scores the labels against the planted ones: adjusted Rand index, behaviours found, and
segments per planted segment. Records are merged into ``benchmarks/results/explain_suite.json``
(key: kind, steps, seed; with command, machine and date) and summarised in
``explain_suite.md``; ``--skip-done`` resumes a killed sweep.

Goals (issue #17): ARI >= 0.85 on every generator, found = planted on at least 80% of runs,
segments per planted segment <= 1.5.

    python benchmarks/explain_suite.py                       # every kind, 10k and 100k, seeds 1-3
    python benchmarks/explain_suite.py --sizes 12000 --seeds 1 --skip-done
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from records import load_records, machine, merge_record

RESULTS = Path("benchmarks/results/explain_suite.json")
GOAL_ARI, GOAL_FOUND_SHARE, GOAL_SEGMENTS = 0.85, 0.8, 1.5


def _parse_args(argv=None) -> argparse.Namespace:
    from lagless.explain.synthetic import GENERATORS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kinds", nargs="+", default=list(GENERATORS), choices=list(GENERATORS))
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="steps per dataset")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--episode-steps", type=int, default=300, help="steps per episode")
    p.add_argument("--skip-done", action="store_true", help="keep runs already in the results file")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def run_one(kind: str, steps: int, seed: int, episode_steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scale.json"
        cmd = [sys.executable, str(Path(__file__).parent / "explain_scale.py"), "--kind", kind,
               "--sizes", str(steps), "--seed", str(seed), "--episode-steps", str(episode_steps),
               "--out", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{kind} {steps} seed {seed} failed:\n{done.stderr[-3000:]}")
        record = json.loads(out.read_text())["runs"][0]
    keep = ("steps", "episodes", "ari", "num_behaviours", "planted_behaviours", "num_segments",
            "planted_segments", "segments_per_planted", "discover_s", "peak_rss_mib", "updates",
            "threads", "found_of_planted")
    return {"kind": kind, "seed": seed, **{k: record[k] for k in keep}}


def summary_table(records: list[dict]) -> str:
    """Per kind and size: mean and range of ARI, found = planted share, segments per planted."""
    import numpy as np

    rows = [("| kind | steps | seeds | ARI mean (min-max) | found (planted) | found = planted | "
            "segments per planted | time s | peak MiB |"), "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["kind"], r["steps"]), []).append(r)
    for (kind, steps), rs in sorted(groups.items()):
        ari = np.array([r["ari"] for r in rs])
        found = [r["num_behaviours"] for r in rs]
        exact = np.mean([r["num_behaviours"] == r["planted_behaviours"] for r in rs])
        seg = np.array([r["segments_per_planted"] for r in rs])
        rows.append(f"| {kind} | {steps:,} | {len(rs)} | {ari.mean():.3f} ({ari.min():.3f}-{ari.max():.3f}) "
                    f"| {', '.join(map(str, found))} ({rs[0]['planted_behaviours']}) | {exact:.0%} "
                    f"| {seg.mean():.2f} | {np.mean([r['discover_s'] for r in rs]):.0f} "
                    f"| {max(r['peak_rss_mib'] for r in rs):.0f} |")
    return "\n".join(rows)


def write_markdown(path: Path, records: list[dict]) -> None:
    lines = ["# Behaviour discovery on the planted-behaviour suite (benchmarks/explain_suite.py)", "",
             (f"Goals: ARI >= {GOAL_ARI} on every generator, found = planted on >= "
             f"{GOAL_FOUND_SHARE:.0%} of runs, segments per planted segment <= {GOAL_SEGMENTS}."), "",
             summary_table(records), "", "Commands, machines and dates of the runs:", ""]
    for cmd, date, where in sorted({(r["command"], r["date"][:10], r["machine"]) for r in records}):
        lines.append(f"- `{cmd}` ({date}, {where})")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse_args(argv)
    command = shlex.join(["python", "benchmarks/explain_suite.py", *argv])
    done = {(r["kind"], r["steps"], r["seed"]) for r in load_records(args.out)} if args.skip_done else set()
    for steps in args.sizes:
        for kind in args.kinds:
            for seed in args.seeds:
                if (kind, steps, seed) in done:
                    continue
                print(f"{kind} {steps:,} steps seed {seed} ...", flush=True)
                rec = run_one(kind, steps, seed, args.episode_steps)
                rec.update(command=command, machine=machine(),
                           date=_dt.datetime.now().astimezone().isoformat(timespec="seconds"))
                print(f"  ARI {rec['ari']:.3f}, found {rec['num_behaviours']} of "
                      f"{rec['planted_behaviours']}, segments/planted {rec['segments_per_planted']}, "
                      f"{rec['discover_s']:.0f} s, {rec['peak_rss_mib']:.0f} MiB", flush=True)
                merge_record(args.out, rec, ("kind", "steps", "seed"),
                             lambda r: (r["steps"], r["kind"], r["seed"]))
    records = load_records(args.out)
    write_markdown(args.out, records)
    print(summary_table(records))


if __name__ == "__main__":
    main()
