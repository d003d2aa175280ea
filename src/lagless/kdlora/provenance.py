"""What a step's result depends on, recorded with it, so that a finished step is reused only
when it would come out the same.

A step's *settings* are the config fields that can change its result, with the data and the
models replaced by digests of what was actually used:

- the rows it trained and was scored on: sha256 of the texts and labels of each split (so
  ``--data``, ``--train-limit``, ``--text-columns``, ... count through what they select, and
  the same files in another folder still match);
- each model by its checkpoint: sha256 of a local folder's config, weights and tokenizer
  files, or the hub id as given; kd-lora's ``--teacher`` by the fine-tuned model in that run;
- the learning rate actually used (the method's default when ``--lr`` is not given) and the
  kind of device it ran on.

Fields that cannot change the result are left out (``NOT_SETTINGS``), and so are the ones a
method does not use (LoRA's for the teacher; the student's and the distillation's for all but
kd-lora). A field added to ``KDLoRAConfig`` counts everywhere unless it is listed here.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from lagless.config import flag_name
from lagless.kdlora.config import KDLoRAConfig
from lagless.kdlora.sources import TextSplit

# where it is written, how it reports, how fast it runs; the method is the step itself, the
# data fields count through the rows they select, the models through their checkpoints
NOT_SETTINGS = frozenset({"run_dir", "progress", "threads", "method", "allow_other_family",
                          "data", "dev_data", "text_columns", "label_column", "train_limit",
                          "dev_limit", "teacher", "model", "student_model"})
LORA_SETTINGS = frozenset({"lora_r", "lora_alpha", "lora_dropout", "lora_targets"})
STUDENT_SETTINGS = frozenset({"student_layers", "student_init", "trim_vocab", "temperature",
                              "alpha"})
# files of a model folder that decide what it computes (weights, config, tokenizer)
_MODEL_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model")
_CHUNK = 1 << 20


def split_digest(split: TextSplit) -> dict[str, Any]:
    """Rows and sha256 of one split's texts and labels, in order."""
    h = hashlib.sha256()
    h.update(json.dumps([split.task.name, split.texts_a, split.texts_b]).encode())
    h.update(split.labels.dtype.str.encode())
    h.update(split.labels.tobytes())
    return {"rows": len(split), "sha256": h.hexdigest()}


@functools.lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def folder_digest(folder: str | Path) -> str:
    """sha256 over the names and contents of a model folder's config, weight and tokenizer files
    (its top level; READMEs, ONNX or TensorFlow copies and subfolders are not what transformers
    loads)."""
    h = hashlib.sha256()
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and path.suffix in _MODEL_SUFFIXES:
            stat = path.stat()
            h.update(f"{path.name}\0{_file_sha256(str(path), stat.st_size, stat.st_mtime_ns)}\0".encode())
    return h.hexdigest()


def model_identity(name: str) -> str:
    """A local model folder by the digest of its files; a hub id by its name."""
    return f"sha256:{folder_digest(name)}" if Path(name).is_dir() else f"hub:{name}"


def step_settings(config: KDLoRAConfig, *, train: TextSplit, dev: dict[str, TextSplit],
                  device: str, model: str, teacher: str | None = None,
                  student: str | None = None) -> dict[str, Any]:
    """The settings of one step, as stored in its ``metrics.json`` (JSON types only).

    ``model`` is the base model's folder or hub id (the default resolved); for kd-lora,
    ``teacher`` is the folder of the teacher's fine-tuned model and ``student`` the pretrained
    student's folder or hub id (None for a student cut from the teacher's layers).
    """
    skip = set(NOT_SETTINGS)
    if config.method == "fft":
        skip |= LORA_SETTINGS
    if config.method != "kd-lora":
        skip |= STUDENT_SETTINGS
    out: dict[str, Any] = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                           if f.name not in skip}
    out["lr"] = config.learning_rate
    out["device"] = device
    out["model"] = model_identity(model)
    if config.method == "kd-lora":
        out["teacher"] = model_identity(teacher) if teacher else None
        out["student_model"] = model_identity(student) if student else None
    out["train_data"] = split_digest(train)
    out["dev_data"] = {name: split_digest(split) for name, split in dev.items()}
    return json.loads(json.dumps(out))  # as it reads back from metrics.json


_MODELS = {"model": "--model", "teacher": "the teacher's fine-tuned model",
           "student_model": "--student-model"}


def _data(value: Any) -> str:
    if not isinstance(value, dict) or "rows" not in value:
        return repr(value)
    return f"{value['rows']} rows, sha256 {value['sha256'][:12]}"


def _describe(name: str, old: Any, new: Any) -> str:
    if name == "train_data":
        return f"the training data (was {_data(old)}, now {_data(new)})"
    if name == "dev_data":
        if not isinstance(old, dict) or not isinstance(new, dict) or set(old) != set(new):
            return "the dev data (other dev sets)"
        parts = [f"{k}: was {_data(old[k])}, now {_data(new[k])}" for k in new if old[k] != new[k]]
        return f"the dev data ({'; '.join(parts)})"
    if name in _MODELS:
        return f"{_MODELS[name]} (another checkpoint: was {old}, now {new})"
    return f"{flag_name(name)} (was {old!r}, now {new!r})"


def settings_differences(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What differs between a finished step's settings and the wanted ones, in words (empty
    when they match)."""
    if old is None:
        return ["its settings were not recorded (made by an older lagless)"]
    missing = object()
    return [_describe(name, old.get(name, "not recorded"), new.get(name, "not set"))
            for name in [*new, *(k for k in old if k not in new)]
            if old.get(name, missing) != new.get(name, missing)]


def teacher_logits_key(settings: dict[str, Any]) -> str:
    """What the cached teacher logits of a kd-lora step depend on: the teacher's checkpoint, the
    training rows and the truncation length."""
    wanted = {k: settings.get(k) for k in ("teacher", "train_data", "max_length")}
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()
