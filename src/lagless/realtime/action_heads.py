"""How an actor network's output becomes an action: categorical, Gaussian, or squashed Gaussian.

A head turns the network's output row into a distribution; it samples (or takes the mode),
scores actions, and says what the environment receives. Trainers pick the head that fits
the action space and their algorithm; acting code (eval, record, the real-time runner) only
calls ``sample`` and ``env_action``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from lagless.errors import LaglessError

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # SAC's usual clamp (CleanRL, SB3 use -20..2 or -5..2)
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class CategoricalHead(nn.Module):
    """Logits of a Discrete space. Sampling is Gumbel-max: one categorical draw per row."""

    discrete = True

    def __init__(self, space: spaces.Discrete):
        super().__init__()
        self.out_dim = int(space.n)

    def sample(self, out: torch.Tensor, greedy: bool = False):
        logp = torch.log_softmax(out.float(), dim=-1)
        if greedy:
            action = logp.argmax(-1)
        else:
            action = (logp - torch.empty_like(logp).exponential_().log()).argmax(-1)
        return action, logp.gather(-1, action.unsqueeze(-1)).squeeze(-1)

    def log_prob_entropy(self, out: torch.Tensor, action: torch.Tensor):
        logp = torch.log_softmax(out.float(), dim=-1)  # what torch's Categorical computes, in fewer ops
        entropy = -(logp.exp() * logp).sum(-1)
        return logp.gather(-1, action.long().unsqueeze(-1)).squeeze(-1), entropy

    def probs(self, out: torch.Tensor) -> torch.Tensor:
        return torch.softmax(out.float(), dim=-1)

    def env_action(self, action: torch.Tensor) -> np.ndarray:
        return action.cpu().numpy()


class GaussianHead(nn.Module):
    """A diagonal Gaussian around the network's output, with a learned state-independent std.

    This is PPO's continuous policy (as in CleanRL's ``ppo_continuous_action``): actions are
    sampled unbounded and stored so; the environment receives them clipped to its bounds.
    """

    discrete = False

    def __init__(self, space: spaces.Box):
        super().__init__()
        self.out_dim = int(np.prod(space.shape))
        self.log_std = nn.Parameter(torch.zeros(self.out_dim))
        self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32).reshape(-1))
        self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32).reshape(-1))
        self.shape = tuple(space.shape)

    def _log_prob(self, mean, action):
        z = (action - mean) / self.log_std.exp()
        return (-0.5 * z.pow(2) - self.log_std - _HALF_LOG_2PI).sum(-1)

    def sample(self, out: torch.Tensor, greedy: bool = False):
        mean = out.float()
        action = mean if greedy else mean + self.log_std.exp() * torch.randn_like(mean)
        return action, self._log_prob(mean, action)

    def log_prob_entropy(self, out: torch.Tensor, action: torch.Tensor):
        mean = out.float()
        entropy = (self.log_std + 0.5 + _HALF_LOG_2PI).sum(-1).expand(mean.shape[:-1])
        return self._log_prob(mean, action), entropy

    def probs(self, out: torch.Tensor) -> None:
        return None

    def env_action(self, action: torch.Tensor) -> np.ndarray:
        clipped = torch.maximum(torch.minimum(action, self.high), self.low)
        return clipped.reshape(*action.shape[:-1], *self.shape).cpu().numpy()


class SquashedGaussianHead(nn.Module):
    """SAC's policy: a Gaussian (mean and log-std from the network) squashed by tanh into the bounds.

    The log-probability includes the change of variables (tanh and the affine map to
    ``[low, high]``), so the entropy term of SAC is right in the environment's units.
    """

    discrete = False

    def __init__(self, space: spaces.Box):
        super().__init__()
        low = np.asarray(space.low, dtype=np.float32).reshape(-1)
        high = np.asarray(space.high, dtype=np.float32).reshape(-1)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise LaglessError(f"SAC needs a bounded Box action space, got {space}")
        self.dim = int(low.shape[0])
        self.out_dim = 2 * self.dim
        self.register_buffer("scale", torch.as_tensor((high - low) / 2))
        self.register_buffer("bias", torch.as_tensor((high + low) / 2))
        self.shape = tuple(space.shape)

    def split(self, out: torch.Tensor):
        mean, raw = out.float().split(self.dim, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(raw) + 1)
        return mean, log_std

    def sample(self, out: torch.Tensor, greedy: bool = False):
        """A reparameterised sample in the environment's bounds and its log-probability."""
        mean, log_std = self.split(out)
        noise = torch.zeros_like(mean) if greedy else torch.randn_like(mean)
        u = mean + log_std.exp() * noise
        y = torch.tanh(u)
        log_prob = (-0.5 * noise.pow(2) - log_std - _HALF_LOG_2PI).sum(-1)
        # log|d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)), stable for large |u|
        log_prob = log_prob - (2 * (math.log(2) - u - nn.functional.softplus(-2 * u))).sum(-1)
        log_prob = log_prob - torch.log(self.scale).sum()
        return y * self.scale + self.bias, log_prob

    def probs(self, out: torch.Tensor) -> None:
        return None

    def env_action(self, action: torch.Tensor) -> np.ndarray:
        return action.reshape(*action.shape[:-1], *self.shape).cpu().numpy()


def ppo_head(space: spaces.Space) -> nn.Module:
    """The head PPO uses for an action space, or a one-line error."""
    if isinstance(space, spaces.Discrete):
        return CategoricalHead(space)
    if isinstance(space, spaces.Box):
        return GaussianHead(space)
    raise LaglessError(f"action space {space} is not supported: use Discrete or Box")
