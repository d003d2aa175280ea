"""Training metrics that survive crashes and resumes: a wide CSV (the source of truth) + TensorBoard.

``RUN/metrics.csv`` has a ``step`` column and one column per metric name. Every row is flushed
as it is written, so a SIGKILL loses at most the row being written; a partial last line is
dropped when the file is read back. Resuming from a checkpoint drops the rows logged after it.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from lagless.errors import LaglessError
from lagless.runs.atomic import atomic_write_text

__all__ = ["METRICS_FILE", "TB_DIR", "MetricsLogger", "read_metrics"]

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.csv"
TB_DIR = "tb"


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a metrics CSV; a last line cut short by a kill is dropped."""
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        cut = text.rfind("\n")
        logger.warning("dropping a partial last line of %s (interrupted write)", path)
        text = text[: cut + 1] if cut >= 0 else ""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if not rows:
        return [], []
    return rows[0], rows[1:]


def _to_csv(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow((row + [""] * len(header))[: len(header)])
    return buf.getvalue()


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    return repr(value)


class MetricsLogger:
    """Append scalar metrics to ``RUN/metrics.csv`` and (optionally) TensorBoard ``RUN/tb``.

    ``resume_step``: keep the existing CSV but drop rows with ``step > resume_step`` and tell
    TensorBoard to purge events after it. Without it, an existing metrics.csv is replaced
    (a warning is logged) and old TensorBoard events are purged from step 0.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        resume_step: int | None = None,
        tensorboard: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.run_dir / METRICS_FILE
        self._header: list[str] = []
        purge_step: int | None = None
        if resume_step is not None:
            if resume_step < 0:
                raise ValueError(f"resume_step must be >= 0, got {resume_step}")
            purge_step = resume_step + 1
            if self.csv_path.exists():
                self._resume_csv(resume_step)
        elif self.csv_path.exists():
            logger.warning("replacing existing %s (not resuming)", self.csv_path)
            purge_step = 0 if (self.run_dir / TB_DIR).exists() else None
        mode = "a" if self._header else "w"
        self._open(mode)
        self._closed = False
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(
                log_dir=str(self.run_dir / TB_DIR), purge_step=purge_step, flush_secs=10
            )

    def _resume_csv(self, resume_step: int) -> None:
        header, rows = _read_rows(self.csv_path)
        if not header:
            return
        if header[0] != "step":
            raise LaglessError(
                f"{self.csv_path} does not start with a 'step' column: move it away and resume "
                "again."
            )
        kept = []
        for row in rows:
            try:
                step = float(row[0])
            except (ValueError, IndexError):
                logger.warning("dropping unreadable row %r of %s", row, self.csv_path)
                continue
            if step <= resume_step:
                kept.append(row)
        dropped = len(rows) - len(kept)
        if dropped:
            logger.info("dropped %d metric rows after step %d", dropped, resume_step)
        atomic_write_text(self.csv_path, _to_csv(header, kept))
        self._header = header

    @property
    def columns(self) -> list[str]:
        """The CSV header so far (``step`` first)."""
        return list(self._header)

    def log(self, step: int, values: dict[str, Any]) -> None:
        """Write one row: ``step`` plus ``values`` (floats; NaN and missing metrics are empty)."""
        if self._closed:
            raise RuntimeError("MetricsLogger.log called after close()")
        step = int(step)
        clean: dict[str, float] = {}
        for name, value in values.items():
            if not isinstance(name, str) or not name or name == "step":
                raise ValueError(f"invalid metric name {name!r}")
            clean[name] = float(value)
        known = set(self._header)
        new = [k for k in clean if k not in known]
        if not self._header:
            self._header = ["step", *new]
            self._writer.writerow(self._header)
        elif new:
            self._grow_header(new)
        self._writer.writerow([str(step)] + [_fmt(clean.get(k)) for k in self._header[1:]])
        self._file.flush()
        if self._tb is not None:
            for name, value in clean.items():
                if not math.isnan(value):
                    self._tb.add_scalar(name, value, step)

    def _grow_header(self, new: list[str]) -> None:
        self._file.close()
        _, rows = _read_rows(self.csv_path)
        self._header = self._header + new
        atomic_write_text(self.csv_path, _to_csv(self._header, rows))
        self._open("a")

    def _open(self, mode: str) -> None:
        # Held open for the logger's lifetime (closed in close()), so no `with` block.
        self._file = open(  # noqa: SIM115
            self.csv_path, mode, newline="", encoding="utf-8", buffering=1
        )
        self._writer = csv.writer(self._file, lineterminator="\n")

    def flush(self) -> None:
        if not self._closed:
            self._file.flush()
            if self._tb is not None:
                self._tb.flush()

    def close(self) -> None:
        """Flush and close the CSV and TensorBoard writer; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self):  # returns self (typing.Self needs Python 3.11)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_metrics(csv_path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Columns of a metrics CSV as float arrays (empty cells → NaN), ``step`` included."""
    path = Path(csv_path)
    if not path.is_file():
        raise LaglessError(
            f"metrics file {path} does not exist: check the run folder path (it should contain "
            "metrics.csv)."
        )
    header, rows = _read_rows(path)
    if not header:
        raise LaglessError(
            f"metrics file {path} is empty: the run logged nothing yet; train longer or pick "
            "another run."
        )
    data = np.full((len(rows), len(header)), np.nan, dtype=np.float64)
    for i, row in enumerate(rows):
        if len(row) > len(header):
            raise LaglessError(
                f"metrics file {path} is corrupt (row {i + 2} has more cells than the header): "
                "fix or delete that row."
            )
        for j, cell in enumerate(row):
            if cell == "":
                continue
            try:
                data[i, j] = float(cell)
            except ValueError:
                raise LaglessError(
                    f"metrics file {path} is corrupt (row {i + 2}, column {header[j]!r} holds "
                    f"{cell!r}): fix or delete that row."
                ) from None
    return {name: data[:, j].copy() for j, name in enumerate(header)}
