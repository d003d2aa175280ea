"""``lagless train --algo ald``: the learner trains with PPO on the actor's data; the actor distils.

One ``iterate``: (1) the actor (LSTM) steps every environment for ``rollout_steps``, recording
its logits and behaviour log-probabilities; (2) the learner (transformer) runs over the
rollout from its carried memory and takes PPO epochs whose importance ratios are taken
against the actor's log-probabilities, plus a weaker KL toward the actor's policy; (3) the
actor takes ``distill_steps_per_rl_step`` distillation updates (KL to the learner's policy
plus value MSE) on rollouts drawn from a replay of recent ones, re-run from the states both
networks had at their start. Both networks output their logits and a value (the last unit).
"""

from __future__ import annotations

import math
import random
from collections import deque

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from lagless.ald.config import ALDConfig
from lagless.ald.losses import categorical_kl, distillation_loss
from lagless.errors import LaglessError
from lagless.realtime.action_heads import CategoricalHead
from lagless.realtime.architectures import build_network, network_layout_id
from lagless.realtime.module_device import DeviceAware
from lagless.realtime.policy import Policy
from lagless.realtime.ppo_loss import clipped_policy_loss, gae, value_loss
from lagless.trainers.base import Iteration, Trainer


class OutputSlice(DeviceAware):
    """A view of a network that returns some of its outputs: the logits, or the value."""

    def __init__(self, net: nn.Module, part: slice):
        super().__init__()
        self.net, self.part = net, part
        self.layout, self.min_delay, self.max_delay = net.layout, net.min_delay, net.max_delay
        self.out_dim = len(range(net.out_dim)[part])

    def initial_state(self, batch_size: int, device="cpu"):
        return self.net.initial_state(batch_size, device)

    def forward(self, obs, state, episode_start=None):
        out, state = self.net(obs, state, episode_start)
        return out[..., self.part], state

    def forward_sequence(self, obs, state, episode_start=None):
        out, state = self.net.forward_sequence(obs, state, episode_start)
        return out[..., self.part], state


def _select(state, idx):
    return tuple(t[idx] for t in state)


def _detach(state):
    return tuple(t.detach().clone() for t in state)


class ALDTrainer(Trainer):
    name = "ald"
    config_class = ALDConfig
    description = "Actor-Learner Distillation: a transformer learns with PPO on an LSTM actor's data, the LSTM distils"

    @classmethod
    def build_models(cls, config, observation_space, action_space, device):
        if not isinstance(action_space, spaces.Discrete):
            raise LaglessError(f"ALD in lagless needs a Discrete action space, {config.env} has {action_space}")
        n = int(action_space.n) + 1  # logits and a value
        actor = build_network(config.arch, observation_space, n, layers=config.layers, hidden=config.hidden,
                              head_std=0.01, fresh_actions=config.fresh_actions)
        learner = build_network(config.learner_arch, observation_space, n, layers=config.learner_layers,
                                hidden=config.learner_hidden, head_std=0.01, fresh_actions=config.fresh_actions)
        return {"actor": actor.to(device), "learner": learner.to(device)}

    @classmethod
    def layout_id(cls, config, models):
        return (f"{network_layout_id(config.arch, models['actor'])}+"
                f"{network_layout_id(config.learner_arch, models['learner'])}")

    @classmethod
    def make_policy(cls, config, models, observation_space, action_space):
        actor = models["actor"]
        n = int(action_space.n)
        return Policy(config, OutputSlice(actor, slice(0, n)), CategoricalHead(action_space),
                      critic=OutputSlice(actor, slice(n, n + 1)), observation_space=observation_space,
                      action_space=action_space)

    def __init__(self, config: ALDConfig, models, envs, device):
        super().__init__(config, models, envs, device)
        self.actor, self.learner = models["actor"], models["learner"]
        self.n = int(envs.single_action_space.n)
        self.head = CategoricalHead(envs.single_action_space)
        self.learner_opt = torch.optim.Adam(self.learner.parameters(), lr=config.lr, eps=1e-5, fused=True)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, eps=1e-5, fused=True)
        self.replay: deque = deque(maxlen=config.replay_rollouts)
        self.updates = 0

    def optimizers(self):
        return {"learner": self.learner_opt, "actor": self.actor_opt}

    def state_meta(self):
        return {"updates": self.updates}

    def load_state_meta(self, meta):
        self.updates = int(meta.get("updates", 0))

    def start(self, global_step: int) -> None:
        N = self.config.num_envs
        self.obs, _ = self.envs.reset(seed=self.config.seed + global_step)
        self.actor_state = self.actor.initial_state(N, self.device)
        self.learner_state = self.learner.initial_state(N, self.device)
        self.starts = torch.ones(N, dtype=torch.bool, device=self.device)
        self.ep_return, self.ep_length = np.zeros(N), np.zeros(N, dtype=np.int64)

    # -- acting ---------------------------------------------------------------------------
    @torch.inference_mode()
    def _rollout(self):
        layout, N, T = self.actor.layout, self.config.num_envs, self.config.rollout_steps
        kw = {"device": self.device}
        x = torch.zeros(T, N, layout.flat_dim, **kw)
        starts = torch.zeros(T, N, dtype=torch.bool, **kw)
        actions = torch.zeros(T, N, dtype=torch.long, **kw)
        logits = torch.zeros(T, N, self.n, **kw)
        rewards, dones = torch.zeros(T, N, **kw), torch.zeros(T, N, **kw)
        returns_done, lengths_done = [], []
        for t in range(T):
            x[t] = layout.flatten(self.obs, device=self.device)
            out, self.actor_state = self.actor(x[t], self.actor_state, self.starts)
            action, _ = self.head.sample(out[:, :self.n])
            self.obs, reward, terminated, truncated, _ = self.envs.step(action.cpu().numpy())
            done = np.logical_or(terminated, truncated)
            starts[t], actions[t], logits[t] = self.starts, action, out[:, :self.n]
            rewards[t] = torch.as_tensor(reward, dtype=torch.float32, **kw)
            dones[t] = torch.as_tensor(done, dtype=torch.float32, **kw)
            self.ep_return += reward
            self.ep_length += 1
            for i in np.flatnonzero(done):
                returns_done.append(float(self.ep_return[i]))
                lengths_done.append(int(self.ep_length[i]))
            self.ep_return[done], self.ep_length[done] = 0.0, 0
            self.starts = torch.as_tensor(done, **kw)
        return x, starts, actions, logits, rewards, dones, returns_done, lengths_done

    # -- one iteration --------------------------------------------------------------------
    def iterate(self, global_step: int) -> Iteration:
        config = self.config
        actor_start, learner_start = _detach(self.actor_state), _detach(self.learner_state)
        x, starts, actions, behaviour_logits, rewards, dones, returns_done, lengths_done = self._rollout()
        behaviour_logp = torch.log_softmax(behaviour_logits, -1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            out, self.learner_state = self.learner.forward_sequence(x, learner_start, starts)
            next_x = self.actor.layout.flatten(self.obs, device=self.device)[None]
            next_out, _ = self.learner.forward_sequence(next_x, self.learner_state, self.starts[None])
            values = out[..., self.n]
            advantages, returns = gae(rewards, values, dones, next_out[0, :, self.n], config.gamma,
                                      config.gae_lambda)
            policy_lag = categorical_kl(out[..., :self.n], behaviour_logits).mean()
        metrics = self._learner_update(x, starts, actions, behaviour_logp, behaviour_logits, learner_start,
                                       advantages, returns)
        self.replay.append((x, starts, actor_start, learner_start))
        metrics.update(self._distill())
        metrics["distill/policy_lag"] = float(policy_lag)
        self.updates += 1
        return Iteration(config.num_envs * config.rollout_steps, returns_done, lengths_done, metrics)

    def _learner_update(self, x, starts, actions, behaviour_logp, behaviour_logits, learner_start,
                        advantages, returns) -> dict[str, float]:
        config, N = self.config, self.config.num_envs
        per_mb = N // config.num_minibatches
        stats = {k: [] for k in ("policy", "value", "entropy", "kl", "to_actor")}
        for _ in range(config.update_epochs):
            perm = torch.randperm(N).to(self.device)
            for m in range(config.num_minibatches):
                idx = perm[m * per_mb:(m + 1) * per_mb]
                out, _ = self.learner.forward_sequence(x[:, idx], _select(learner_start, idx), starts[:, idx])
                logp, entropy = self.head.log_prob_entropy(out[..., :self.n], actions[:, idx])
                adv = advantages[:, idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg, kl, _ = clipped_policy_loss(logp, behaviour_logp[:, idx], adv, config.clip_coef)
                v = value_loss(out[..., self.n], returns[:, idx])
                to_actor = categorical_kl(behaviour_logits[:, idx], out[..., :self.n]).mean()
                loss = (pg - config.ent_coef * entropy.mean() + config.vf_coef * v
                        + config.learner_to_actor_kl * to_actor)
                self.learner_opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.learner.parameters(), config.max_grad_norm)
                self.learner_opt.step()
                for k, val in (("policy", pg), ("value", v), ("entropy", entropy.mean()), ("kl", kl),
                               ("to_actor", to_actor)):
                    stats[k].append(val.item())
        return {"losses/policy_loss": float(np.mean(stats["policy"])),
                "losses/value_loss": float(np.mean(stats["value"])),
                "losses/entropy": float(np.mean(stats["entropy"])),
                "losses/approx_kl": float(np.mean(stats["kl"])),
                "losses/learner_to_actor_kl": float(np.mean(stats["to_actor"]))}

    def _distill(self) -> dict[str, float]:
        config, N = self.config, self.config.num_envs
        per_mb = N // config.num_minibatches
        kls, errors = [], []
        for _ in range(config.distill_steps_per_rl_step * config.num_minibatches):
            x, starts, actor_start, learner_start = random.choice(self.replay)
            idx = torch.randperm(N)[:per_mb].to(self.device)
            with torch.no_grad():
                target, _ = self.learner.forward_sequence(x[:, idx], _select(learner_start, idx), starts[:, idx])
            out, _ = self.actor.forward_sequence(x[:, idx], _select(actor_start, idx), starts[:, idx])
            loss, kl, error = distillation_loss(target[..., :self.n], out[..., :self.n], target[..., self.n],
                                                out[..., self.n], config.distill_value_coef)
            self.actor_opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.actor.parameters(), config.max_grad_norm)
            self.actor_opt.step()
            kls.append(kl.item())
            errors.append(error.item())
        return {"distill/kl": float(np.mean(kls)) if kls else math.nan,
                "distill/value_error": float(np.mean(errors)) if errors else math.nan}
