"""Losses for KD-LoRA as plain functions that can be summed: the task loss of plain
fine-tuning, and the distillation loss of Hinton et al. (2015) that KD-LoRA uses.

Classification: ``alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)``;
the T^2 factor keeps the soft-target gradients on the same scale as the hard-label ones
whatever the temperature. Regression (STS-B): ``alpha * MSE(s, t) + (1 - alpha) * MSE(s, y)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lagless.errors import LaglessError

__all__ = ["kd_loss", "task_loss"]


def _scores(x: torch.Tensor, name: str) -> torch.Tensor:
    """(N,) regression outputs from (N,) or (N, 1)."""
    if x.ndim == 2 and x.shape[1] == 1:
        x = x.squeeze(1)
    if x.ndim != 1:
        raise ValueError(f"regression {name} must be (N,) or (N, 1), got {tuple(x.shape)}")
    return x


def _check_classification(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(
            f"classification needs logits (N, C) and labels (N,), got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    if labels.is_floating_point():
        raise ValueError("classification labels must be integer class ids, got floats")


def task_loss(logits: torch.Tensor, labels: torch.Tensor, regression: bool) -> torch.Tensor:
    """Cross-entropy on class ids, or MSE on scores for regression (batch mean)."""
    if regression:
        scores, target = _scores(logits, "outputs"), _scores(labels, "labels")
        if scores.shape != target.shape:
            raise ValueError(
                f"outputs {tuple(logits.shape)} do not match labels {tuple(labels.shape)}"
            )
        return F.mse_loss(scores, target.to(scores.dtype))
    _check_classification(logits, labels)
    return F.cross_entropy(logits, labels)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 2.0,
    alpha: float = 0.5,
    regression: bool = False,
) -> torch.Tensor:
    """Distillation loss of the student toward a fixed teacher plus the labels (batch means).

    ``alpha`` weighs the teacher term (1 = teacher only, 0 = plain fine-tuning); the
    temperature only affects classification. The teacher gets no gradient.
    """
    if not 0.0 <= alpha <= 1.0:
        raise LaglessError(f"alpha must be between 0 and 1, got {alpha}")
    if not temperature > 0:
        raise LaglessError(f"temperature must be positive, got {temperature}")
    teacher = teacher_logits.detach()
    hard = task_loss(student_logits, labels, regression)
    if regression:
        scores = _scores(student_logits, "student outputs")
        target = _scores(teacher, "teacher outputs")
        if scores.shape != target.shape:
            raise ValueError(
                f"student {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)} "
                "outputs differ in shape"
            )
        soft = F.mse_loss(scores, target.to(scores.dtype))
    else:
        if teacher.shape != student_logits.shape:
            raise ValueError(
                f"student logits {tuple(student_logits.shape)} and teacher logits "
                f"{tuple(teacher_logits.shape)} differ in shape"
            )
        log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
        log_p_teacher = F.log_softmax(teacher.to(student_logits.dtype) / temperature, dim=-1)
        kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
        soft = temperature**2 * kl
    return alpha * soft + (1.0 - alpha) * hard
