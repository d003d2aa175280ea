"""``kdlora run`` with a tiny random BERT (a run takes seconds): every GLUE task of
../shared/data/glue through the whole pipeline (teacher, LoRA, KD-LoRA) on 64 examples of its
local file, with its GLUE metrics (MNLI matched and mismatched, MRPC and QQP F1 and accuracy);
and which finished steps a rerun reuses.

SST-2 has its own smoke run with the real MiniLM in test_kdlora_cli.py.
"""

from __future__ import annotations

import json
import math
import os
import shutil

import pytest

from lagless.cli import main
from lagless.kdlora.tasks import get_task

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TASKS = ["rte", "stsb", "mrpc", "qnli", "mnli", "qqp", "wnli"]
METRICS = {
    "rte": {"accuracy"}, "qnli": {"accuracy"}, "wnli": {"accuracy"},
    "stsb": {"pearson", "spearman"},
    "mrpc": {"f1", "accuracy"}, "qqp": {"f1", "accuracy"},
    "mnli": {"matched_accuracy", "mismatched_accuracy", "matched_score", "mismatched_score"},
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A 2-layer, 32-wide random BERT with the bundled MiniLM's tokenizer (4 MB)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from lagless.kdlora.models import default_model_path, quiet_transformers

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    with quiet_transformers():
        BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _tiny(task: str, model: str, out) -> list[str]:
    return ["kdlora", "run", "--task", task, "--model", model, "--student-layers", "0",
            "--train-limit", "64", "--dev-limit", "32", "--epochs", "1", "--batch-size", "32",
            "--max-length", "32", "--no-efficiency", "--no-progress", "--run-dir", str(out)]


@pytest.mark.parametrize("task", TASKS)
def test_task_runs_on_64_local_examples(tiny_model, tmp_path, task):
    out = tmp_path / task
    assert main(_tiny(task, tiny_model, out)) == 0
    records = json.loads((out / "comparison.json").read_text())
    assert [r["method"] for r in records] == ["fft", "lora", "kd-lora"]
    dev = {"matched": 32, "mismatched": 32} if task == "mnli" else {"dev": 32}
    for r in records:
        assert r["task"] == task and r["train_examples"] == 64 and r["dev_examples"] == dev
        assert METRICS[task] <= set(r["scores"]), r["scores"]
        assert all(math.isfinite(v) for v in r["scores"].values())
        expected = [r["scores"][m] for m in sorted(METRICS[task]) if not m.endswith("score")]
        if task == "mnli":  # the task's score: the mean of matched and mismatched accuracy
            assert r["score"] == pytest.approx(sum(expected) / 2)
        else:
            assert r["score"] == pytest.approx(sum(expected) / len(expected))
        lo = -1.0 if get_task(task).is_regression else 0.0
        assert all(lo <= v <= 1.0 for v in r["scores"].values())


def _steps(capsys) -> dict[str, str]:
    """What the last run said of each step: "reused", "trained" or "retrained: <why>"."""
    said = {}
    for line in capsys.readouterr().out.splitlines():
        method, _, rest = line.partition(": ")
        if method in ("fft", "lora", "kd-lora"):
            said[method] = ("reused" if rest.startswith("reusing") else
                            "trained" if rest.startswith("training, ") else "retrained: " + rest)
    return said


def test_rerun_reuses_a_step_only_with_the_same_settings(tiny_model, tmp_path, capsys):
    from lagless.kdlora.sources import default_glue_dir

    out = tmp_path / "run"
    argv = _tiny("rte", tiny_model, out)
    cache = out / "kd-lora" / "teacher_logits.safetensors"
    assert main(argv) == 0
    assert set(_steps(capsys).values()) == {"trained"}
    assert main(argv) == 0
    assert set(_steps(capsys).values()) == {"reused"}
    first = cache.stat().st_mtime_ns

    # a distillation setting: only the student trains again, and its teacher logits still fit
    assert main([*argv, "--temperature", "3"]) == 0
    said = _steps(capsys)
    assert said["fft"] == said["lora"] == "reused"
    assert "--temperature (was 2.0, now 3.0)" in said["kd-lora"]
    assert cache.stat().st_mtime_ns == first
    settings = json.loads((out / "kd-lora" / "metrics.json").read_text())["settings"]
    assert settings["temperature"] == 3.0 and settings["train_data"]["rows"] == 64

    # a LoRA setting: the teacher stays
    assert main([*argv, "--temperature", "3", "--lora-r", "4"]) == 0
    said = _steps(capsys)
    assert said["fft"] == "reused" and "--lora-r (was 8, now 4)" in said["lora"]
    assert "--lora-r" in said["kd-lora"]

    # the same rows from another folder are the same data
    copy = tmp_path / "glue"
    shutil.copytree(default_glue_dir() / "RTE", copy / "RTE")
    assert main([*argv, "--temperature", "3", "--lora-r", "4", "--data", str(copy)]) == 0
    assert set(_steps(capsys).values()) == {"reused"}

    # other rows, or more epochs: everything again, and the teacher's logits are recomputed
    assert main([*argv, "--temperature", "3", "--lora-r", "4", "--train-limit", "48"]) == 0
    said = _steps(capsys)
    assert all(s.startswith("retrained") for s in said.values())
    assert "the training data (was 64 rows, sha256 " in said["fft"] and ", now 48 rows" in said["fft"]
    assert "the teacher's fine-tuned model (another checkpoint" in said["kd-lora"]
    assert cache.stat().st_mtime_ns != first
    argv += ["--temperature", "3", "--lora-r", "4", "--epochs", "2"]
    assert main(argv) == 0
    assert "--epochs (was 1.0, now 2.0)" in _steps(capsys)["fft"]

    # a step finished by a lagless that recorded no settings
    path = out / "lora" / "metrics.json"
    record = json.loads(path.read_text())
    del record["settings"]
    path.write_text(json.dumps(record))
    assert main(argv) == 0
    said = _steps(capsys)
    assert said["fft"] == said["kd-lora"] == "reused"
    assert said["lora"] == (f"retrained: training again in {out / 'lora'}; the finished run there "
                            "differs: its settings were not recorded (made by an older lagless)")

