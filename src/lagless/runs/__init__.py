"""Run folders: crash-safe checkpoints, resumable trainer state, metrics and learning-curve plots."""

from lagless.runs.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from lagless.runs.checkpoint import (
    checkpoint_step,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from lagless.runs.metrics import MetricsLogger, read_metrics
from lagless.runs.plots import moving_average, plot_comparison, plot_returns
from lagless.runs.training_state import (
    load_module_tensors,
    load_optimizer_tensors,
    module_tensors,
    optimizer_tensors,
    restore_rng,
    rng_tensors,
)

__all__ = [
    "MetricsLogger",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "checkpoint_step",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_module_tensors",
    "load_optimizer_tensors",
    "module_tensors",
    "moving_average",
    "optimizer_tensors",
    "plot_comparison",
    "plot_returns",
    "read_metrics",
    "restore_rng",
    "rng_tensors",
    "save_checkpoint",
]
