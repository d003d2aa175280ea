"""Average several ``kdlora_glue.py`` result files (one per seed) and check the goals on the means.

One seed's dev score moves by a point or two (RTE's local dev set has 139 rows: one example is
0.7 points), so the score goal is judged on the mean over seeds, with each seed's own ratio
shown beside it. A record repeated across files (a teacher reused with ``--teachers``) counts once.

    python benchmarks/kdlora_glue_seeds.py benchmarks/results/kdlora_glue_x3.json \\
        benchmarks/results/kdlora_glue_x3_s1.json benchmarks/results/kdlora_glue_x3_s2.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from kdlora_glue import RECORD_FIELDS, summary, summary_lines

from lagless.runs import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_FILES = [RESULTS / f"kdlora_glue_x3{suffix}.json" for suffix in ("", "_s1", "_s2")]
AVERAGED = ("score", "peak_train_mem_mb", "latency_ms_b32")


def load(paths: list[Path]) -> list[dict]:
    """Every file's result, each with its records; a missing or unreadable file is a clear error."""
    results = []
    for path in paths:
        try:
            results.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as err:
            print(f"cannot read {path}: {err}; run benchmarks/kdlora_glue.py first", file=sys.stderr)
            raise SystemExit(2) from None
    return results


def shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it."""
    try:
        return str(path.resolve().relative_to(RESULTS.parent.parent))
    except ValueError:
        return str(path)


def average(results: list[dict]) -> list[dict]:
    """One record per (task, method): the mean over distinct seeds, plus ``scores_by_seed``."""
    groups: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for result in results:
        for r in result["records"]:
            groups[(r["task"], r["method"])].setdefault(r["seed"], r)
    out = []
    for by_seed in groups.values():
        rows = [by_seed[s] for s in sorted(by_seed)]
        row = {k: rows[0][k] for k in RECORD_FIELDS}  # seed-specific extras are not averaged
        row.update({k: float(np.mean([r[k] for r in rows])) for k in AVERAGED})
        row["seed"] = sorted(by_seed)
        row["scores_by_seed"] = {s: by_seed[s]["score"] for s in sorted(by_seed)}
        row["score_std"] = float(np.std([r["score"] for r in rows]))
        out.append(row)
    return out


def markdown(result: dict) -> str:
    lines = [f"# KD-LoRA on local GLUE files, mean over seeds ({result['date']})", "",
             f"`{result['command']}`, from: {', '.join(result['files'])}.", "",
             "| task | method | dev score, mean ± std (seeds) | by seed | peak train MB | ms / batch 32 |",
             "|---|---|---|---|---:|---:|"]
    for r in result["records"]:
        seeds = ", ".join(f"{k}: {v:.4f}" for k, v in r["scores_by_seed"].items())
        lines.append(f"| {r['task']} | {r['method']} | {r['score']:.4f} ± {r['score_std']:.4f} "
                     f"(n={len(r['scores_by_seed'])}) | {seeds} | {r['peak_train_mem_mb']:.0f} | "
                     f"{r['latency_ms_b32']:.1f} |")
    note = f" (each result file on its own: {', '.join(f'{f:.1%}' for f in result['fraction_by_file'])})"
    lines += summary_lines(result["summary"], note)
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, default=DEFAULT_FILES,
                        help="kdlora_glue.py result files, one per seed (default: the three x3 files)")
    parser.add_argument("--out", type=Path, default=RESULTS / "kdlora_glue_x3_seeds.json")
    args = parser.parse_args()
    results = load(args.files)
    records = average(results)
    result = {"command": "python " + shlex.join(["benchmarks/kdlora_glue_seeds.py", *sys.argv[1:]]),
              "date": max(r["date"] for r in results),
              "files": [shown(p) for p in args.files],
              "fraction_by_file": [summary(r["records"])["kd_score_fraction_of_lora"] for r in results],
              "records": records, "summary": summary(records)}
    atomic_write_json(args.out, result)
    atomic_write_text(args.out.with_suffix(".md"), markdown(result))
    print(markdown(result), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
