"""GLUE metrics in plain numpy, so that evaluation needs neither scikit-learn nor scipy.

Scores are fractions (accuracy 0.91, not 91). Degenerate inputs give 0.0 instead of NaN:
a correlation with a constant vector (all predictions or all labels equal) is reported as 0.0,
as is F1 when there is no positive example and no positive prediction, the same convention
as scikit-learn's ``matthews_corrcoef`` and ``f1_score(zero_division=0)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lagless.errors import LaglessError
from lagless.kdlora.tasks import TaskSpec, get_task

__all__ = [
    "accuracy",
    "compute_metrics",
    "f1_positive",
    "main_score",
    "matthews_corr",
    "pearson",
    "spearman",
]


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(pred == labels))


def f1_positive(pred: np.ndarray, labels: np.ndarray, positive: int = 1) -> float:
    """F1 of the positive class; 0.0 when there are no positives at all."""
    tp = np.sum((pred == positive) & (labels == positive))
    fp = np.sum((pred == positive) & (labels != positive))
    fn = np.sum((pred != positive) & (labels == positive))
    denom = 2 * tp + fp + fn
    return float(2 * tp / denom) if denom else 0.0


def matthews_corr(pred: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Matthews correlation (Gorodkin's R_K); 0.0 when either side is constant."""
    classes = np.union1d(pred, labels)
    t = np.searchsorted(classes, labels)
    p = np.searchsorted(classes, pred)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.float64)
    np.add.at(confusion, (t, p), 1.0)
    t_sum, p_sum = confusion.sum(axis=1), confusion.sum(axis=0)
    n, correct = confusion.sum(), np.trace(confusion)
    cov_tp = correct * n - t_sum @ p_sum
    cov_pp = n * n - p_sum @ p_sum
    cov_tt = n * n - t_sum @ t_sum
    if cov_pp * cov_tt == 0:
        return 0.0
    return float(cov_tp / np.sqrt(cov_tt * cov_pp))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; 0.0 when either vector is constant."""
    if len(x) == 0 or np.all(x == x[0]) or np.all(y == y[0]):
        return 0.0  # checked exactly: centring a constant can leave rounding noise
    x = x.astype(np.float64) - x.mean()
    y = y.astype(np.float64) - y.mean()
    denom = np.sqrt((x @ x) * (y @ y))
    if denom == 0:
        return 0.0
    return float(np.clip((x @ y) / denom, -1.0, 1.0))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their mean rank (scipy's ``rankdata(method='average')``)."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation with tied ranks averaged; 0.0 when either vector is constant."""
    return pearson(_average_ranks(x), _average_ranks(y))


def compute_metrics(task: TaskSpec | str, predictions: Any, labels: Any) -> dict[str, float]:
    """The task's GLUE metrics from model outputs.

    ``predictions`` are logits (N, C) for classification (1-D class ids work too) or scores
    (N,) / (N, 1) for regression; ``labels`` are class ids or scores, shape (N,).
    MNLI: call once per dev split (matched, mismatched); each gives "accuracy".
    """
    task = get_task(task)
    pred, y = _as_numpy(predictions), _as_numpy(labels).reshape(-1)
    if task.is_regression or pred.ndim == 2:
        if pred.ndim == 2 and task.is_regression and pred.shape[1] != 1:
            raise ValueError(f"regression predictions must be (N,) or (N, 1), got {pred.shape}")
        if np.issubdtype(pred.dtype, np.floating) and not np.all(np.isfinite(pred)):
            raise LaglessError(
                "model outputs contain NaN or inf: training diverged; lower the learning rate"
            )
    if task.is_regression:
        pred = pred.reshape(-1)
    elif pred.ndim == 2:
        pred = pred.argmax(axis=1)
    if pred.ndim != 1 or pred.shape[0] != y.shape[0]:
        raise ValueError(f"predictions {pred.shape} do not match labels {y.shape}")
    if y.shape[0] == 0:
        raise LaglessError("cannot compute metrics on zero examples")

    out: dict[str, float] = {}
    for name in task.metric_names:
        if name == "accuracy":
            out[name] = accuracy(pred, y)
        elif name == "f1":
            out[name] = f1_positive(pred, y)
        elif name == "matthews_corr":
            out[name] = matthews_corr(pred, y)
        elif name == "pearson":
            out[name] = pearson(pred, y)
        elif name == "spearman":
            out[name] = spearman(pred, y)
        else:  # pragma: no cover - guarded by the TASKS table
            raise ValueError(f"unknown metric {name!r}")
    return out


def main_score(task: TaskSpec | str, metrics: dict[str, float]) -> float:
    """One number per task, the GLUE convention: mean of the task's metrics (STS-B, MRPC, QQP
    average two; the others have one)."""
    task = get_task(task)
    missing = [m for m in task.metric_names if m not in metrics]
    if missing:
        raise ValueError(f"metrics for {task.name} lack {missing}; got {sorted(metrics)}")
    return float(np.mean([metrics[m] for m in task.metric_names]))
