"""PPO's losses and GAE as plain functions, so they can be tested and summed freely."""

from __future__ import annotations

import torch


def gae(rewards, values, dones, next_value, gamma: float, lam: float):
    """Generalised advantage estimates for ``[T, N]`` tensors.

    ``dones[t]`` marks that the episode ended at step ``t`` (no bootstrap through it);
    ``next_value`` is the value of the observation after the last step.
    """
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(T)):
        nxt = next_value if t == T - 1 else values[t + 1]
        nonterminal = 1.0 - dones[t]
        delta = rewards[t] + gamma * nxt * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        advantages[t] = last
    return advantages, advantages + values


def clipped_policy_loss(new_logprob, old_logprob, advantages, clip_coef: float):
    """PPO's clipped surrogate (to minimise), plus approx-KL and clip fraction for logging."""
    log_ratio = new_logprob - old_logprob
    ratio = log_ratio.exp()
    loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clipfrac = ((ratio - 1).abs() > clip_coef).float().mean()
    return loss, approx_kl, clipfrac


def value_loss(new_values, returns):
    return 0.5 * (new_values - returns).pow(2).mean()
