"""The training loop shared by all three methods: AdamW, linear warm-up and decay, per-epoch dev scores.

The only difference between methods here is the loss: the task loss for ``fft`` and ``lora``,
the KD loss against the teacher's logits (looked up by example index) for ``kd-lora``.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from tqdm.auto import tqdm

from lagless.errors import LaglessError
from lagless.kdlora.batching import EncodedDataset, make_loader
from lagless.kdlora.distill_loss import kd_loss, task_loss
from lagless.kdlora.metrics import compute_metrics, main_score
from lagless.kdlora.tasks import TaskSpec
from lagless.kdlora.teacher_outputs import teacher_logits
from lagless.runs import MetricsLogger

log = logging.getLogger(__name__)

MAX_GRAD_NORM = 1.0


def model_inputs(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The tensors a Hugging Face encoder takes, moved to ``device``."""
    names = ("input_ids", "attention_mask", "token_type_ids")
    return {k: batch[k].to(device) for k in names if k in batch}


def evaluate(model, datasets: dict[str, tuple[EncodedDataset, np.ndarray]], tokenizer, task: TaskSpec,
             *, batch_size: int, device: torch.device) -> dict[str, float]:
    """Dev metrics by GLUE convention; MNLI's two dev sets are prefixed ``matched_``/``mismatched_``.

    ``datasets`` maps a dev-set name to its encoded examples and their labels.
    """
    out: dict[str, float] = {}
    for name, (dataset, labels) in datasets.items():
        logits = teacher_logits(model, dataset, tokenizer, batch_size=batch_size, device=str(device))
        metrics = compute_metrics(task, logits.numpy(), labels)
        prefix = "" if name == "dev" else f"{name}_"
        out.update({prefix + k: v for k, v in metrics.items()})
        out[prefix + "score"] = main_score(task, metrics)
    if len(datasets) > 1:
        out["score"] = sum(out[f"{n}_score"] for n in datasets) / len(datasets)
    return out


def fit(model, tokenizer, train: EncodedDataset, dev: dict[str, tuple[EncodedDataset, np.ndarray]], task: TaskSpec, *,
        epochs: float, batch_size: int, lr: float, weight_decay: float, warmup: float, seed: int,
        device: torch.device, metrics: MetricsLogger, teacher: torch.Tensor | None = None,
        temperature: float = 2.0, alpha: float = 0.5, progress: bool = True) -> dict[str, float]:
    """Train ``model`` in place; returns the dev metrics after the last epoch."""
    loader = make_loader(train, tokenizer, batch_size, shuffle=True, seed=seed)
    total = max(1, math.ceil(epochs * len(loader)))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    warm = int(warmup * total)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / max(1, warm) if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    if teacher is not None:
        teacher = teacher.to(device)
    model.to(device)
    step, scores = 0, {}
    bar = tqdm(total=total, desc="training", unit="step", disable=not progress, dynamic_ncols=True)
    while step < total:
        model.train()
        for batch in loader:
            logits = model(**model_inputs(batch, device)).logits
            labels = batch["labels"].to(device)
            if teacher is not None:
                loss = kd_loss(logits, teacher[batch["index"].to(device)], labels,
                               temperature=temperature, alpha=alpha, regression=task.is_regression)
            else:
                loss = task_loss(logits, labels, regression=task.is_regression)
            if not torch.isfinite(loss):
                raise LaglessError(f"the training loss became {loss.item()} at step {step}: "
                                   "lower --lr or check the labels")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()
            schedule.step()
            step += 1
            bar.update(1)
            if step % 10 == 0 or step == total:
                metrics.log(step, {"losses/train": loss.item(), "charts/lr": schedule.get_last_lr()[0]})
                bar.set_postfix(loss=f"{loss.item():.3f}")
            if step >= total:
                break
        scores = evaluate(model, dev, tokenizer, task, batch_size=2 * batch_size, device=device)
        metrics.log(step, {f"eval/{k}": v for k, v in scores.items()})
        bar.set_postfix(loss=f"{loss.item():.3f}", dev=f"{scores['score']:.3f}")
        log.info("step %d: dev %s", step, scores)
    bar.close()
    return scores
