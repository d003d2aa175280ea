"""GLUE metrics, computed with scikit-learn and SciPy (both come with the ``nlp`` extra).

Scores are fractions (accuracy 0.91, not 91). Degenerate inputs give 0.0 instead of NaN:
a correlation with a constant vector (all predictions or all labels equal) is reported as 0.0,
as is F1 when there is no positive example and no positive prediction (scikit-learn's
``matthews_corrcoef`` and ``f1_score(zero_division=0)`` conventions, extended to Pearson and
Spearman, where SciPy would return NaN with a warning).

scikit-learn and SciPy take about a second to import, so they are imported on first use.
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
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(labels, pred))


def f1_positive(pred: np.ndarray, labels: np.ndarray, positive: int = 1) -> float:
    """F1 of the positive class; 0.0 when there are no positives at all."""
    from sklearn.metrics import f1_score

    # labels= keeps the positive class known when neither side contains it
    return float(f1_score(labels, pred, labels=[positive], average="macro", zero_division=0))


def matthews_corr(pred: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Matthews correlation; 0.0 when either side is constant."""
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(labels, pred))


def _constant(x: np.ndarray) -> bool:
    # checked exactly: a correlation of a constant is undefined, and centring one can leave
    # rounding noise that SciPy would turn into a meaningless number
    return len(x) == 0 or bool(np.all(x == x[0]))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; 0.0 when either vector is constant."""
    from scipy.stats import pearsonr

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if _constant(x) or _constant(y) or len(x) < 2:
        return 0.0
    return float(np.clip(pearsonr(x, y)[0], -1.0, 1.0))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation with tied ranks averaged; 0.0 when either vector is constant."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if _constant(x) or _constant(y) or len(x) < 2:
        return 0.0
    return float(np.clip(spearmanr(x, y)[0], -1.0, 1.0))


_METRICS = {"accuracy": accuracy, "f1": f1_positive, "matthews_corr": matthews_corr,
            "pearson": pearson, "spearman": spearman}


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
    unknown = [name for name in task.metric_names if name not in _METRICS]
    if unknown:  # pragma: no cover - guarded by the TASKS table
        raise ValueError(f"unknown metric(s) {unknown}")
    return {name: _METRICS[name](pred, y) for name in task.metric_names}


def main_score(task: TaskSpec | str, metrics: dict[str, float]) -> float:
    """One number per task, the GLUE convention: mean of the task's metrics (STS-B, MRPC, QQP
    average two; the others have one)."""
    task = get_task(task)
    missing = [m for m in task.metric_names if m not in metrics]
    if missing:
        raise ValueError(f"metrics for {task.name} lack {missing}; got {sorted(metrics)}")
    return float(np.mean([metrics[m] for m in task.metric_names]))
