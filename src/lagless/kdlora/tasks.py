"""The nine GLUE tasks as data (columns, labels, metrics), so no other module hard-codes them.

Column names follow the Hugging Face ``glue`` dataset, label ids follow its ``ClassLabel``
order, and metrics follow the GLUE convention (Wang et al., 2019).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from lagless.errors import LaglessError

__all__ = ["TASKS", "TaskSpec", "get_task"]


@dataclass(frozen=True)
class TaskSpec:
    """One text classification or regression task.

    ``num_labels`` is 1 for regression (STS-B); ``label_names[i]`` is the name of class id i.
    ``dev_splits`` lists the evaluation splits (MNLI has a matched and a mismatched one).
    """

    name: str
    text_columns: tuple[str, ...]
    num_labels: int
    label_names: tuple[str, ...] | None
    metric_names: tuple[str, ...]
    main_metric: str
    glue_folder: str
    dev_splits: tuple[str, ...] = ("validation",)

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2


_ENTAIL = ("entailment", "not_entailment")

TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec("cola", ("sentence",), 2, ("unacceptable", "acceptable"),
                 ("matthews_corr",), "Matthews correlation", "CoLA"),
        TaskSpec("sst2", ("sentence",), 2, ("negative", "positive"),
                 ("accuracy",), "accuracy", "SST-2"),
        TaskSpec("mrpc", ("sentence1", "sentence2"), 2, ("not_equivalent", "equivalent"),
                 ("f1", "accuracy"), "mean of F1 and accuracy", "MRPC"),
        TaskSpec("qqp", ("question1", "question2"), 2, ("not_duplicate", "duplicate"),
                 ("f1", "accuracy"), "mean of F1 and accuracy", "QQP"),
        TaskSpec("stsb", ("sentence1", "sentence2"), 1, None,
                 ("pearson", "spearman"), "mean of Pearson and Spearman correlation", "STS-B"),
        TaskSpec("mnli", ("premise", "hypothesis"), 3, ("entailment", "neutral", "contradiction"),
                 ("accuracy",), "accuracy (matched and mismatched reported separately)", "MNLI",
                 dev_splits=("validation_matched", "validation_mismatched")),
        TaskSpec("qnli", ("question", "sentence"), 2, _ENTAIL, ("accuracy",), "accuracy", "QNLI"),
        TaskSpec("rte", ("sentence1", "sentence2"), 2, _ENTAIL, ("accuracy",), "accuracy", "RTE"),
        TaskSpec("wnli", ("sentence1", "sentence2"), 2, ("not_entailment", "entailment"),
                 ("accuracy",), "accuracy", "WNLI"),
    )
}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def get_task(name: str | TaskSpec) -> TaskSpec:
    """Look a task up by name, forgiving case and dashes ("SST-2", "sts-b", "MNLI")."""
    if isinstance(name, TaskSpec):
        return name
    task = TASKS.get(_key(name))
    if task is not None:
        return task
    close = difflib.get_close_matches(_key(name), list(TASKS), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise LaglessError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}{hint}")
