"""``lagless kdlora predict``: the label (or score) a trained step gives one sentence or sentence pair."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lagless.errors import LaglessError
from lagless.kdlora.step import exported_model_dir
from lagless.kdlora.tasks import get_task


def _task_of(run_dir: Path):
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except FileNotFoundError:
        raise LaglessError(f"{run_dir} is not a kdlora run folder (no config.json)") from None
    except json.JSONDecodeError:
        raise LaglessError(f"{run_dir}/config.json is corrupt") from None
    return get_task(config.get("task", ""))


def predict(run_dir: str | Path, text_a: str, text_b: str | None = None) -> dict:
    """{"label", "probabilities"} for classification, {"score"} for regression."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run_dir = Path(run_dir)
    task = _task_of(run_dir)
    if task.is_pair and text_b is None:
        raise LaglessError(f"{task.name} compares two sentences: give a second sentence")
    if not task.is_pair and text_b is not None:
        raise LaglessError(f"{task.name} classifies one sentence: give only one")
    folder = exported_model_dir(run_dir)
    model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    inputs = tokenizer(text_a, text_b, truncation=True, max_length=512, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**inputs).logits[0]
    if task.is_regression:
        return {"task": task.name, "score": float(logits.reshape(-1)[0])}
    probs = torch.softmax(logits, dim=-1).tolist()
    names = task.label_names or tuple(str(i) for i in range(len(probs)))
    best = max(range(len(probs)), key=probs.__getitem__)
    return {"task": task.name, "label": names[best], "probabilities": dict(zip(names, probs, strict=True))}
