"""Tokenized task data: a split tokenized once, batched with dynamic padding and an example ``index``.

The ``index`` in every batch is what keeps precomputed teacher logits aligned with a
shuffled loader: the trainer looks them up as ``teacher[batch["index"]]``. Reading the
splits is :mod:`lagless.kdlora.sources`' job.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from lagless.errors import LaglessError
from lagless.kdlora.sources import TextSplit
from lagless.kdlora.tasks import TaskSpec

__all__ = ["EncodedDataset", "encode_split", "make_loader", "sequence_lengths"]


class EncodedDataset(Dataset):
    """A split tokenized once; items are unpadded token lists plus ``labels`` and ``index``."""

    def __init__(self, task: TaskSpec, features: dict[str, list[list[int]]], labels: np.ndarray):
        lengths = {len(v) for v in features.values()}
        if "input_ids" not in features or lengths != {len(labels)}:
            raise ValueError("features need input_ids and one row per label")
        self.task = task
        self.features = features
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item: dict[str, Any] = {k: v[i] for k, v in self.features.items()}
        item["labels"] = self.labels[i].item()
        item["index"] = int(i)
        return item


def encode_split(
    split: TextSplit,
    tokenizer: Any,
    max_length: int = 128,
    *,
    progress: bool = False,
    chunk_size: int = 4096,
) -> EncodedDataset:
    """Tokenize every example once (truncated to ``max_length``, not padded)."""
    if max_length < 2:
        raise LaglessError(f"max_length must be at least 2 tokens, got {max_length}")
    features: dict[str, list[list[int]]] = {}
    starts = range(0, len(split), chunk_size)
    for start in tqdm(starts, desc="tokenizing", unit="chunk", disable=not progress):
        end = start + chunk_size
        pair = split.texts_b[start:end] if split.texts_b is not None else None
        enc = tokenizer(split.texts_a[start:end], pair, truncation=True, max_length=max_length)
        for key, rows in enc.items():
            features.setdefault(key, []).extend(rows)
    return EncodedDataset(split.task, features, split.labels)


class _PadCollator:
    """Pads each batch to its longest example (dynamic padding) and adds labels and index."""

    def __init__(self, pad_token_id: int, pad_token_type_id: int, left: bool, regression: bool):
        self.pad_values = {"input_ids": pad_token_id, "token_type_ids": pad_token_type_id,
                           "special_tokens_mask": 1}
        self.left = left
        self.label_dtype = torch.float32 if regression else torch.long

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(item["input_ids"]) for item in items)
        batch: dict[str, torch.Tensor] = {}
        for key in items[0]:
            if key in ("labels", "index"):
                continue
            pad = self.pad_values.get(key, 0)
            rows = []
            for item in items:
                fill = [pad] * (width - len(item[key]))
                rows.append(fill + item[key] if self.left else item[key] + fill)
            batch[key] = torch.tensor(rows, dtype=torch.long)
        batch["labels"] = torch.tensor([item["labels"] for item in items], dtype=self.label_dtype)
        batch["index"] = torch.tensor([item["index"] for item in items], dtype=torch.long)
        return batch


def make_loader(
    dataset: EncodedDataset,
    tokenizer: Any,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """Batches of tensors padded to the longest example; a seeded generator makes the
    shuffling order reproducible run to run."""
    if batch_size < 1:
        raise LaglessError(f"batch size must be at least 1, got {batch_size}")
    if tokenizer.pad_token_id is None:
        raise LaglessError("the tokenizer has no padding token: use an encoder tokenizer")
    collate = _PadCollator(
        pad_token_id=tokenizer.pad_token_id,
        pad_token_type_id=getattr(tokenizer, "pad_token_type_id", 0) or 0,
        left=getattr(tokenizer, "padding_side", "right") == "left",
        regression=dataset.task.is_regression,
    )
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      collate_fn=collate, drop_last=drop_last)


def sequence_lengths(dataset: EncodedDataset) -> np.ndarray:
    """Token count of every example (after truncation), e.g. to pick benchmark lengths."""
    return np.asarray([len(ids) for ids in dataset.features["input_ids"]], dtype=np.int64)
