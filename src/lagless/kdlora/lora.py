"""LoRA on an encoder classifier with PEFT: apply, count, merge for inference, save the adapter.

The classification head is new for every task, so it trains in full (PEFT's
``modules_to_save``) while only the low-rank adapters train inside the encoder; so does an
untrained pooler (``untrained_pooler_names``), and the pooler of a student cut from the
teacher (``LoraSettings.train_pooler``).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from lagless.config import option
from lagless.errors import LaglessError
from lagless.kdlora.models import (
    classifier_module_names,
    linear_layers,
    lora_target_modules,
    matches_target,
    pooler_names,
    quiet_transformers,
    untrained_pooler_names,
    unwrap_model,
)


@dataclass
class LoraSettings:
    """LoRA hyper-parameters; the defaults are the KD-LoRA paper's."""

    r: int = option(8, "LoRA rank (the paper sweeps 8..64)")
    alpha: float = option(16.0, "LoRA scaling numerator (lora_alpha); the update is scaled by alpha/r")
    dropout: float = option(0.05, "dropout on the LoRA input")
    targets: tuple[str, ...] | None = option(
        None, "module names to wrap (default: the family's attention query and value)"
    )
    train_pooler: bool = option(
        False, "train the encoder's pooler with the head even if it was trained (a student cut "
               "from the teacher: its pooler now reads another layer)"
    )

    def __post_init__(self) -> None:
        if int(self.r) < 1:
            raise LaglessError(f"--lora-r must be at least 1, got {self.r}")
        if not self.alpha > 0:
            raise LaglessError(f"--lora-alpha must be positive, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise LaglessError(f"--lora-dropout must be in [0, 1), got {self.dropout}")
        if isinstance(self.targets, str):
            self.targets = tuple(t.strip() for t in self.targets.split(",") if t.strip())
        elif self.targets is not None:
            self.targets = tuple(self.targets)


def apply_lora(model: nn.Module, settings: LoraSettings) -> Any:
    """Wrap ``model`` in a PEFT ``PeftModel`` (sequence classification) with LoRA adapters.

    PEFT injects the adapters into ``model`` in place; keep a deep copy first if the plain
    model is still needed. Base weights are frozen; adapters and the head train.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    targets = lora_target_modules(model, list(settings.targets) if settings.targets else None)
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=int(settings.r),
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        modules_to_save=classifier_module_names(model)
        + (pooler_names(model) if settings.train_pooler else untrained_pooler_names(model)),
    )
    with _peft_quiet():
        return get_peft_model(model, config)


def expected_lora_parameters(model: nn.Module, targets: list[str] | tuple[str, ...], r: int) -> int:
    """r * (in_features + out_features) summed over the targeted linear layers (A and B matrices)."""
    head = tuple(classifier_module_names(model))
    return sum(
        r * (layer.in_features + layer.out_features)
        for name, layer in linear_layers(model).items()
        if name.split(".")[0] not in head and any(matches_target(name, t) for t in targets)
    )


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts, each shared tensor counted once.

    For a PeftModel the total is the base model plus the adapters and the trained head copy;
    the frozen original head that PEFT keeps only for switching adapters is left out, so the
    total is what the merged model plus adapters hold.
    """
    total = trainable = 0
    seen: set[int] = set()
    for name, param in model.named_parameters():
        if id(param) in seen or ".original_module." in f".{name}.":
            continue
        seen.add(id(param))
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return total, trainable


def merge_lora(peft_model: Any) -> nn.Module:
    """A plain transformers model with the adapters folded into the weights (for inference).

    Works on a copy, so the PeftModel stays usable (for saving its adapter, say).
    """
    if unwrap_model(peft_model) is peft_model:
        return peft_model  # nothing to merge
    return copy.deepcopy(peft_model).merge_and_unload()


def save_adapter(peft_model: Any, directory: str | Path) -> Path:
    """Write the adapter in PEFT's own format (``adapter_config.json``, ``adapter_model.safetensors``)."""
    if unwrap_model(peft_model) is peft_model:
        raise LaglessError("this model has no LoRA adapter to save")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(directory), safe_serialization=True)
    return directory


def load_adapter(base_model: nn.Module, directory: str | Path) -> Any:
    """A PeftModel from a base model and an adapter folder written by ``save_adapter``."""
    from peft import PeftModel

    directory = Path(directory)
    if not (directory / "adapter_config.json").is_file():
        raise LaglessError(f"{directory} holds no LoRA adapter (no adapter_config.json)")
    with quiet_transformers(), _peft_quiet():
        return PeftModel.from_pretrained(base_model, str(directory))


@contextlib.contextmanager
def _peft_quiet() -> Iterator[None]:
    """PEFT calls a transformers API deprecated in v5; that warning is not the user's business."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        yield
