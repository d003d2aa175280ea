"""Learning-curve PNGs from metrics.csv, drawn headless so they work on servers and in CI.

Uses matplotlib's Agg canvas directly (no pyplot), so importing this module never changes the
caller's matplotlib backend. PNGs are written atomically.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lagless.errors import LaglessError
from lagless.runs.atomic import atomic_write_bytes
from lagless.runs.metrics import read_metrics

__all__ = ["moving_average", "plot_comparison", "plot_returns"]

logger = logging.getLogger(__name__)

DEFAULT_KEY = "charts/episodic_return"


def moving_average(y: np.ndarray, window: int | None = None) -> np.ndarray:
    """Trailing mean over the last ``window`` points (fewer at the start); same length as ``y``.

    The default window is a tenth of the points, between 1 and 100.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        return y
    if window is None:
        window = min(100, max(1, y.size // 10))
    window = max(1, int(window))
    c = np.concatenate([[0.0], np.cumsum(y)])
    idx = np.arange(1, y.size + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def _curve(metrics_csv: str | os.PathLike[str], key: str) -> tuple[np.ndarray, np.ndarray]:
    cols = read_metrics(metrics_csv)
    if key not in cols:
        available = ", ".join(k for k in cols if k != "step") or "none"
        raise LaglessError(
            f"metrics file {metrics_csv} has no column {key!r} (available: {available}): pick "
            "one of those."
        )
    x, y = cols["step"], cols[key]
    ok = ~np.isnan(x) & ~np.isnan(y)
    if not ok.any():
        raise LaglessError(
            f"metrics file {metrics_csv} has no values for {key!r} yet: train longer (no "
            "episode has finished) or pick another metric."
        )
    order = np.argsort(x[ok], kind="stable")
    return x[ok][order], y[ok][order]


def _save(fig: Figure, out_png: str | os.PathLike[str]) -> Path:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=120)
    path = atomic_write_bytes(out_png, buf.getvalue())
    logger.debug("wrote plot %s", path)
    return path


def _label_axes(ax, key: str, title: str) -> None:
    ax.set_xlabel("agent step (summed over environments)")
    ax.set_ylabel(key.rsplit("/", 1)[-1].replace("_", " "))
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)


def plot_returns(
    metrics_csv: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    title: str = "",
    key: str = DEFAULT_KEY,
) -> Path:
    """One run's learning curve: raw points (faint) and their moving average; returns the PNG path."""
    x, y = _curve(metrics_csv, key)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    ax.plot(x, y, ".", color="tab:blue", alpha=0.25, markersize=3, label="raw")
    ax.plot(x, moving_average(y), color="tab:blue", linewidth=2, label="moving average")
    _label_axes(ax, key, title)
    ax.legend(loc="best")
    fig.tight_layout()
    return _save(fig, out_png)


def plot_comparison(
    curves: dict[str, str | os.PathLike[str]],
    out_png: str | os.PathLike[str],
    title: str = "",
    key: str = DEFAULT_KEY,
) -> Path:
    """Several runs' smoothed curves on one axes; ``curves`` maps legend label → metrics.csv."""
    if not curves:
        raise LaglessError("no runs given to compare: pass at least one metrics.csv.")
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for label, csv_path in curves.items():
        x, y = _curve(csv_path, key)
        ax.plot(x, moving_average(y), linewidth=2, label=str(label))
    _label_axes(ax, key, title)
    ax.legend(loc="best")
    fig.tight_layout()
    return _save(fig, out_png)
