"""An actor (possibly delayed) and its critic, built from a ``PPOConfig`` and the env's spaces."""

from __future__ import annotations

import torch
from gymnasium import spaces
from torch import nn

from lagless.realtime.action_heads import ppo_head
from lagless.realtime.architectures import build_network
from lagless.realtime.ppo_config import PPOConfig
from lagless.realtime.precision import bf16_autocast


class ActorCritic(nn.Module):
    """Only the actor runs at deployment; the critic exists for training.

    With ``critic="instant"`` the critic is an ordinary network on the current observation
    (asymmetric actor-critic, as in Anokhin et al.); with ``"delayed"`` it has the actor's
    architecture and therefore its delay. Discrete actions get a categorical head, Box
    actions a Gaussian one (``lagless.realtime.action_heads``).
    """

    def __init__(self, config: PPOConfig, observation_space: spaces.Space, action_space: spaces.Space):
        super().__init__()
        self.head = ppo_head(action_space)
        self.actor = build_network(config.arch, observation_space, self.head.out_dim, layers=config.layers,
                                   hidden=config.hidden, head_std=0.01, fresh_actions=config.fresh_actions)
        critic_arch = "instant" if config.critic == "instant" else config.arch
        self.critic = build_network(critic_arch, observation_space, 1, layers=config.layers,
                                    hidden=config.hidden, head_std=1.0,
                                    fresh_actions=config.fresh_actions)
        self.layout = self.actor.layout
        self.observation_space = observation_space
        self.action_space = action_space
        self.bf16 = config.precision == "bf16"

    @property
    def device(self) -> torch.device:
        return self.actor.device

    def _precision(self):
        return bf16_autocast(self.device, self.bf16)

    def initial_state(self, batch_size: int):
        """(actor state, critic state) at an episode start."""
        return (self.actor.initial_state(batch_size, self.device),
                self.critic.initial_state(batch_size, self.device))

    @torch.inference_mode()
    def act(self, x: torch.Tensor, actor_state, episode_start: torch.Tensor, greedy: bool = False):
        """One step of the actor for a batch of flat observations: (action, log-prob, new state).

        The critic is not run here: it does not choose actions, so ``values`` computes it for a
        whole rollout at once afterwards, with the same result and far fewer calls.
        """
        with self._precision():
            out, actor_state = self.actor(x, actor_state, episode_start)
        action, logprob = self.head.sample(out, greedy)
        return action, logprob, actor_state

    @torch.inference_mode()
    def values(self, x: torch.Tensor, critic_state, episode_start: torch.Tensor):
        """Critic values for a ``[T, B]`` block of steps and the critic state after it."""
        with self._precision():
            values, critic_state = self.critic.forward_sequence(x, critic_state, episode_start)
        return values.float().squeeze(-1), critic_state

    def evaluate_sequence(self, x, actions, state, episode_start):
        """Log-probs, entropies and values for a ``[T, B]`` block of stored steps."""
        actor_state, critic_state = state
        with self._precision():
            out, _ = self.actor.forward_sequence(x, actor_state, episode_start)
            values, _ = self.critic.forward_sequence(x, critic_state, episode_start)
        logprob, entropy = self.head.log_prob_entropy(out, actions)
        return logprob, entropy, values.float().squeeze(-1)
