"""Text task data sources: read one split of a task from local GLUE files, any CSV/TSV/JSONL
table, or the Hugging Face hub, into a :class:`TextSplit` (texts and labels).

Tokenizing and batching a split is :mod:`lagless.kdlora.batching`' job.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lagless.errors import LaglessError
from lagless.kdlora.tasks import TaskSpec, get_task

__all__ = ["TextSplit", "default_glue_dir", "load_split"]

logger = logging.getLogger(__name__)

GLUE_DIR_ENV = "LAGLESS_GLUE_DIR"
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")

# (where, [text..., label]) with `where` naming the file and line for error messages.
_Record = tuple[str, list[Any]]


@dataclass
class TextSplit:
    """One split of a task: texts (a second list for sentence pairs) and labels.

    ``labels`` are int64 class ids, or float32 scores for regression.
    """

    task: TaskSpec
    texts_a: list[str]
    texts_b: list[str] | None
    labels: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts_a)


# --------------------------------------------------------------------------- GLUE file layouts


@dataclass(frozen=True)
class _GlueLayout:
    """Where texts and label sit in a GLUE task file.

    A file with a header row is read by column name: each of the task's own columns (its HF
    ``text_columns`` and "label") may also appear under one of its ``aliases`` (the names of
    the official GLUE file or of a converted copy), in any order, any case. ``positions``
    (0-based, -1 = last; texts then label) read a file that has no header row.
    """

    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    positions: tuple[int, ...] | None = None


_GLUE_LAYOUTS: dict[str, _GlueLayout] = {
    "cola": _GlueLayout(positions=(3, 1)),  # no header: source, label, original label, sentence
    "sst2": _GlueLayout(),
    "mrpc": _GlueLayout({"sentence1": ("#1 String",), "sentence2": ("#2 String",),
                         "label": ("Quality",)}),
    "qqp": _GlueLayout({"label": ("is_duplicate",)}),
    # The official file has a header; the local copy has none (texts in columns 7 and 8).
    "stsb": _GlueLayout({"label": ("score",)}, positions=(7, 8, -1)),
    "mnli": _GlueLayout({"premise": ("sentence1",), "hypothesis": ("sentence2",),
                         "label": ("gold_label",)}),
    "qnli": _GlueLayout(),
    "rte": _GlueLayout(),
    "wnli": _GlueLayout(),
}

_GLUE_FILES = {
    "train": "train.tsv",
    "validation": "dev.tsv",
    "validation_matched": "dev_matched.tsv",
    "validation_mismatched": "dev_mismatched.tsv",
}

_SPLIT_ALIASES = {
    "train": "train",
    "dev": "validation",
    "val": "validation",
    "validation": "validation",
    "dev_matched": "validation_matched",
    "matched": "validation_matched",
    "validation_matched": "validation_matched",
    "dev_mismatched": "validation_mismatched",
    "mismatched": "validation_mismatched",
    "validation_mismatched": "validation_mismatched",
}


def _canonical_split(task: TaskSpec, split: str) -> str:
    """HF split name for ``split``; "dev" means the first dev split (MNLI: matched)."""
    canon = _SPLIT_ALIASES.get(split.strip().lower().replace("-", "_"))
    if canon == "validation" and "validation" not in task.dev_splits:
        canon = task.dev_splits[0]
    if canon is None or (canon != "train" and canon not in task.dev_splits):
        raise LaglessError(
            f"unknown split {split!r} for {task.name}: choose train or "
            f"{' / '.join(task.dev_splits)} (or dev)"
        )
    return canon


def default_glue_dir() -> Path | None:
    """The local GLUE folder: ``$LAGLESS_GLUE_DIR``, else the first ``shared/data/glue`` found
    walking up from the current folder or from this package (CI keeps ``../shared`` beside
    the checkout); None when there is none."""
    env = os.environ.get(GLUE_DIR_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise LaglessError(f"{GLUE_DIR_ENV}={env} is not a folder: fix it or unset it")
        return path
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            candidate = folder / "shared" / "data" / "glue"
            if candidate.is_dir():
                return candidate
    return None


def _glue_task_file(root: Path, task: TaskSpec, split: str) -> Path | None:
    """``root/<TaskFolder>/<file>``; ``root`` may also be the task folder itself."""
    name = _GLUE_FILES[split]
    for folder in (root / task.glue_folder, root / task.name, root):
        if (folder / name).is_file():
            return folder / name
    return None


# --------------------------------------------------------------------------- reading tables


def _read_delimited(path: Path, delimiter: str, quoting: int) -> list[tuple[int, list[str]]]:
    """Non-blank rows with their line numbers."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
            return [(reader.line_num, row) for row in reader if "".join(row).strip()]
    except (UnicodeDecodeError, csv.Error) as e:
        raise LaglessError(f"cannot read {path}: {e}; expected a UTF-8 table") from e
    except OSError as e:
        raise LaglessError(f"cannot read {path}: {e.strerror}") from e


def _pick(path: Path, rows: list[tuple[int, list[str]]], columns: Sequence[int]) -> list[_Record]:
    need = max(c + 1 if c >= 0 else -c for c in columns)
    out = []
    for line, row in rows:
        if len(row) < need:
            raise LaglessError(
                f"{path}, line {line}: expected at least {need} columns, found "
                f"{len(row)}; is this the right file for the task?"
            )
        out.append((f"{path}, line {line}", [row[c] for c in columns]))
    return out


def _missing_columns(path: Path | str, wanted: Sequence[str], available: Sequence[str]) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        raise LaglessError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; available columns: "
            f"{', '.join(map(repr, available))}. Choose them with text_columns / label_column"
        )


def _by_header(
    path: Path, rows: list[tuple[int, list[str]]], wanted: Sequence[str]
) -> list[_Record]:
    """Records from a table whose first row names its columns."""
    if not rows:
        return []
    header = [c.strip() for c in rows[0][1]]
    _missing_columns(path, wanted, header)
    return _pick(path, rows[1:], [header.index(c) for c in wanted])


def _glue_columns(header: Sequence[str], wanted: Sequence[str], layout: _GlueLayout) -> list[int] | None:
    """Positions of the ``wanted`` columns (or their aliases) in a header row; None if one lacks."""
    where = {}
    for i, name in enumerate(header):
        where.setdefault(name.strip().lower(), i)
    columns = []
    for name in wanted:
        found = [where[n.lower()] for n in (name, *layout.aliases.get(name, ())) if n.lower() in where]
        if not found:
            return None
        columns.append(found[0])
    return columns


def _is_data_row(task: TaskSpec, row: Sequence[str], positions: Sequence[int]) -> bool:
    """Whether a first row is an example of the headerless layout (and not a header)."""
    if len(row) < max(c + 1 if c >= 0 else -c for c in positions):
        return False
    try:
        _parse_label(task, row[positions[-1]], "")
    except LaglessError:
        return False
    return True


def _layout_mismatch(path: Path, task: TaskSpec, wanted: Sequence[str], header: Sequence[str],
                     layout: _GlueLayout) -> LaglessError:
    """One line: which columns the task needs and what the file's first row holds instead."""
    needs = ", ".join(" or ".join((name, *layout.aliases.get(name, ()))) for name in wanted)
    headerless = ""
    if layout.positions is not None:
        *texts, label = [c + 1 for c in layout.positions]
        where = "the last column" if label == 0 else f"column {label}"
        headerless = (f" nor GLUE's headerless layout (text in column {' and '.join(map(str, texts))}"
                      f", label in {where})")
    shown = [c.strip()[:24] for c in header[:10]] + (["..."] if len(header) > 10 else [])
    return LaglessError(
        f"{path} matches neither a header with the {task.name} columns ({needs}){headerless}; "
        f"its first row holds {', '.join(map(repr, shown))}. Name the columns with "
        "--text-columns and --label-column"
    )


def _read_tsv(
    path: Path, task: TaskSpec, wanted: Sequence[str], glue_layout: bool
) -> list[_Record]:
    """Records from a tab-separated file, GLUE style (no quoting: GLUE text has stray quotes).

    Columns are found by name in the header row. With ``glue_layout`` a column may also go by
    its name in the task's GLUE file (MNLI's gold_label, MRPC's "#1 String", ...), and a task
    with a headerless GLUE layout (CoLA, the local STS-B) is read by position when the first
    row is an example; any other file is refused with one line that says what was expected.
    """
    rows = _read_delimited(path, "\t", csv.QUOTE_NONE)
    if not rows or not glue_layout:
        return _by_header(path, rows, wanted)
    layout = _GLUE_LAYOUTS[task.name]
    header = rows[0][1]
    columns = _glue_columns(header, wanted, layout)
    if columns is not None:
        return _pick(path, rows[1:], columns)
    if layout.positions is not None and _is_data_row(task, header, layout.positions):
        return _pick(path, rows, layout.positions)
    raise _layout_mismatch(path, task, wanted, header, layout)


def _read_jsonl(path: Path, wanted: Sequence[str]) -> list[_Record]:
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}, line {line_no}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise LaglessError(f"{where}: not valid JSON ({e.msg})") from e
                if not isinstance(obj, dict):
                    raise LaglessError(f"{where}: expected a JSON object per line")
                _missing_columns(where, wanted, list(obj))
                out.append((where, [obj[c] for c in wanted]))
    except UnicodeDecodeError as e:
        raise LaglessError(f"cannot read {path}: {e}; expected UTF-8 JSON lines") from e
    except OSError as e:
        raise LaglessError(f"cannot read {path}: {e.strerror}") from e
    return out


def _read_table(path: Path, wanted: Sequence[str]) -> list[_Record]:
    """Records from a CSV (standard quoting) or JSONL table with named columns."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path, wanted)
    if suffix == ".csv":
        return _by_header(path, _read_delimited(path, ",", csv.QUOTE_MINIMAL), wanted)
    raise LaglessError(f"{path}: unsupported file type; use one of {', '.join(TABLE_SUFFIXES)}")


def _read_hub(task: TaskSpec, split: str) -> list[_Record]:
    try:
        import datasets  # optional and heavy: imported only when needed
    except ImportError as e:
        raise LaglessError(
            f"no local GLUE files for {task.name} and the 'datasets' package is missing: "
            "pip install datasets, or pass --data DIR"
        ) from e
    try:
        table = datasets.load_dataset("nyu-mll/glue", task.name, split=split)
    except Exception as e:  # network, cache or hub errors all mean the same to the user
        raise LaglessError(
            f"cannot load glue/{task.name} {split} from the Hugging Face hub ({e}); "
            "pass --data DIR with local GLUE files"
        ) from e
    wanted = [*task.text_columns, "label"]
    columns = table.column_names
    _missing_columns(f"glue/{task.name}", wanted, columns)
    return [
        (f"glue/{task.name} {split} row {i}", [row[c] for c in wanted])
        for i, row in enumerate(table)
    ]


# --------------------------------------------------------------------------- labels and splits


def _parse_label(task: TaskSpec, raw: Any, where: str) -> float | int:
    if task.is_regression:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise LaglessError(
                f"{where}: label {raw!r} is not a number; {task.name} needs a similarity score"
            ) from None
        if not math.isfinite(value):
            raise LaglessError(f"{where}: label {raw!r} is not a finite number")
        return value
    n = task.num_labels
    if isinstance(raw, (bool, int, np.integer)) or (isinstance(raw, float) and raw.is_integer()):
        value = int(raw)
    else:
        text = str(raw).strip()
        try:
            value = int(text)
        except ValueError:
            names = {name.lower(): i for i, name in enumerate(task.label_names or ())}
            if text.lower() in names:
                return names[text.lower()]
            known = f" or one of {', '.join(task.label_names)}" if task.label_names else ""
            raise LaglessError(
                f"{where}: label {raw!r} is not a class id 0..{n - 1}{known} ({task.name})"
            ) from None
    if not 0 <= value < n:
        raise LaglessError(
            f"{where}: label {value} is outside 0..{n - 1} for {task.name} ({n} classes); "
            "is this an unlabelled (test) split or a different task?"
        )
    return value


def _build_split(
    task: TaskSpec, records: list[_Record], n_texts: int, source: str, limit: int | None, seed: int
) -> TextSplit:
    if not records:
        raise LaglessError(f"{source} has no examples: check the file and the split")
    labels = [_parse_label(task, values[-1], where) for where, values in records]
    texts = []
    for where, values in records:
        if any(v is None for v in values[:n_texts]):
            raise LaglessError(f"{where}: a text field is empty (null)")
        texts.append([str(v).strip() for v in values[:n_texts]])
    keep = np.arange(len(records))
    if limit is not None and limit < len(records):
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(records), size=limit, replace=False))
    dtype = np.float32 if task.is_regression else np.int64
    return TextSplit(
        task=task,
        texts_a=[texts[i][0] for i in keep],
        texts_b=[texts[i][1] for i in keep] if n_texts == 2 else None,
        labels=np.asarray([labels[i] for i in keep], dtype=dtype),
        source=source,
    )


def load_split(
    task: TaskSpec | str,
    split: str = "train",
    *,
    data: str | os.PathLike[str] | None = None,
    text_columns: tuple[str, ...] | None = None,
    label_column: str | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> TextSplit:
    """Read one split of ``task``.

    ``data`` is None (local GLUE folder when it has the task, else the HF hub), a folder in
    the GLUE layout (``SST-2/train.tsv``, ``MNLI/dev_matched.tsv``, ... or the task folder
    itself), or one .csv/.tsv/.jsonl file with named columns (then ``split`` is ignored).
    ``text_columns``/``label_column`` default to the task's HF column names and "label".
    ``limit`` keeps a seeded random subset of that many rows, in file order.
    """
    task = get_task(task)
    canon = _canonical_split(task, split)
    if limit is not None and limit < 1:
        raise LaglessError(f"limit must be at least 1, got {limit}")
    if text_columns is not None:
        text_columns = tuple(text_columns)
        if len(text_columns) not in (1, 2):
            raise LaglessError(f"give one or two text columns, got {len(text_columns)}")
    custom = text_columns is not None or label_column is not None
    wanted = [*(text_columns or task.text_columns), label_column or "label"]
    n_texts = len(wanted) - 1

    if data is None:
        root = default_glue_dir()
        path = _glue_task_file(root, task, canon) if root is not None else None
        if path is None:
            logger.info("no local GLUE files for %s %s: loading from the HF hub", task.name, canon)
            records = _read_hub(task, canon)  # the hub has the task's own columns
            n_hub = len(task.text_columns)
            return _build_split(task, records, n_hub, f"glue/{task.name} {canon}", limit, seed)
    else:
        path = Path(data).expanduser()
        if path.is_dir():
            found = _glue_task_file(path, task, canon)
            if found is None:
                raise LaglessError(
                    f"{path} has no {task.glue_folder}/{_GLUE_FILES[canon]} (GLUE layout); "
                    "pass the GLUE folder, the task folder, or one .csv/.tsv/.jsonl file"
                )
            path = found
        elif not path.is_file():
            raise LaglessError(f"data {data} does not exist: pass a GLUE folder or a table file")
        elif path.suffix.lower() not in TABLE_SUFFIXES:
            raise LaglessError(f"{path}: unsupported file type; use {', '.join(TABLE_SUFFIXES)}")

    if path.suffix.lower() == ".tsv":
        records = _read_tsv(path, task, wanted, glue_layout=not custom)
    else:
        records = _read_table(path, wanted)
    logger.info("read %d examples of %s from %s", len(records), task.name, path)
    return _build_split(task, records, n_texts, str(path), limit, seed)
