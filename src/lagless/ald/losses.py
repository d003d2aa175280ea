"""ALD's distillation losses as plain functions of logits and values (summable, testable)."""

from __future__ import annotations

import torch


def categorical_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row for two categorical distributions given by logits."""
    logp = torch.log_softmax(p_logits.float(), dim=-1)
    logq = torch.log_softmax(q_logits.float(), dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x.mean() if mask is None else (x * mask).sum() / mask.sum().clamp(min=1)


def distillation_loss(learner_logits, actor_logits, learner_values, actor_values, value_coef: float,
                      mask: torch.Tensor | None = None):
    """(loss, KL, value MSE): the actor moves toward the learner; the learner's outputs are targets.

    KL(pi_learner || pi_actor) plus ``value_coef`` times the squared value error, as in
    Parisotto & Salakhutdinov (2021); gradients reach only the actor's outputs.
    """
    kl = masked_mean(categorical_kl(learner_logits.detach(), actor_logits), mask)
    value_error = masked_mean((actor_values - learner_values.detach()).pow(2), mask)
    return kl + value_coef * value_error, kl, value_error
