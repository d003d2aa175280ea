"""KD-LoRA on local GLUE files: teacher (fft), LoRA and KD-LoRA student scores plus efficiency.

Teacher: the bundled all-MiniLM-L6-v2 (6 layers), fully fine-tuned. Student: layers 0, 2, 4
of the fine-tuned teacher, LoRA r 8 on query and value, distilled from the teacher, with its
vocabulary trimmed to the tokens of the task's training texts (the defaults); two ablations
price those choices: once with the full vocabulary, once cut from the pretrained base.

    OMP_NUM_THREADS=1 python benchmarks/kdlora_glue.py --threads 1   # sst2 (4,000 of 60,614), rte, stsb

(On a busy 2-core machine one thread is several times faster than two that fight for a core.)

Each task's finished steps are reused from ``--work-dir`` when their settings match, so an
interrupted run resumes.
After training, the three deployed models of a task are timed again side by side, in
interleaved rounds, so that their latencies share the machine's load. Writes
``benchmarks/results/kdlora_glue.json`` (records + goal summary) and ``kdlora_glue.md``.

``--epochs-scale 3`` trains every method three times longer, to tell a student that is
under-trained from one that lacks capacity; give it its own ``--work-dir`` and ``--out``.

``--teachers DIR`` copies each task's finished teacher from another work dir (another seed's)
instead of training it again: LoRA and KD-LoRA get a new seed, the fft row keeps the teacher's.
``benchmarks/kdlora_glue_seeds.py`` averages several such result files.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import os
import platform
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from lagless import __version__
from lagless.kdlora.config import KDLoRAConfig
from lagless.kdlora.efficiency import inference_latency
from lagless.kdlora.models import quiet_transformers
from lagless.kdlora.pipeline import run_pipeline
from lagless.kdlora.step import exported_model_dir, read_step_result, reusable_result, run_step
from lagless.runs import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "kdlora_glue.json"
# task -> (training examples (None: all), dev examples (None: all), epochs)
TASKS = {"sst2": (4000, 1000, 2.0), "rte": (None, None, 3.0), "stsb": (None, None, 2.0)}
# ablations of the student, each a kd-lora step with one setting changed
VARIANTS = {"kd-lora-full-vocab": {"trim_vocab": False}, "kd-lora-base-init": {"student_init": "base"}}
RECORD_FIELDS = ("task", "method", "model", "metric", "score", "total_params", "trainable_params",
                 "peak_train_mem_mb", "latency_ms_b32", "seed")
EXTRA_FIELDS = ("scores", "train_examples", "train_time_s", "latency_seq_len", "train_seq_len",
                "disk_mb", "vocabulary")


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
    """(training examples, dev examples, epochs) of ``task`` under ``--smoke`` and ``--epochs-scale``."""
    train_limit, dev_limit, epochs = (64, 32, 1.0) if args.smoke else TASKS[task]
    return train_limit, dev_limit, epochs * args.epochs_scale


def reuse_teacher(source: Path, target: Path) -> None:
    """Copy a finished teacher run into ``target`` (once), so the pipeline reuses it."""
    if read_step_result(target) is not None:
        return
    if read_step_result(source) is None:
        raise SystemExit(f"--teachers: {source} is not a finished teacher run (no metrics.json)")
    shutil.copytree(source, target, dirs_exist_ok=True)


def run_task(task: str, args) -> list[dict]:
    train_limit, dev_limit, epochs = task_plan(task, args)
    config = KDLoRAConfig(task=task, train_limit=train_limit, dev_limit=dev_limit, epochs=epochs,
                          seed=args.seed, run_dir=str(args.work_dir / task), threads=args.threads,
                          latency_repeats=args.repeats)
    if args.teachers is not None:
        reuse_teacher(args.teachers / task / "teacher", args.work_dir / task / "teacher")
    records = run_pipeline(config, say=lambda s: print(f"[{task}] {s}", flush=True))
    variants = VARIANTS if args.variants else {}
    for method, changes in variants.items():
        variant_dir = args.work_dir / task / method
        step = dataclasses.replace(config, method="kd-lora", run_dir=str(variant_dir),
                                   teacher=str(args.work_dir / task / "teacher"), **changes)
        result, differences = reusable_result(step)  # reused only with the same settings
        if result is None:
            again = f" (trained again: {'; '.join(differences)})" if differences else ""
            print(f"[{task}] {method}: {variant_dir}{again}", flush=True)
            result = run_step(step)
        records.append({**result, "method": method})
    dirs = {"fft": "teacher", "lora": "lora", "kd-lora": "kd-lora", **{m: m for m in variants}}
    seq_len = records[0]["latency_seq_len"]
    latency = side_by_side_latency({m: args.work_dir / task / d for m, d in dirs.items()}, seq_len,
                                   args.rounds, args.repeats)
    out = []
    for r in records:
        row = {k: r.get(k) for k in RECORD_FIELDS + EXTRA_FIELDS}
        row["latency_ms_b32_in_step"] = row["latency_ms_b32"]
        row["latency_ms_b32"] = latency[r["method"]]
        row["epochs"] = epochs
        out.append(row)
    return out


def summary(records: list[dict]) -> dict:
    """The issue's goals: KD-LoRA vs LoRA (score, latency, memory) and vs the teacher (parameters)."""
    def by(method):
        return {r["task"]: r for r in records if r["method"] == method}

    fft, lora, kd, full = by("fft"), by("lora"), by("kd-lora"), by("kd-lora-full-vocab")
    base_init = by("kd-lora-base-init")
    tasks = sorted(set(lora) & set(kd) & set(fft))
    mean = lambda rows, key: float(np.mean([rows[t][key] for t in tasks]))
    ratio = lambda a, b, key: float(np.mean([a[t][key] / b[t][key] for t in tasks]))
    out = {
        "tasks": tasks,
        "mean_score": {m: mean(rows, "score") for m, rows in
                       (("fft", fft), ("lora", lora), ("kd-lora", kd), ("kd-lora-full-vocab", full),
                        ("kd-lora-base-init", base_init))
                       if set(tasks) <= set(rows)},
        "kd_score_fraction_of_lora": mean(kd, "score") / mean(lora, "score"),
        "kd_latency_reduction_vs_lora": 1 - ratio(kd, lora, "latency_ms_b32"),
        "kd_latency_reduction_vs_fft": 1 - ratio(kd, fft, "latency_ms_b32"),
        "kd_peak_mem_reduction_vs_lora": 1 - ratio(kd, lora, "peak_train_mem_mb"),
        "kd_param_reduction_vs_teacher": 1 - ratio(kd, fft, "total_params"),
    }
    if set(tasks) <= set(full):
        out["vocab_trim_score_change"] = mean(kd, "score") - mean(full, "score")
        out["full_vocab_param_reduction_vs_teacher"] = 1 - ratio(full, fft, "total_params")
    if set(tasks) <= set(base_init):
        out["teacher_init_score_change"] = mean(kd, "score") - mean(base_init, "score")
    out["goals"] = {
        "score >= 98% of LoRA": out["kd_score_fraction_of_lora"] >= 0.98,
        "latency >= 30% below LoRA": out["kd_latency_reduction_vs_lora"] >= 0.30,
        "peak training memory >= 30% below LoRA": out["kd_peak_mem_reduction_vs_lora"] >= 0.30,
        "parameters >= 40% below the teacher": out["kd_param_reduction_vs_teacher"] >= 0.40,
    }
    return out


def markdown(result: dict) -> str:
    lines = [f"# KD-LoRA on local GLUE files ({result['date']})", "",
             f"`{result['command']}` on {result['machine']}.", "",
             "| task | method | model | dev score | params (M) | trainable (M) | peak train MB | ms / batch 32 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["records"]:
        lines.append(f"| {r['task']} | {r['method']} | {r['model']} | {r['score']:.4f} | "
                     f"{r['total_params'] / 1e6:.2f} | {r['trainable_params'] / 1e6:.3f} | "
                     f"{r['peak_train_mem_mb']:.0f} | {r['latency_ms_b32']:.1f} |")
    if result["summary"]:
        lines += summary_lines(result["summary"])
    return "\n".join(lines) + "\n"


def summary_lines(s: dict, score_note: str = "") -> list[str]:
    """The mean scores, KD-LoRA's ratios and the goals, as markdown lines."""
    lines = ["", f"Mean scores: {', '.join(f'{m} {v:.4f}' for m, v in s['mean_score'].items())}.",
             (f"KD-LoRA: {s['kd_score_fraction_of_lora']:.1%} of LoRA's mean score{score_note}; latency "
              f"{s['kd_latency_reduction_vs_lora']:.0%} below LoRA's; peak training memory "
              f"{s['kd_peak_mem_reduction_vs_lora']:.0%} below LoRA's; "
              f"{s['kd_param_reduction_vs_teacher']:.0%} fewer parameters than the teacher."), ""]
    return lines + [f"- {goal}: {'met' if ok else 'NOT met'}" for goal, ok in s["goals"].items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="sst2,rte,stsb", help="comma-separated tasks")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/bench/kdlora_glue"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    parser.add_argument("--repeats", type=int, default=10, help="timed batches per latency round")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--smoke", action="store_true", help="64 examples, 1 epoch: checks the script")
    parser.add_argument("--epochs-scale", type=float, default=1.0,
                        help="multiply every task's epochs (all methods alike); use its own --work-dir and --out")
    parser.add_argument("--teachers", type=Path, default=None,
                        help="reuse the finished teachers of another work dir (TEACHERS/TASK/teacher)")
    parser.add_argument("--variants", action=argparse.BooleanOptionalAction, default=True,
                        help="also train the student ablations (full vocabulary, base init)")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.threads:
        torch.set_num_threads(args.threads)
    records: list[dict] = []
    result = {"command": "python " + shlex.join(["benchmarks/kdlora_glue.py", *sys.argv[1:]]),
              "machine": machine(), "date": _dt.date.today().isoformat(), "lagless_version": __version__,
              "settings": {t: dict(zip(("train_examples", "dev_examples", "epochs"), task_plan(t, args),
                                       strict=True)) for t in args.tasks.split(",")},
              "records": records, "summary": {}}
    for task in args.tasks.split(","):
        records.extend(run_task(task, args))
        result["summary"] = summary(records)
        atomic_write_json(args.out, result)
        atomic_write_text(args.out.with_suffix(".md"), markdown(result))
        print(markdown(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
