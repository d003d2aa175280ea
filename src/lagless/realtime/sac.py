"""SAC for real-time agents: any registered actor, replayed as sequences with a burn-in.

Acting carries the actor's state (pipeline registers or LSTM state) from step to step and
resets it at episode starts. Learning replays windows of one episode (``SequenceReplay``):
the actor is unrolled over each window from a zero state, so after ``burn_in`` steps a
pipelined actor's registers equal what acting had, and the loss covers the ``seq_len``
steps after that (gradients flow through the whole window, as in PPO's BPTT). The twin
critics see the current, undelayed observation and the action (asymmetric actor-critic,
as in Anokhin et al.); targets are Polyak-averaged; the entropy coefficient is tuned
toward an entropy of ``-action_dim`` unless ``--alpha`` fixes it.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from lagless.errors import LaglessError
from lagless.realtime.action_heads import SquashedGaussianHead
from lagless.realtime.architectures import build_network, network_layout_id
from lagless.realtime.observations import final_observations
from lagless.realtime.policy import Policy
from lagless.realtime.precision import bf16_autocast
from lagless.realtime.recurrent import UNBOUNDED_DELAY
from lagless.realtime.sac_config import DEFAULT_SEQ_LEN, LSTM_BURN_IN, SACConfig
from lagless.realtime.sequence_replay import SequenceReplay
from lagless.realtime.twin_q import TwinQ
from lagless.trainers.base import Iteration, Trainer
from lagless.trainers.loop import TrainResult
from lagless.trainers.loop import train as train_run


def train(config: SACConfig, *, resume: bool = False) -> TrainResult:
    """Train (or, with ``resume``, continue) a SAC run; returns when ``total_steps`` are done."""
    return train_run("sac", config, resume=resume)


class SACModels(nn.Module):
    """Actor, squashed-Gaussian head, twin critics, their targets and the entropy coefficient."""

    def __init__(self, config: SACConfig, observation_space: spaces.Space, action_space: spaces.Space):
        super().__init__()
        if not isinstance(action_space, spaces.Box):
            raise LaglessError(f"SAC in lagless needs a Box (continuous) action space, {config.env} has "
                               f"{action_space}: use --algo ppo for discrete actions")
        self.head = SquashedGaussianHead(action_space)
        self.actor = build_network(config.arch, observation_space, self.head.out_dim, layers=config.layers,
                                   hidden=config.hidden, head_std=0.01, fresh_actions=config.fresh_actions)
        self.layout = self.actor.layout
        self.critic = TwinQ(self.layout.flat_dim + self.head.dim, config.critic_hidden, config.critic_layers)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        start = 1.0 if config.alpha == 0 else config.alpha
        self.log_alpha = nn.Parameter(torch.tensor(math.log(start)), requires_grad=config.alpha == 0)


def sequence_settings(config: SACConfig, actor) -> tuple[int, int]:
    """(seq_len, burn_in) in use: from the flags, or from the actor when they say 'automatic'."""
    stateless = not actor.initial_state(1)
    seq_len = config.seq_len or (1 if stateless else DEFAULT_SEQ_LEN)
    if config.burn_in >= 0:
        burn_in = config.burn_in
    elif stateless:
        burn_in = 0
    else:
        burn_in = LSTM_BURN_IN if actor.max_delay == UNBOUNDED_DELAY else actor.max_delay
    return seq_len, burn_in


class SACTrainer(Trainer):
    """Real-time SAC: one ``iterate`` is ``log_every`` agent steps with their updates."""

    name = "sac"
    config_class = SACConfig
    description = "SAC with pipelined actors, sequence replay with burn-in and asymmetric twin critics; Box actions"

    @classmethod
    def build_models(cls, config, observation_space, action_space, device):
        return {"sac": SACModels(config, observation_space, action_space).to(device)}

    @classmethod
    def layout_id(cls, config, models):
        m = models["sac"]
        return (f"{network_layout_id(config.arch, m.actor)}+twinq{config.critic_layers}x"
                f"{config.critic_hidden}+{type(m.head).__name__}")

    @classmethod
    def make_policy(cls, config, models, observation_space, action_space):
        m = models["sac"]
        return Policy(config, m.actor, m.head, observation_space=observation_space, action_space=action_space,
                      bf16=config.precision == "bf16")

    def __init__(self, config: SACConfig, models, envs, device):
        super().__init__(config, models, envs, device)
        m = self.m = models["sac"]
        # fused: one kernel per parameter list instead of a loop of small ops (as in PPO)
        self.actor_opt = torch.optim.Adam(m.actor.parameters(), lr=config.lr, fused=True)
        self.critic_opt = torch.optim.Adam(m.critic.parameters(), lr=config.lr, fused=True)
        self.alpha_opt = torch.optim.Adam([m.log_alpha], lr=config.lr, fused=True)
        self.autotune = config.alpha == 0
        self.target_entropy = -float(m.head.dim)
        self.replay = SequenceReplay(config.buffer_size, config.num_envs, m.layout.flat_dim, m.head.dim, device)
        self.seq_len, self.burn_in = sequence_settings(config, m.actor)
        self.stateless = not m.actor.initial_state(1)
        self.sequences = max(1, math.ceil(config.batch_size / self.seq_len))
        self.updates = 0
        self.update_credit = 0.0
        self.next_episode = 0
        self.bf16 = config.precision == "bf16"

    def optimizers(self):
        opts = {"actor": self.actor_opt, "critic": self.critic_opt}
        return {**opts, "alpha": self.alpha_opt} if self.autotune else opts

    def state_meta(self):
        return {"updates": self.updates, "update_credit": self.update_credit,
                "next_episode": self.next_episode, "replay_pos": self.replay.pos}

    def load_state_meta(self, meta):
        self.updates = int(meta.get("updates", 0))
        self.update_credit = float(meta.get("update_credit", 0.0))
        self.next_episode = int(meta.get("next_episode", 0))

    def extra_tensors(self):
        return {f"replay.{k}": v for k, v in self.replay.state_tensors().items()}

    def load_extra_tensors(self, tensors):
        self.replay.load_state_tensors({k[len("replay."):]: v for k, v in tensors.items()
                                        if k.startswith("replay.")})

    def start(self, global_step: int) -> None:
        N = self.config.num_envs
        self.obs, _ = self.envs.reset(seed=self.config.seed + global_step)
        self.state = self.m.actor.initial_state(N, self.device)
        self.starts = torch.ones(N, dtype=torch.bool, device=self.device)
        self.episode = torch.arange(self.next_episode, self.next_episode + N, device=self.device)
        self.next_episode += N
        self.ep_return, self.ep_length = np.zeros(N), np.zeros(N, dtype=np.int64)

    # -- acting --------------------------------------------------------------------------
    @torch.inference_mode()
    def _act(self, x: torch.Tensor, random: bool):
        with bf16_autocast(self.device, self.bf16):
            out, self.state = self.m.actor(x, self.state, self.starts)
        if random:
            low = torch.as_tensor(self.envs.single_action_space.low, device=self.device).reshape(-1)
            high = torch.as_tensor(self.envs.single_action_space.high, device=self.device).reshape(-1)
            return low + (high - low) * torch.rand(x.shape[0], self.m.head.dim, device=self.device)
        action, _ = self.m.head.sample(out)
        return action

    def iterate(self, global_step: int) -> Iteration:
        config, layout, N = self.config, self.m.layout, self.config.num_envs
        vec_steps = max(1, min(math.ceil(config.log_every / N), math.ceil((config.total_steps - global_step) / N)))
        returns_done, lengths_done, stats = [], [], []
        update_seconds = 0.0
        for k in range(vec_steps):
            step = global_step + k * N
            x = layout.flatten(self.obs, device=self.device)
            action = self._act(x, random=step < config.learning_starts)
            self.obs, reward, terminated, truncated, infos = self.envs.step(self.m.head.env_action(action))
            done = np.logical_or(terminated, truncated)
            next_x = layout.flatten(self.obs, device=self.device)
            if done.any():
                next_x = next_x.clone()
                for i, final in final_observations(layout, infos, done):
                    next_x[i] = final.to(self.device)
            self.replay.add(x, action, torch.as_tensor(reward, dtype=torch.float32, device=self.device),
                            torch.as_tensor(terminated, dtype=torch.float32, device=self.device),
                            next_x, self.episode)
            self.ep_return += reward
            self.ep_length += 1
            self.starts = torch.as_tensor(done, device=self.device)
            for i in np.flatnonzero(done):
                returns_done.append(float(self.ep_return[i]))
                lengths_done.append(int(self.ep_length[i]))
                self.episode[i] = self.next_episode
                self.next_episode += 1
            self.ep_return[done], self.ep_length[done] = 0.0, 0
            if step + N > config.learning_starts:
                self.update_credit += config.updates_per_step * N
                t0 = time.perf_counter()
                while self.update_credit >= 1:
                    self.update_credit -= 1
                    stats.append(self._update())
                update_seconds += time.perf_counter() - t0
        metrics = {"charts/updates": float(self.updates)}
        if stats:
            keys = stats[0].keys()
            metrics.update({k: float(torch.stack([s[k] for s in stats]).mean()) for k in keys})
            metrics["charts/updates_per_s"] = len(stats) / max(update_seconds, 1e-9)
        return Iteration(vec_steps * N, returns_done, lengths_done, metrics)

    # -- learning ------------------------------------------------------------------------
    def _update(self) -> dict[str, torch.Tensor]:
        with bf16_autocast(self.device, self.bf16):
            return self._update_step()

    def _update_step(self) -> dict[str, torch.Tensor]:
        m, config = self.m, self.config
        B, K = self.burn_in, self.seq_len
        b = self.replay.sample(self.sequences, K, B)
        obs_now, obs_next = b.obs[B:B + K], b.obs[B + 1:]
        if self.stateless:  # each output depends on its own step: the next steps need no gradient
            out_now, _ = m.actor.forward_sequence(obs_now, (), None)
            with torch.no_grad():
                out_next, _ = m.actor.forward_sequence(obs_next, (), None)
        else:  # one unroll over the window; the next step's output is the one after each step's
            out, _ = m.actor.forward_sequence(b.obs, m.actor.initial_state(self.sequences, self.device),
                                              b.starts)
            out_now, out_next = out[B:B + K], out[B + 1:].detach()
        mask = b.mask
        count = mask.sum().clamp(min=1)
        alpha = m.log_alpha.exp().detach()

        with torch.no_grad():
            next_action, next_logp = m.head.sample(out_next)
            q_next = m.critic_target(obs_next, next_action).min(0).values - alpha * next_logp
            target = b.rewards + config.gamma * (1 - b.terminated) * q_next
        q = m.critic(obs_now, b.actions)
        critic_loss = 0.5 * (((q - target) ** 2) * mask).sum() / count
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        action, logp = m.head.sample(out_now)
        m.critic.requires_grad_(False)
        q_pi = m.critic(obs_now, action).min(0).values
        m.critic.requires_grad_(True)
        actor_loss = (((alpha * logp - q_pi) * mask).sum()) / count
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()

        stats = {"losses/critic_loss": critic_loss.detach(), "losses/actor_loss": actor_loss.detach(),
                 "losses/q_value": (q.detach().mean(0) * mask).sum() / count, "losses/alpha": alpha}
        if self.autotune:
            alpha_loss = -(m.log_alpha * ((logp.detach() + self.target_entropy) * mask).sum() / count)
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
            stats["losses/alpha_loss"] = alpha_loss.detach()
        stats["losses/entropy"] = -(logp.detach() * mask).sum() / count
        with torch.no_grad():
            torch._foreach_lerp_(list(m.critic_target.parameters()), list(m.critic.parameters()),
                                 config.target_update_rate)
        self.updates += 1
        return stats
