"""Shrink a WordPiece model's vocabulary to the tokens a task uses.

In a small encoder the word embeddings dominate: MiniLM-L6 spends 11.7M of its 22.7M
parameters on 30,522 rows, most of which a single task never produces. Dropping unused rows
changes nothing for the task's texts: WordPiece takes the longest vocabulary entry at each
position, and every entry it took is kept while the longer ones it skipped were absent anyway,
so those texts give the same tokens, the same vectors and the same logits. Other texts (a dev
set) may split into smaller pieces than before, never into [UNK] while single characters are
kept, so their scores can move slightly: trim with the training texts and measure on dev.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from lagless.errors import LaglessError

log = logging.getLogger(__name__)

_BATCH = 1024


def trim_vocabulary(
    model: nn.Module,
    tokenizer: Any,
    texts: Iterable[str | tuple[str, str]],
    *,
    keep_single_chars: bool = True,
    progress: bool = True,
) -> tuple[nn.Module, Any, dict[str, Any]]:
    """(trimmed model copy, trimmed tokenizer, info) keeping only the tokens ``texts`` need.

    ``texts`` holds strings or (first, second) pairs: the task's training texts. Special and
    added tokens are always kept; with ``keep_single_chars`` so are all one-character tokens
    and their ``##`` continuations, so unseen words fall back to characters instead of [UNK].
    The inputs are left unchanged. ``info`` = {"kept", "original", "unk_rate_on_texts", "texts"}.
    """
    backend = _wordpiece_backend(tokenizer)
    vocab: dict[str, int] = backend.get_vocab(with_added_tokens=True)
    unk_id = vocab.get(tokenizer.unk_token) if tokenizer.unk_token is not None else None
    used, counts = _token_ids_of(backend, texts, progress)
    if counts["items"] == 0:
        raise LaglessError("vocabulary trimming needs the task's training texts, and none were given")
    keep = set(used)
    keep.update(tokenizer.all_special_ids)
    keep.update(t["id"] for t in json.loads(backend.to_str())["added_tokens"])
    keep.update(_config_token_ids(model))
    if keep_single_chars:
        keep.update(i for tok, i in vocab.items() if len(tok.removeprefix("##")) == 1)
    kept = sorted(i for i in keep if i is not None)
    new_id = {old: new for new, old in enumerate(kept)}
    new_tokenizer = _rebuild_tokenizer(tokenizer, new_id)
    new_model = _slice_embeddings(model, kept, new_id)
    unk_rate = counts["unk"] / counts["tokens"] if counts["tokens"] else 0.0
    if unk_id is None:
        unk_rate = 0.0
    info = {
        "kept": len(kept),
        "original": len(vocab),
        "unk_rate_on_texts": unk_rate,
        "texts": counts["items"],
    }
    log.info("vocabulary trimmed from %d to %d tokens (UNK rate on the texts %.4f)",
             len(vocab), len(kept), unk_rate)
    return new_model, new_tokenizer, info


def _wordpiece_backend(tokenizer: Any) -> Any:
    """A copy of the fast tokenizer's backend, with truncation and padding off; WordPiece only."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not isinstance(backend.model, WordPiece):
        raise LaglessError(
            "vocabulary trimming supports WordPiece (BERT-family) tokenizers; drop --trim-vocab"
        )
    backend = Tokenizer.from_str(backend.to_str())
    backend.no_truncation()  # the training texts may be longer than the saved truncation length
    backend.no_padding()
    return backend


def _strings(texts: Iterable[str | tuple[str, str]]) -> Iterator[tuple[int, str]]:
    """(item index, text) for every text of every item; a pair contributes both texts."""
    for i, item in enumerate(texts):
        parts = (item,) if isinstance(item, str) else tuple(item)
        for part in parts:
            if not isinstance(part, str):
                raise LaglessError(
                    f"text {i} is {type(part).__name__}: expected strings or (text, text) pairs"
                )
            yield i, part


def _token_ids_of(backend: Any, texts: Iterable[Any], progress: bool) -> tuple[set[int], dict[str, int]]:
    """Every token id the texts produce (no special tokens), with item, token and UNK counts."""
    unk = backend.token_to_id(backend.model.unk_token)
    used: set[int] = set()
    counts = {"items": 0, "tokens": 0, "unk": 0}
    batch: list[str] = []

    def flush() -> None:
        for encoding in backend.encode_batch(batch, add_special_tokens=False):
            used.update(encoding.ids)
            counts["tokens"] += len(encoding.ids)
            counts["unk"] += encoding.ids.count(unk) if unk is not None else 0
        batch.clear()

    last = -1
    for i, text in tqdm(_strings(texts), desc="scanning vocabulary", unit="text",
                        disable=not progress):
        last = i
        batch.append(text)
        if len(batch) >= _BATCH:
            flush()
    flush()
    counts["items"] = last + 1
    return used, counts


def _config_token_ids(model: nn.Module) -> list[int]:
    """Token ids the model's config refers to (pad, bos, eos, ...), which must survive."""
    config = model.config
    return [v for k, v in config.to_dict().items() if k.endswith("_token_id") and isinstance(v, int)]


def _rebuild_tokenizer(tokenizer: Any, new_id: dict[int, int]) -> Any:
    """The same tokenizer (normaliser, pre-tokenizer, template, settings) over the kept tokens."""
    from transformers import AutoTokenizer

    data = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = data["model"]["vocab"]
    data["model"]["vocab"] = {
        tok: new_id[i] for tok, i in sorted(vocab.items(), key=lambda kv: kv[1]) if i in new_id
    }
    data["added_tokens"] = [{**t, "id": new_id[t["id"]]} for t in data["added_tokens"]]
    _remap_post_processor(data.get("post_processor"), new_id)
    if data.get("padding") and isinstance(data["padding"].get("pad_id"), int):
        data["padding"]["pad_id"] = new_id.get(data["padding"]["pad_id"], 0)
    with tempfile.TemporaryDirectory(prefix="lagless-vocab-") as tmp:
        tokenizer.save_pretrained(tmp)
        for stale in ("vocab.txt", "tokenizer.json"):
            (Path(tmp) / stale).unlink(missing_ok=True)
        (Path(tmp) / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
        (Path(tmp) / "vocab.txt").write_text(
            "".join(tok + "\n" for tok in data["model"]["vocab"]), encoding="utf-8"
        )
        new = AutoTokenizer.from_pretrained(tmp, local_files_only=True)
    with contextlib.suppress(AttributeError):
        new.name_or_path = tokenizer.name_or_path  # not the deleted temporary folder
    if len(new) != len(new_id):
        raise RuntimeError(f"rebuilt tokenizer has {len(new)} tokens, expected {len(new_id)}")
    return new


def _remap_post_processor(proc: dict[str, Any] | None, new_id: dict[int, int]) -> None:
    """Special-token ids baked into the post-processor ([CLS] ... [SEP]) follow the new ids."""
    if not proc:
        return
    for sub in proc.get("processors") or []:  # a Sequence of processors
        _remap_post_processor(sub, new_id)
    for spec in (proc.get("special_tokens") or {}).values():  # TemplateProcessing
        spec["ids"] = [new_id[i] for i in spec["ids"]]
    for key in ("sep", "cls"):  # BertProcessing / RobertaProcessing: [token, id]
        if isinstance(proc.get(key), list) and len(proc[key]) == 2:
            proc[key][1] = new_id[proc[key][1]]


def _slice_embeddings(model: nn.Module, kept: list[int], new_id: dict[int, int]) -> nn.Module:
    """A copy of ``model`` whose input (and tied output) embeddings hold only the kept rows."""
    model = copy.deepcopy(model)
    old = model.get_input_embeddings()
    rows = torch.tensor(kept, dtype=torch.long, device=old.weight.device)
    config = model.config
    pad = getattr(config, "pad_token_id", None)
    new = nn.Embedding(len(kept), old.embedding_dim,
                       padding_idx=new_id.get(pad) if isinstance(pad, int) else None,
                       device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(old.weight[rows])
    new.weight.requires_grad_(old.weight.requires_grad)
    output = model.get_output_embeddings()
    model.set_input_embeddings(new)
    if output is not None:
        with torch.no_grad():
            if output.weight is old.weight:
                output.weight = new.weight
            else:
                output.weight = nn.Parameter(output.weight[rows].clone())
            if getattr(output, "bias", None) is not None:
                output.bias = nn.Parameter(output.bias[rows].clone())
        output.out_features = len(kept)
    config.vocab_size = len(kept)
    for key, value in config.to_dict().items():
        if key.endswith("_token_id") and isinstance(value, int):
            setattr(config, key, new_id[value])
    return model
