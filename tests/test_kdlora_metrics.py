"""GLUE metrics (computed with scikit-learn / scipy) on fixed inputs: the GLUE conventions, and finite on degenerate input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from lagless.errors import LaglessError
from lagless.kdlora.metrics import (
    compute_metrics,
    main_score,
    matthews_corr,
    pearson,
    spearman,
)

RNG = np.random.default_rng(1234)
LOGITS2 = RNG.normal(size=(60, 2))
LABELS2 = RNG.integers(0, 2, size=60)
LOGITS3 = RNG.normal(size=(45, 3))
LABELS3 = RNG.integers(0, 3, size=45)
# Rounded scores: many ties on both sides, as in STS-B's gold labels.
SCORES = np.round(RNG.uniform(0, 5, size=50) * 2) / 2
PREDS = np.round(SCORES + RNG.normal(scale=1.0, size=50), 1)


def test_binary_classification_metrics_match_sklearn():
    pred = LOGITS2.argmax(1)
    mrpc = compute_metrics("mrpc", LOGITS2, LABELS2)
    assert set(mrpc) == {"f1", "accuracy"}
    assert mrpc["f1"] == pytest.approx(f1_score(LABELS2, pred, pos_label=1))
    assert mrpc["accuracy"] == pytest.approx(accuracy_score(LABELS2, pred))
    cola = compute_metrics("cola", LOGITS2, LABELS2)
    assert set(cola) == {"matthews_corr"}
    assert cola["matthews_corr"] == pytest.approx(matthews_corrcoef(LABELS2, pred))
    assert compute_metrics("sst2", LOGITS2, LABELS2) == {"accuracy": mrpc["accuracy"]}


def test_multiclass_metrics_match_sklearn():
    pred = LOGITS3.argmax(1)
    mnli = compute_metrics("mnli", torch.tensor(LOGITS3), torch.tensor(LABELS3))
    assert mnli == {"accuracy": pytest.approx(accuracy_score(LABELS3, pred))}
    assert matthews_corr(pred, LABELS3) == pytest.approx(matthews_corrcoef(LABELS3, pred))


def test_regression_metrics_match_scipy_with_ties():
    assert len(np.unique(SCORES)) < len(SCORES) and len(np.unique(PREDS)) < len(PREDS)
    for preds in (PREDS, PREDS[:, None], torch.tensor(PREDS[:, None], dtype=torch.float32)):
        stsb = compute_metrics("stsb", preds, SCORES)
        assert stsb["pearson"] == pytest.approx(pearsonr(PREDS, SCORES)[0], abs=1e-6)
        assert stsb["spearman"] == pytest.approx(spearmanr(PREDS, SCORES)[0], abs=1e-6)
    assert spearman(np.array([1, 2, 2, 3.0]), np.array([1, 3, 2, 4.0])) == pytest.approx(
        spearmanr([1, 2, 2, 3], [1, 3, 2, 4])[0]
    )


def test_degenerate_inputs_give_zero_not_nan():
    constant = np.full(10, 0.3)
    labels = np.linspace(0, 5, 10)
    assert pearson(constant, labels) == 0.0 and spearman(constant, labels) == 0.0
    assert compute_metrics("stsb", constant, labels) == {"pearson": 0.0, "spearman": 0.0}
    all_zero = np.zeros((8, 2))
    all_zero[:, 0] = 1.0  # always predicts class 0
    y = np.array([0, 1] * 4)
    cola = compute_metrics("cola", all_zero, y)["matthews_corr"]
    assert cola == 0.0 == matthews_corrcoef(y, all_zero.argmax(1))
    no_positives = compute_metrics("qqp", all_zero, np.zeros(8, dtype=int))
    assert no_positives == {"f1": 0.0, "accuracy": 1.0}


def test_main_score_follows_glue_convention():
    assert main_score("stsb", {"pearson": 0.8, "spearman": 0.6}) == pytest.approx(0.7)
    assert main_score("MRPC", {"f1": 0.9, "accuracy": 0.8}) == pytest.approx(0.85)
    assert main_score("cola", {"matthews_corr": 0.4}) == pytest.approx(0.4)
    assert main_score("mnli", {"accuracy": 0.75}) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="lack"):
        main_score("qqp", {"accuracy": 0.9})


def test_bad_inputs():
    with pytest.raises(ValueError, match="do not match"):
        compute_metrics("sst2", LOGITS2, LABELS2[:-1])
    with pytest.raises(ValueError, match=r"\(N, 1\)"):
        compute_metrics("stsb", LOGITS2, LABELS2)
    with pytest.raises(LaglessError, match="NaN"):
        compute_metrics("stsb", np.array([0.1, np.nan]), np.array([1.0, 2.0]))
