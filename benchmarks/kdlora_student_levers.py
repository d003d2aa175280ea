"""Which setting lets the pretrained L3 student catch up? One kd-lora step per lever.

``benchmarks/kdlora_glue.py`` trains the teacher, LoRA and the KD-LoRA student of a task under
``WORK/TASK-sSEED``. This script reuses that teacher (same settings, so its logits too) and
trains the default student again with one setting changed per lever (more epochs, a higher
learning rate, no distillation, LoRA on every projection, ...), so that the score gap to LoRA
can be traced to what causes it. Steps resume like the benchmark's (reused when the settings
match). Writes ``--out`` (.json and .md) with the command, machine and date.

    OMP_NUM_THREADS=1 python benchmarks/kdlora_student_levers.py --task stsb \\
        --work-dir runs/bench/kdlora_glue_reduced_b --train-limit 2000 --dev-limit 1000 --epochs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import os
import shlex
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from kdlora_glue import dev_curve, git_commit, machine

from lagless.kdlora.config import KDLoRAConfig
from lagless.kdlora.step import read_step_result, reusable_result, run_step
from lagless.runs import atomic_write_json, atomic_write_text

# lever name -> settings changed from the benchmark's kd-lora step ("epochs_x": epochs multiplied)
LEVERS = {
    "epochs x3": {"epochs_x": 3.0},
    "lr 2e-3": {"lr": 2e-3},
    "no distillation (alpha 0)": {"alpha": 0.0},
    "LoRA on every projection": {"lora_targets": "query,key,value,intermediate.dense,output.dense"},
}


def lever_config(base: KDLoRAConfig, name: str, folder: Path) -> KDLoRAConfig:
    changes = dict(LEVERS[name])
    epochs = base.epochs * changes.pop("epochs_x", 1.0)
    return dataclasses.replace(base, epochs=epochs, run_dir=str(folder), **changes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="stsb")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, required=True, help="the kdlora_glue.py work dir")
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--dev-limit", type=int, default=None)
    parser.add_argument("--epochs", type=float, required=True, help="the benchmark's epochs")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--levers", default=",".join(LEVERS), help="comma-separated lever names")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/kdlora_student_levers.json"))
    args = parser.parse_args()
    names = args.levers.split(",")
    unknown = [n for n in names if n not in LEVERS]
    if unknown:
        parser.error(f"unknown lever {', '.join(unknown)}: choose from {', '.join(LEVERS)}")
    torch.set_num_threads(args.threads)
    base_dir = args.work_dir / f"{args.task}-s{args.seed}"
    teacher = base_dir / "teacher"
    if read_step_result(teacher) is None:
        parser.error(f"{teacher} holds no finished teacher: run benchmarks/kdlora_glue.py first")
    base = KDLoRAConfig(task=args.task, method="kd-lora", train_limit=args.train_limit,
                        dev_limit=args.dev_limit, epochs=args.epochs, max_length=args.max_length,
                        seed=args.seed, threads=args.threads, teacher=str(teacher), progress=False)
    references = {m: read_step_result(base_dir / d)
                  for m, d in (("fft", "teacher"), ("lora", "lora"), ("kd-lora", "kd-lora"))}
    rows = []
    result = {"command": "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "(unset)") + " python "
                         + shlex.join(["benchmarks/kdlora_student_levers.py", *sys.argv[1:]]),
              "machine": machine(), "threads": torch.get_num_threads(),
              "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "git_commit": git_commit(), "task": args.task, "seed": args.seed,
              "references": {m: r and r["score"] for m, r in references.items()}, "levers": rows}
    for name in names:
        folder = base_dir / "levers" / name.replace(" ", "_").replace("(", "").replace(")", "")
        step = lever_config(base, name, folder)
        done, _ = reusable_result(step)
        record = done if done is not None else run_step(step)
        rows.append({"lever": name, "changes": LEVERS[name], "epochs": step.epochs,
                     "score": record["score"], "train_time_s": record.get("train_time_s"),
                     "trainable_params": record.get("trainable_params"), "dev_curve": dev_curve(folder)})
        atomic_write_json(args.out, result)
        atomic_write_text(args.out.with_suffix(".md"), markdown(result))
        print(f"{name}: {record['score']:.4f}", flush=True)
    return 0


def markdown(result: dict) -> str:
    refs = result["references"]
    lines = [f"# KD-LoRA student levers on {result['task']}, seed {result['seed']} ({result['date']})", "",
             f"`{result['command']}`", "",
             f"Machine: {result['machine']}; torch threads {result['threads']}; float32"
             + (f"; lagless {result['git_commit']}" if result.get("git_commit") else "") + ".", "",
             (f"References from the same work dir: teacher (fft) {refs.get('fft') or float('nan'):.4f}, "
             f"LoRA {refs.get('lora') or float('nan'):.4f}, the student as benchmarked (kd-lora) "
             f"{refs.get('kd-lora') or float('nan'):.4f}."), "",
             "| lever | epochs | dev score | % of LoRA | trainable (M) | train s | dev curve |",
             "|---|---|---|---|---|---|---|"]
    for r in result["levers"]:
        share = f"{r['score'] / refs['lora']:.1%}" if refs.get("lora") else ""
        curve = ", ".join(f"{s:.3f}" for _, s in r["dev_curve"] or [])
        lines.append(f"| {r['lever']} | {r['epochs']:g} | {r['score']:.4f} | {share} | "
                     f"{(r['trainable_params'] or 0) / 1e6:.3f} | {r['train_time_s']} | {curve} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
