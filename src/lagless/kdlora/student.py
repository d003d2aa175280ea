"""Make a KD-LoRA student by keeping a subset of the teacher's layers (DistilBERT's recipe).

DistilBERT initialised its student from every other layer of BERT; doing the same from any
encoder gives a same-family, same-tokenizer student when no ready-made small model exists
offline (the packaged MiniLM-L6 gives a 3-layer student this way).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

from torch import nn

from lagless.errors import LaglessError
from lagless.kdlora.models import model_family, unwrap_model

log = logging.getLogger(__name__)


def parse_layers(text: str) -> list[int]:
    """``"0,2,4"`` -> ``[0, 2, 4]``; only the syntax is checked here, ranges by the model."""
    parts = [p.strip() for p in str(text).split(",")]
    if not text.strip() or any(not p.lstrip("-").isdigit() for p in parts):
        raise LaglessError(
            f"--student-layers {text!r}: expected comma-separated layer numbers such as 0,2,4"
        )
    return [int(p) for p in parts]


def default_student_layers(num_layers: int) -> list[int]:
    """Every other layer from the first (0,2,4 of 6): DistilBERT's initialisation."""
    if num_layers < 1:
        raise LaglessError(f"the teacher has {num_layers} layers: nothing to build a student from")
    return list(range(0, num_layers, 2))


def encoder_depth(config: Any) -> int:
    """Encoder depth; DistilBERT calls it ``n_layers`` (aliased as ``num_hidden_layers``)."""
    for name in ("num_hidden_layers", "n_layers"):
        if hasattr(config, name):
            return int(getattr(config, name))
    raise LaglessError(f"cannot tell how many layers a {config.model_type} model has")


def _layer_list(model: nn.Module, depth: int) -> tuple[nn.Module, str]:
    """(parent module, attribute) of the ``ModuleList`` holding the encoder's ``depth`` layers."""
    candidates = [
        (name, module) for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) == depth
    ]
    preferred = [c for c in candidates if c[0].endswith(".layer") or c[0].endswith(".layers")]
    chosen = (preferred or candidates)[:1]
    if not chosen:
        raise LaglessError(f"cannot find the encoder layers of {type(model).__name__}")
    name = chosen[0][0]
    parent_name, _, attr = name.rpartition(".")
    return model.get_submodule(parent_name) if parent_name else model, attr


def _check_layers(layers: Sequence[int], depth: int) -> list[int]:
    spec = ",".join(str(i) for i in layers)
    if not layers:
        raise LaglessError("--student-layers is empty: give at least one layer, such as 0,2,4")
    bad = [i for i in layers if not 0 <= i < depth]
    if bad:
        raise LaglessError(
            f"--student-layers {spec}: the teacher has {depth} layers (0..{depth - 1})"
        )
    if list(layers) != sorted(set(layers)):
        raise LaglessError(f"--student-layers {spec}: list each layer once, in increasing order")
    return list(layers)


def student_from_layers(teacher_model: nn.Module, layers: Sequence[int]) -> nn.Module:
    """A copy of the teacher keeping only ``layers`` of its encoder (embeddings, pooler, head kept).

    The config's depth is updated, so ``save_pretrained``/``from_pretrained`` round-trip. The
    teacher is left untouched.
    """
    if unwrap_model(teacher_model) is not teacher_model:
        raise LaglessError("the teacher carries LoRA adapters: merge them (merge_lora) first")
    depth = encoder_depth(teacher_model.config)
    keep = _check_layers(layers, depth)
    student = copy.deepcopy(teacher_model)
    parent, attr = _layer_list(student, depth)
    old = getattr(parent, attr)
    new = nn.ModuleList([old[i] for i in keep])
    for new_index, layer in enumerate(new):
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = new_index  # cache bookkeeping indexes the new stack
    setattr(parent, attr, new)
    student.config.num_hidden_layers = len(keep)  # DistilBERT maps this onto n_layers
    _trim_per_layer_lists(student.config, keep, depth)
    log.info("student keeps teacher layers %s of %d", keep, depth)
    return student


def _trim_per_layer_lists(config: Any, keep: Sequence[int], depth: int) -> None:
    """Config lists with one entry per layer (e.g. ``layer_types``) must shrink with the stack."""
    for key, value in list(vars(config).items()):
        if isinstance(value, list) and len(value) == depth and key.startswith("layer"):
            setattr(config, key, [value[i] for i in keep])


def check_same_family(teacher: nn.Module, student: nn.Module, *, strict: bool = True) -> None:
    """Refuse (or, with ``strict=False``, warn about) a student from another model family.

    Vocabulary sizes must match in any case: the trainer feeds the teacher and the student the
    same token ids, which only means the same text when they share a tokenizer. Check before
    trimming the student's vocabulary (trimming changes ids but keeps the token strings).
    """
    t_family, s_family = model_family(teacher), model_family(student)
    if t_family != s_family:
        message = (
            f"student is {s_family} but the teacher is {t_family}: KD-LoRA needs a student of the "
            "teacher's family; pass --allow-other-family to try anyway"
        )
        if strict:
            raise LaglessError(message)
        log.warning(message)
    t_vocab = getattr(unwrap_model(teacher).config, "vocab_size", None)
    s_vocab = getattr(unwrap_model(student).config, "vocab_size", None)
    if t_vocab != s_vocab:
        raise LaglessError(
            f"the student's vocabulary has {s_vocab} tokens and the teacher's {t_vocab}: teacher "
            "and student must share a tokenizer; pick a student made for the teacher's tokenizer"
        )
