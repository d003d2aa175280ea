"""KD-LoRA on the local GLUE files: teacher (fft), LoRA and KD-LoRA student scores plus efficiency.

Teacher: the bundled all-MiniLM-L6-v2 (6 layers), fully fine-tuned. LoRA baseline: LoRA r 8 on
the same model. Student (``kd-lora``): the pretrained paraphrase-MiniLM-L3-v2 (the default
student, converted once from its ONNX package), LoRA r 8 on query and value, distilled from the
teacher, vocabulary trimmed to the task's training texts. Variant ``kd-lora-cut``: the student
cut from the fine-tuned teacher instead (its layers 0, 2, 4), for comparison.

The defaults are the full benchmark of issue #18: seven tasks (RTE, MRPC, STS-B, QNLI, MNLI,
QQP, SST-2, the last subsampled to 20,000 training rows), seeds 0, 1, 2, every local training
row of the other tasks and every dev row, epochs per task in ``TASKS``, the cut-student variant,
and each step's dev score after every epoch (the dev curve, to see whether LoRA converged).
On a CPU that is days of work; ``--train-limit``, ``--dev-limit``, ``--epochs``, ``--seeds``,
``--tasks`` and ``--variants`` cut it down, and the result file records what was run:

    OMP_NUM_THREADS=1 python benchmarks/kdlora_glue.py --threads 1                 # full spec
    OMP_NUM_THREADS=1 python benchmarks/kdlora_glue.py --threads 1 --seeds 0 \\
        --train-limit 2000 --dev-limit 1000 --epochs 3 --tasks rte,mrpc,stsb \\
        --work-dir runs/bench/kdlora_glue_reduced --out benchmarks/results/kdlora_glue_reduced.json

(On a busy 2-core machine one thread is several times faster than two that fight for a core.)

Resumable: each step (teacher, LoRA, student, variant) is reused from ``--work-dir`` when its
recorded settings and data digests match, and a task-and-seed whose steps were all reused also
reuses its side-by-side latencies (``bench_rows.json`` in its folder), so rerunning an interrupted
or extended command (more tasks, more seeds) only trains what is missing. After training, the
deployed models of a task are timed side by side, in interleaved rounds, so that their latencies
share the machine's load. Writes ``--out`` (records, per-task means over seeds, dev curves, goal
summary) and the same name with ``.md``.

Merged over sittings: when ``--out`` exists, its records of other tasks and seeds are kept (each
sitting's command, machine and date listed), so the full benchmark can be run a few tasks at a
time on different days or machines. A task already in the file with other settings (rows, epochs)
is refused: pick another ``--out``.

The score goal is judged on the mean over the tasks where some method (teacher included) scores
above chance by more than the dev set's noise (two binomial standard errors, 2 * sqrt(0.25 / n),
for accuracy and F1; 2 / sqrt(n) for correlations); chance is the best constant prediction on the
dev labels (0 for STS-B's correlations). Both means, with and without those tasks, are written.

``--epochs-scale 3`` trains every method three times longer; ``--teachers DIR`` copies each
task's finished teacher from another work dir. ``benchmarks/kdlora_glue_seeds.py`` averages
result files of the older one-seed-per-file layout.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as _dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from lagless import __version__
from lagless.kdlora.config import KDLoRAConfig
from lagless.kdlora.efficiency import inference_latency
from lagless.kdlora.metrics import compute_metrics, main_score
from lagless.kdlora.models import quiet_transformers
from lagless.kdlora.pipeline import run_pipeline
from lagless.kdlora.step import exported_model_dir, read_step_result, reusable_result, run_step
from lagless.kdlora.task_data import load_task_data
from lagless.runs import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "kdlora_glue.json"
# the full spec, in the order tasks are run: task -> (training rows (None: all the local file's),
# dev rows (None: all), epochs). Small sets get more epochs: every method sees a few hundred
# steps or more; the dev curves in the result show whether LoRA has flattened.
TASKS = {"rte": (None, None, 10.0), "mrpc": (None, None, 10.0), "stsb": (None, None, 10.0),
         "qnli": (None, None, 5.0), "mnli": (None, None, 5.0), "qqp": (None, None, 5.0),
         "sst2": (20000, None, 3.0)}
# other students, each a kd-lora step with these settings changed
VARIANTS = {"kd-lora-cut": {"student_layers": "0,2,4"},
            "kd-lora-full-vocab": {"trim_vocab": False},
            "kd-lora-cut-base-init": {"student_layers": "0,2,4", "student_init": "base"}}
DEFAULT_VARIANTS = "kd-lora-cut"
MAIN_METHODS = ("fft", "lora", "kd-lora")
RECORD_FIELDS = ("task", "method", "model", "metric", "score", "total_params", "trainable_params",
                 "peak_train_mem_mb", "latency_ms_b32", "seed")
EXTRA_FIELDS = ("scores", "train_examples", "dev_examples", "train_time_s", "latency_seq_len",
                "train_seq_len", "disk_mb", "vocabulary")


def machine() -> str:
    model = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.lower().startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{model}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}"


def side_by_side_latency(run_dirs: dict[str, Path], seq_len: int, rounds: int, repeats: int) -> dict[str, float]:
    """Median ms per batch of 32 of each deployed model, measured in interleaved rounds."""
    from transformers import AutoModelForSequenceClassification

    with quiet_transformers():
        models = {m: AutoModelForSequenceClassification.from_pretrained(exported_model_dir(d)).eval()
                  for m, d in run_dirs.items()}
    times: dict[str, list[float]] = {m: [] for m in models}
    for _ in range(rounds):
        for method, model in models.items():
            times[method].append(inference_latency(model, None, batch_size=32, seq_len=seq_len,
                                                   repeats=repeats)["latency_ms_b32"])
    return {m: float(np.median(t)) for m, t in times.items()}


def task_plan(task: str, args) -> tuple[int | None, int | None, float]:
    """(training rows, dev rows, epochs) of ``task`` under the flags (``--smoke`` first)."""
    if args.smoke:
        return 64, 32, 1.0 * args.epochs_scale
    train_limit, dev_limit, epochs = TASKS[task]
    train_limit = args.train_limit if args.train_limit is not None else train_limit
    if args.dev_limit is not None:
        dev_limit = args.dev_limit
    epochs = args.epochs if args.epochs is not None else epochs
    return train_limit, dev_limit, epochs * args.epochs_scale


def reuse_teacher(source: Path, target: Path) -> None:
    """Copy a finished teacher run into ``target`` (once), so the pipeline reuses it."""
    if read_step_result(target) is not None:
        return
    if read_step_result(source) is None:
        raise SystemExit(f"--teachers: {source} is not a finished teacher run (no metrics.json)")
    shutil.copytree(source, target, dirs_exist_ok=True)


def dev_curve(run_dir: Path) -> list[list[float]]:
    """[[step, dev score], ...] after every epoch, from the step's ``metrics.csv``."""
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [[int(float(row["step"])), float(row["eval/score"])]
                for row in csv.DictReader(f) if row.get("eval/score") not in (None, "")]


def chance(config: KDLoRAConfig) -> dict:
    """Best constant prediction's score on the dev rows, and the noise margin around it."""
    data = load_task_data(config)
    task = data.task
    scores, margins = [], []
    for split in data.dev.values():
        labels = np.asarray(split.labels)
        n = len(labels)
        if task.is_regression:
            scores.append(0.0)
            margins.append(2 / np.sqrt(max(n - 3, 1)))
            continue
        best = max(main_score(task, compute_metrics(task, np.full(n, c), labels))
                   for c in range(task.num_labels))
        scores.append(float(best))
        margins.append(2 * np.sqrt(0.25 / n))
    return {"score": float(np.mean(scores)), "margin": float(np.mean(margins))}


def run_task(task: str, seed: int, args) -> tuple[list[dict], dict]:
    """The rows of one task and seed (teacher, LoRA, student, variants) and the task's chance level."""
    train_limit, dev_limit, epochs = task_plan(task, args)
    base = args.work_dir / f"{task}-s{seed}"
    config = KDLoRAConfig(task=task, train_limit=train_limit, dev_limit=dev_limit, epochs=epochs,
                          max_length=args.max_length, seed=seed, run_dir=str(base),
                          threads=args.threads, latency_repeats=args.repeats)
    if args.teachers is not None:
        reuse_teacher(args.teachers / f"{task}-s{seed}" / "teacher", base / "teacher")
    say = lambda s: print(f"[{task} s{seed}] {s}", flush=True)
    records = run_pipeline(config, say=say)
    for method in args.variant_names:
        variant_dir = base / method
        step = dataclasses.replace(config, method="kd-lora", run_dir=str(variant_dir),
                                   teacher=str(base / "teacher"), **VARIANTS[method])
        result, differences = reusable_result(step)  # reused only with the same settings
        if result is None:
            again = f" (trained again: {'; '.join(differences)})" if differences else ""
            say(f"{method}: training in {variant_dir}{again}")
            result = run_step(step)
        else:
            say(f"{method}: reusing the finished run in {variant_dir}")
        records.append({**result, "method": method})
    dirs = {"fft": base / "teacher", "lora": base / "lora", "kd-lora": base / "kd-lora",
            **{m: base / m for m in args.variant_names}}
    # the side-by-side latencies are reused when every step was (same settings, same timing flags)
    key = json.dumps({"steps": [[r["method"], r.get("settings")] for r in records],
                      "rounds": args.rounds, "repeats": args.repeats}, sort_keys=True, default=str)
    saved_path = base / "bench_rows.json"
    saved = json.loads(saved_path.read_text()) if saved_path.exists() else {}
    if saved.get("key") == key:
        say("latency: reusing the side-by-side timings in bench_rows.json")
        latency = saved["latency"]
    else:
        latency = side_by_side_latency(dirs, records[0]["latency_seq_len"], args.rounds, args.repeats)
    level = saved["chance"] if saved.get("key") == key else chance(config)
    atomic_write_json(saved_path, {"key": key, "latency": latency, "chance": level})
    out = []
    for r in records:
        row = {k: r.get(k) for k in RECORD_FIELDS + EXTRA_FIELDS}
        row["latency_ms_b32_in_step"] = row["latency_ms_b32"]
        row["latency_ms_b32"] = latency[r["method"]]
        row["epochs"] = epochs
        row["dev_curve"] = dev_curve(dirs[r["method"]])
        out.append(row)
    return out, level


def sittings_of(result: dict) -> list[dict]:
    """The sittings that wrote ``result`` (files from before merging hold one, at the top level)."""
    if result.get("sittings"):
        return result["sittings"]
    keys = ("command", "machine", "threads_note", "date", "lagless_version", "git_commit")
    return [{k: result.get(k) for k in keys}]


def merged_result(out: Path, sitting: dict, settings: dict, variants: list[str]) -> dict:
    """The result to extend: ``out``'s records and sittings plus this sitting (whose task-and-seed
    rows replace the old ones as each finishes, so an interrupted sitting loses nothing).

    Raises ValueError when ``out`` is unreadable or holds one of this sitting's tasks with other
    settings, since mixing them would average different benchmarks.
    """
    fresh = {"sittings": [sitting], "precision": "float32", "seeds": [], "variants": variants,
             "settings": dict(settings), "records": [], "chance": {}, "summary": {}}
    if not out.exists():
        return fresh
    try:
        old = json.loads(out.read_text())
        old_records = old["records"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{out} is not a readable kdlora_glue result ({err}): move it away or pick another --out")
    for task, wanted in settings.items():
        had = old.get("settings", {}).get(task)
        if had is not None and had != wanted and any(r["task"] == task for r in old_records):
            raise ValueError(f"{out} holds {task} with settings {had}, this run's are {wanted}: pick another --out")
    fresh["sittings"] = sittings_of(old) + [sitting]
    fresh["settings"] = {**old.get("settings", {}), **settings}
    fresh["variants"] = sorted(set(old.get("variants", [])) | set(variants))
    fresh["chance"] = dict(old.get("chance", {}))
    fresh["records"] = list(old_records)
    fresh["seeds"] = sorted({r["seed"] for r in fresh["records"]})
    return fresh


def per_task(records: list[dict]) -> dict[str, dict[str, dict]]:
    """task -> method -> mean (and std, n) over seeds of score, memory, latency, parameters."""
    table: dict[str, dict[str, dict]] = {}
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["task"], r["method"]), []).append(r)
    for (task, method), rows in groups.items():
        entry = {"n_seeds": len(rows), "model": rows[0]["model"],
                 "score_std": float(np.std([r["score"] for r in rows]))}
        for key in ("score", "peak_train_mem_mb", "latency_ms_b32", "total_params", "trainable_params"):
            entry[key] = float(np.mean([r[key] for r in rows]))
        table.setdefault(task, {})[method] = entry
    return table


def summary(records: list[dict], chance_levels: dict[str, dict] | None = None) -> dict:
    """The issue's goals on the per-task means over seeds: KD-LoRA vs LoRA and vs the teacher.

    A task where every one of fft, lora and kd-lora stays within ``margin`` of chance is left out
    of the score goal's mean (when ``chance_levels`` are known); both means are reported.
    """
    table = per_task(records)
    tasks = sorted(t for t, m in table.items() if all(x in m for x in MAIN_METHODS))
    if not tasks:
        return {}
    chance_levels = chance_levels or {}
    at_chance = [t for t in tasks if t in chance_levels and all(
        table[t][m]["score"] <= chance_levels[t]["score"] + chance_levels[t]["margin"] for m in MAIN_METHODS)]
    scored = [t for t in tasks if t not in at_chance] or tasks  # all at chance: keep them all
    if scored == tasks:
        at_chance_kept, at_chance = at_chance, []
    else:
        at_chance_kept = []
    mean = lambda m, key, ts: float(np.mean([table[t][m][key] for t in ts]))
    ratio = lambda a, b, key: float(np.mean([table[t][a][key] / table[t][b][key] for t in tasks]))
    methods = [m for m in (*MAIN_METHODS, *VARIANTS) if all(m in table[t] for t in tasks)]
    out = {
        "tasks": tasks,
        "tasks_at_chance": at_chance,
        "tasks_at_chance_kept": at_chance_kept,
        "score_tasks": scored,
        "mean_score": {m: mean(m, "score", scored) for m in methods},
        "mean_score_all_tasks": {m: mean(m, "score", tasks) for m in methods},
        "kd_score_fraction_of_lora": mean("kd-lora", "score", scored) / mean("lora", "score", scored),
        "kd_score_fraction_of_lora_all_tasks": mean("kd-lora", "score", tasks) / mean("lora", "score", tasks),
        "kd_latency_reduction_vs_lora": 1 - ratio("kd-lora", "lora", "latency_ms_b32"),
        "kd_latency_reduction_vs_fft": 1 - ratio("kd-lora", "fft", "latency_ms_b32"),
        "kd_peak_mem_reduction_vs_lora": 1 - ratio("kd-lora", "lora", "peak_train_mem_mb"),
        "kd_param_reduction_vs_teacher": 1 - ratio("kd-lora", "fft", "total_params"),
    }
    for variant in VARIANTS:
        if variant in methods:
            out[f"{variant}_score_fraction_of_lora"] = (mean(variant, "score", scored)
                                                        / mean("lora", "score", scored))
    out["goals"] = {
        # None: every task sits at chance for every method, so there is no score to compare
        "score >= 98% of LoRA": None if at_chance_kept else out["kd_score_fraction_of_lora"] >= 0.98,
        "latency >= 30% below LoRA": out["kd_latency_reduction_vs_lora"] >= 0.30,
        "peak training memory >= 30% below LoRA": out["kd_peak_mem_reduction_vs_lora"] >= 0.30,
        "parameters >= 40% below the teacher": out["kd_param_reduction_vs_teacher"] >= 0.40,
    }
    return out


def markdown(result: dict) -> str:
    lines = ["# KD-LoRA on local GLUE files", "", "Sittings (precision float32):", ""]
    for s in sittings_of(result):
        lines.append(f"- `{s['command']}` ({s['date']}; {s['machine']}; {s['threads_note']}; "
                     f"lagless {s['lagless_version']}" + (f" {s['git_commit']}" if s.get("git_commit") else "") + ")")
    lines += ["",
             "Settings per task (training rows / dev rows / epochs; None: all rows of the local file): "
             + ", ".join(f"{t} {s['train_examples']} / {s['dev_examples']} / {s['epochs']:g}"
                         for t, s in result["settings"].items()) + f"; seeds {result['seeds']}.", "",
             "## Per task (mean over seeds; ± population std when several)", "",
             ("| task | method | model | seeds | dev score | chance (+ noise) | params (M) | trainable (M) "
              "| peak train MB | ms / batch 32 |"), "|---|---|---|---|---|---|---|---|---|---|"]
    table = per_task(result["records"])
    for task, methods in table.items():
        level = result["chance"].get(task)
        at = f"{level['score']:.3f} (+{level['margin']:.3f})" if level else ""
        for method, e in methods.items():
            std = f" ± {e['score_std']:.4f}" if e["n_seeds"] > 1 else ""
            lines.append(f"| {task} | {method} | {e['model']} | {e['n_seeds']} | {e['score']:.4f}{std} | {at} | "
                         f"{e['total_params'] / 1e6:.2f} | {e['trainable_params'] / 1e6:.3f} | "
                         f"{e['peak_train_mem_mb']:.0f} | {e['latency_ms_b32']:.1f} |")
    if result["summary"]:
        lines += summary_lines(result["summary"])
    lines += ["", "## Dev curves (dev score after each epoch)", "",
              "| task | seed | method | after epoch 1, 2, ... |", "|---|---|---|---|"]
    for r in result["records"]:
        lines.append(f"| {r['task']} | {r['seed']} | {r['method']} | "
                     + ", ".join(f"{s:.3f}" for _, s in r.get("dev_curve") or []) + " |")
    return "\n".join(lines) + "\n"


def summary_lines(s: dict, score_note: str = "") -> list[str]:
    """The mean scores, KD-LoRA's ratios and the goals, as markdown lines."""
    left_out = (f" (left out as within noise of chance for every method: {', '.join(s['tasks_at_chance'])})"
                if s.get("tasks_at_chance") else "")
    lines = ["", (f"Mean scores over {', '.join(s.get('score_tasks', s['tasks']))}{left_out}: "
                  f"{', '.join(f'{m} {v:.4f}' for m, v in s['mean_score'].items())}.")]
    if s.get("tasks_at_chance"):
        lines.append(f"Over all tasks: {', '.join(f'{m} {v:.4f}' for m, v in s['mean_score_all_tasks'].items())}"
                     f" (KD-LoRA {s['kd_score_fraction_of_lora_all_tasks']:.1%} of LoRA).")
    if s.get("tasks_at_chance_kept"):
        lines.append(f"Every task is within noise of chance for every method ({', '.join(s['tasks_at_chance_kept'])}),"
                     " so the score goal has nothing to judge on; the mean is over all of them.")
    lines += [(f"KD-LoRA: {s['kd_score_fraction_of_lora']:.1%} of LoRA's mean score{score_note}; latency "
               f"{s['kd_latency_reduction_vs_lora']:.0%} below LoRA's; peak training memory "
               f"{s['kd_peak_mem_reduction_vs_lora']:.0%} below LoRA's; "
               f"{s['kd_param_reduction_vs_teacher']:.0%} fewer parameters than the teacher."), ""]
    verdict = {True: "met", False: "NOT met", None: "not judged (every task at chance)"}
    return lines + [f"- {goal}: {verdict[ok]}" for goal, ok in s["goals"].items()]


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks, run in this order")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="training rows of every task (default: per task, see TASKS)")
    parser.add_argument("--dev-limit", type=int, default=None,
                        help="dev rows of every task, a seeded subsample (default: all)")
    parser.add_argument("--epochs", type=float, default=None, help="epochs of every task (default: per task)")
    parser.add_argument("--max-length", type=int, default=128, help="longest input in tokens")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="step folders (default runs/bench/kdlora_glue; --smoke: under /tmp)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    parser.add_argument("--repeats", type=int, default=10, help="timed batches per latency round")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON, merged with what it holds (default benchmarks/results/kdlora_glue.json;"
                             " --smoke: under /tmp)")
    parser.add_argument("--smoke", action="store_true",
                        help="64 examples, 1 epoch: checks the script (its files go under /tmp unless given)")
    parser.add_argument("--epochs-scale", type=float, default=1.0,
                        help="multiply every task's epochs (all methods alike)")
    parser.add_argument("--teachers", type=Path, default=None,
                        help="reuse the finished teachers of another work dir (TEACHERS/TASK-sSEED/teacher)")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS,
                        help=f"comma-separated student variants ({', '.join(VARIANTS)}) or 'none'")
    args = parser.parse_args()
    smoke_root = Path(tempfile.gettempdir()) / "kdlora_glue_smoke"
    args.out = args.out or (smoke_root / "kdlora_glue.json" if args.smoke else OUT)
    args.work_dir = args.work_dir or (smoke_root / "work" if args.smoke else Path("runs/bench/kdlora_glue"))
    names = [v for v in args.variants.split(",") if v and v != "none"]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    args.variant_names = names
    tasks = args.tasks.split(",")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        parser.error(f"unknown task {', '.join(unknown)}: choose from {', '.join(TASKS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.threads:
        torch.set_num_threads(args.threads)
    sitting = {"command": "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "(unset)") + " python "
                          + shlex.join(["benchmarks/kdlora_glue.py", *sys.argv[1:]]),
               "machine": machine(), "threads_note": f"torch threads {torch.get_num_threads()}",
               "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "lagless_version": __version__, "git_commit": git_commit()}
    settings = {t: dict(zip(("train_examples", "dev_examples", "epochs"), task_plan(t, args), strict=True))
                for t in tasks}
    try:
        result = merged_result(args.out, sitting, settings, names)
    except ValueError as err:
        parser.error(str(err))
    records, levels = result["records"], result["chance"]
    for task in tasks:  # task by task, each over all seeds, so that finished tasks come first
        for seed in seeds:
            rows, levels[task] = run_task(task, seed, args)
            records[:] = [r for r in records if (r["task"], r["seed"]) != (task, seed)] + rows
            result["seeds"] = sorted({r["seed"] for r in records})
            result["per_task"] = per_task(records)
            result["summary"] = summary(records, levels)
            atomic_write_json(args.out, result)
            atomic_write_text(args.out.with_suffix(".md"), markdown(result))
            print(markdown(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
