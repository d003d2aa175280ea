"""The model each method trains: the full base model (fft), LoRA on it (lora), or a LoRA student (kd-lora).

The student is either a pretrained model the user names or the teacher with only some of
its layers kept (DistilBERT's recipe: every other layer). By default the kept layers, pooler
and head come from the fine-tuned teacher, which already solves the task: cutting layers from
it loses less than cutting them from the pretrained base (``--student-init base``), whose
cut stack LoRA on query and value alone cannot repair. Its vocabulary is optionally cut to
the tokens the task's training texts use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from lagless.errors import LaglessError
from lagless.kdlora.config import KDLoRAConfig
from lagless.kdlora.default_student import L3_NAME, default_student_path
from lagless.kdlora.lora import LoraSettings, apply_lora
from lagless.kdlora.models import default_model_path, load_model, quiet_transformers
from lagless.kdlora.sources import TextSplit
from lagless.kdlora.student import (
    check_same_family,
    default_student_layers,
    encoder_depth,
    parse_layers,
    student_from_layers,
)
from lagless.kdlora.tasks import TaskSpec
from lagless.kdlora.vocab_trim import trim_vocabulary

log = logging.getLogger(__name__)

STUDENT_BASE_DIR = "student_base"


@dataclass
class BuiltModel:
    model: object  # a transformers model, or a peft.PeftModel for the LoRA methods
    tokenizer: object
    name: str  # what the model was built from, for tables
    base_dir: str  # a folder holding the untrained base, for the memory probe and the adapter
    info: dict = field(default_factory=dict)
    lora: LoraSettings | None = None  # the settings LoRA was applied with (lora, kd-lora)


def lora_settings(config: KDLoRAConfig, *, train_pooler: bool = False) -> LoraSettings:
    targets = config.split_names(config.lora_targets)
    return LoraSettings(r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout,
                        targets=tuple(targets) if targets else None, train_pooler=train_pooler)


def display_name(name: str) -> str:
    """A short model name for tables: the bundled default by its name, a local folder by its own."""
    if name == default_model_path():
        return "all-MiniLM-L6-v2"
    return Path(name).name if Path(name).exists() else name


def _load(name: str, task: TaskSpec):
    return load_model(name, num_labels=task.num_labels, regression=task.is_regression,
                      label_names=task.label_names)


def _training_texts(train: TextSplit) -> list:
    if train.texts_b is None:
        return list(train.texts_a)
    return list(zip(train.texts_a, train.texts_b, strict=True))


def default_pretrained_student(config: KDLoRAConfig) -> str | None:
    """The converted paraphrase-MiniLM-L3-v2 when no student is named and the teacher is the
    bundled MiniLM (whose vocabulary it shares); None when a cut student is asked for (layers,
    ``--student-init base``), the teacher is another model, or the L3 package is missing."""
    if config.student_layers or config.student_init != "teacher":
        return None
    if config.model and config.model != default_model_path():
        return None
    return default_student_path()


def pair_task_advice(config: KDLoRAConfig, task: TaskSpec) -> str | None:
    """A warning for the default L3 student on a sentence-pair task, where it was measured far
    behind the layer-cut student (it was trained to embed sentences apart, not to read pairs)."""
    if config.student_model or not task.is_pair:
        return None
    return (f"note: {L3_NAME} (the default student) is weak on sentence pairs: on STS-B it reached "
            "61% of LoRA's score, the layer-cut student 96% (docs/benchmarks.md); --student-layers 0,2,4 "
            "trains the cut student")


def build_student(config: KDLoRAConfig, task: TaskSpec, train: TextSplit, run_dir: Path,
                  teacher_model, teacher_tokenizer) -> BuiltModel:
    """The kd-lora student before LoRA, saved under ``RUN/student_base`` so it can be reloaded."""
    info: dict = {}
    pretrained = config.student_model or default_pretrained_student(config)
    if pretrained:
        advice = pair_task_advice(config, task)
        if advice:
            log.warning(advice)
        student, tokenizer = _load(pretrained, task)
        name = config.student_model or L3_NAME
        info["student_model"] = name
    else:
        base = config.model or default_model_path()
        if config.student_init == "teacher":
            full, tokenizer = teacher_model, teacher_tokenizer
            source = f"fine-tuned {display_name(base)}"
        else:
            full, tokenizer = _load(base, task)
            source = display_name(base)
        layers = (parse_layers(config.student_layers) if config.student_layers
                  else default_student_layers(encoder_depth(full.config)))
        student = student_from_layers(full, layers).cpu()
        name = f"{source} layers {','.join(map(str, layers))}"
        info["student_layers"] = layers
        info["student_init"] = config.student_init
    check_same_family(teacher_model, student, strict=not config.allow_other_family)
    if config.trim_vocab:
        student, tokenizer, trim_info = trim_vocabulary(student, tokenizer, _training_texts(train),
                                                      progress=config.progress)
        info["vocabulary"] = trim_info
        name += f", vocab {trim_info['kept']}"
    base_dir = run_dir / STUDENT_BASE_DIR
    with quiet_transformers():
        student.save_pretrained(base_dir)
        tokenizer.save_pretrained(base_dir)
    return BuiltModel(student, tokenizer, name, str(base_dir), info)


def build_model(config: KDLoRAConfig, task: TaskSpec, train: TextSplit, run_dir: Path,
                teacher_model=None, teacher_tokenizer=None) -> BuiltModel:
    """The trainable model of ``config.method``."""
    if config.method == "kd-lora":
        if teacher_model is None:
            raise LaglessError("kd-lora needs the teacher model")
        built = build_student(config, task, train, run_dir, teacher_model, teacher_tokenizer)
    else:
        base = config.model or default_model_path()
        model, tokenizer = _load(base, task)
        built = BuiltModel(model, tokenizer, display_name(base), base)
    if config.method in ("lora", "kd-lora"):
        # a cut student's pooler reads another layer than it was trained on: it trains too
        built.lora = lora_settings(config, train_pooler="student_layers" in built.info)
        built.model = apply_lora(built.model, built.lora)
    return built
