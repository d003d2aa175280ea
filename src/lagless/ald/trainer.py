"""``lagless train --algo ald``: the learner trains with PPO on the actor's data; the actor distils.

One ``iterate``: (1) the actor (LSTM) steps every environment for ``rollout_steps``, recording
its logits and behaviour log-probabilities; (2) the learner (transformer) runs over the
rollout from its carried memory and takes PPO epochs, plus a weaker KL toward the actor's
policy; (3) the
actor takes ``distill_steps_per_rl_step`` distillation updates (KL to the learner's policy
plus value MSE) on rollouts drawn from a replay of recent ones, re-run from the states both
networks had at their start. Both networks output their logits and a value (the last unit).

The learner's PPO separates the two policies that plain PPO conflates (the "decoupled"
objective of Hilton et al., 2022, with IMPALA's truncated importance weight): the clipped
ratio is taken against the learner's own policy before the update (the proximal policy),
and each step's advantage is weighted by ``min(1, pi_learner_old / mu_actor)``, the importance
ratio against the actor's behaviour log-probabilities. Clipping against the actor instead
would stop every gradient once the learner is 20% ahead of the actor, tying the learner to
the slow student (seen on the 10-step T-maze: the learner never left chance). When the net
that learns is the net that acted (the baselines) both policies coincide: plain PPO.
"""

from __future__ import annotations

import copy
import math
import random
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from lagless.ald.collect import LocalCollector, RayCollector
from lagless.ald.config import METHODS, ALDConfig
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
    description = ("Actor-Learner Distillation: a transformer learns with PPO on an LSTM actor's data, the "
                   "LSTM distils; --method actor|learner|asymmetric for the baselines")

    @classmethod
    def build_models(cls, config, observation_space, action_space, device):
        if not isinstance(action_space, spaces.Discrete):
            raise LaglessError(f"ALD in lagless needs a Discrete action space, {config.env} has {action_space}")
        n = int(action_space.n) + 1  # logits and a value
        models = {}
        if "actor" in METHODS[config.method]:
            models["actor"] = build_network(config.arch, observation_space, n, layers=config.layers,
                                            hidden=config.hidden, head_std=0.01, fresh_actions=config.fresh_actions)
        if "learner" in METHODS[config.method]:
            models["learner"] = build_network(config.learner_arch, observation_space, n,
                                              layers=config.learner_layers, hidden=config.learner_hidden,
                                              head_std=0.01, fresh_actions=config.fresh_actions,
                                              **config.learner_options())
        return {name: net.to(device) for name, net in models.items()}

    @classmethod
    def layout_id(cls, config, models):
        archs = {"actor": config.arch, "learner": config.learner_arch}
        return "+".join(f"{name}:{network_layout_id(archs[name], net)}" for name, net in models.items())

    @classmethod
    def make_policy(cls, config, models, observation_space, action_space):
        acting, _, value = METHODS[config.method]
        n = int(action_space.n)
        return Policy(config, OutputSlice(models[acting], slice(0, n)), CategoricalHead(action_space),
                      critic=OutputSlice(models[value], slice(n, n + 1)), observation_space=observation_space,
                      action_space=action_space, arch=config.arch if acting == "actor" else config.learner_arch)

    def __init__(self, config: ALDConfig, models, envs, device):
        super().__init__(config, models, envs, device)
        self.acting, self.policy_net, self.value_net = METHODS[config.method]
        self.n = int(envs.single_action_space.n)
        self.head = CategoricalHead(envs.single_action_space)
        lrs = {"actor": config.actor_lr if config.method == "ald" else config.lr, "learner": config.lr}
        self.opts = {name: torch.optim.Adam(net.parameters(), lr=lrs[name], eps=1e-5, fused=True)
                     for name, net in models.items()}
        self.replay: deque = deque(maxlen=config.replay_rollouts)
        self.updates = 0
        acting = models[self.acting]
        self.background = None
        if config.method == "ald" and config.distill_in_background:
            # the thread trains models["actor"] while this one trains the learner; its targets come
            # from a copy of the learner taken before the PPO epochs
            self.background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lagless-distill")
            self.learner_copy = copy.deepcopy(models["learner"]).requires_grad_(False)
        self.collector = (RayCollector(config, type(self).build_models, self.acting, acting, device)
                          if config.backend == "ray" else LocalCollector(envs, acting, self.n, device))

    def optimizers(self):
        return self.opts

    def state_meta(self):
        return {"updates": self.updates}

    def load_state_meta(self, meta):
        self.updates = int(meta.get("updates", 0))

    def start(self, global_step: int) -> None:
        N = self.config.num_envs
        self.collector.start(self.config.seed + global_step)
        self.states = {name: net.initial_state(N, self.device) for name, net in self.models.items()
                       if name != self.acting}

    def close(self) -> None:
        self.collector.close()
        if self.background is not None:
            self.background.shutdown(wait=True)

    # -- one iteration --------------------------------------------------------------------
    def iterate(self, global_step: int) -> Iteration:
        config = self.config
        r = self.collector.collect(config.rollout_steps)
        start_states = {self.acting: r.start_state, **{name: _detach(s) for name, s in self.states.items()}}
        actions, behaviour_logits = r.actions, r.logits
        behaviour_logp = torch.log_softmax(behaviour_logits, -1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            outs, after = {}, {}
            for name, net in self.models.items():  # the nets that did not act catch up with the rollout
                if name == self.acting and name not in (self.policy_net, self.value_net):
                    continue  # ALD's actor: its outputs on the rollout are not needed here
                outs[name], after[name] = net.forward_sequence(r.x, start_states[name], r.starts)
                if name != self.acting:
                    self.states[name] = after[name]
            value_net = self.models[self.value_net]
            next_out, _ = value_net.forward_sequence(r.next_x[None], after[self.value_net], r.next_starts[None])
            advantages, returns = gae(r.rewards, outs[self.value_net][..., self.n], r.dones,
                                      next_out[0, :, self.n], config.gamma, config.gae_lambda)
            proximal_logp, weights = behaviour_logp, torch.ones_like(behaviour_logp)
            if self.policy_net != self.acting:  # the learner before this update; pi_old / mu truncated at 1
                proximal_logp = torch.log_softmax(outs[self.policy_net][..., :self.n], -1).gather(
                    -1, actions.unsqueeze(-1)).squeeze(-1)
                weights = (proximal_logp - behaviour_logp).exp().clamp(max=1.0)
        job = None
        if config.method == "ald":
            self.replay.append((r.x, r.starts, start_states["actor"], start_states["learner"]))
            if self.background is not None:  # the actor distils in a second thread during the PPO epochs
                self.learner_copy.load_state_dict(self.models["learner"].state_dict())
                seed = config.seed * 1_000_003 + self.updates  # its own generators: reproducible, resumable
                job = self.background.submit(self._distill, list(self.replay), self.learner_copy,
                                             random.Random(seed), torch.Generator().manual_seed(seed))
        try:
            metrics = self._rl_update(r.x, r.starts, actions, proximal_logp, weights, behaviour_logits,
                                      start_states, advantages, returns)
        finally:
            if job is not None:
                job.exception()  # never leave the thread training while a checkpoint is written
        if self.policy_net != self.acting:
            metrics["losses/importance_weight"] = weights.mean().item()
        if config.method == "ald":
            metrics.update(job.result() if job is not None else
                           self._distill(list(self.replay), self.models["learner"], random, None))
            policy_lag = categorical_kl(outs["learner"][..., :self.n], behaviour_logits).mean()
            metrics["distill/policy_lag"] = policy_lag.item()
        if config.backend == "ray":
            metrics["charts/actor_restarts"] = float(self.collector.restarts)
        self.updates += 1
        return Iteration(config.num_envs * config.rollout_steps, r.episode_returns, r.episode_lengths, metrics)

    def _rl_update(self, x, starts, actions, proximal_logp, weights, behaviour_logits, start_states,
                   advantages, returns) -> dict[str, float]:
        """PPO on the policy net (clipped against ``proximal_logp``, advantages times ``weights``) and the value net."""
        config, N = self.config, self.config.num_envs
        per_mb = N // config.num_minibatches
        trained = sorted({self.policy_net, self.value_net})
        stats = {k: [] for k in ("policy", "value", "entropy", "kl", "to_actor")}
        for _ in range(config.update_epochs):
            perm = torch.randperm(N).to(self.device)
            for m in range(config.num_minibatches):
                idx = perm[m * per_mb:(m + 1) * per_mb]
                outs = {name: self.models[name].forward_sequence(
                    x[:, idx], _select(start_states[name], idx), starts[:, idx])[0] for name in trained}
                logits = outs[self.policy_net][..., :self.n]
                logp, entropy = self.head.log_prob_entropy(logits, actions[:, idx])
                adv = advantages[:, idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8) * weights[:, idx]
                pg, kl, _ = clipped_policy_loss(logp, proximal_logp[:, idx], adv, config.clip_coef)
                v = value_loss(outs[self.value_net][..., self.n], returns[:, idx])
                loss = pg - config.ent_coef * entropy.mean() + config.vf_coef * v
                to_actor = torch.zeros((), device=self.device)
                if config.method == "ald" and config.learner_to_actor_kl:
                    to_actor = categorical_kl(behaviour_logits[:, idx], logits).mean()
                    loss = loss + config.learner_to_actor_kl * to_actor
                for name in trained:
                    self.opts[name].zero_grad(set_to_none=True)
                loss.backward()
                for name in trained:
                    nn.utils.clip_grad_norm_(self.models[name].parameters(), config.max_grad_norm)
                    self.opts[name].step()
                for k, val in (("policy", pg), ("value", v), ("entropy", entropy.mean()), ("kl", kl),
                               ("to_actor", to_actor)):
                    stats[k].append(val.item())
        out = {"losses/policy_loss": float(np.mean(stats["policy"])),
               "losses/value_loss": float(np.mean(stats["value"])),
               "losses/entropy": float(np.mean(stats["entropy"])),
               "losses/approx_kl": float(np.mean(stats["kl"]))}
        if config.method == "ald":
            out["losses/learner_to_actor_kl"] = float(np.mean(stats["to_actor"]))
        return out

    def _distill(self, replay: list, learner: nn.Module, rng, generator) -> dict[str, float]:
        """The actor's distillation updates on rollouts drawn from ``replay``, with ``learner``'s
        outputs as targets; ``rng`` (``random``-like) and ``generator`` (torch, or None for the
        global one) draw the rollouts and environments."""
        config, N = self.config, self.config.num_envs
        actor = self.models["actor"]
        per_mb = N // config.num_minibatches
        kls, errors = [], []
        updates = config.distill_steps_per_rl_step * config.num_minibatches
        # distillation never changes the learner, so its targets on each replayed rollout are
        # computed once per call (one forward per rollout, not one per minibatch)
        targets = {}
        for _ in range(updates):
            k = rng.randrange(len(replay))
            x, starts, actor_start, learner_start = replay[k]
            idx = torch.randperm(N, generator=generator)[:per_mb].to(self.device)
            if k not in targets:
                with torch.no_grad():
                    targets[k] = learner.forward_sequence(x, learner_start, starts)[0]
            target = targets[k][:, idx]
            out, _ = actor.forward_sequence(x[:, idx], _select(actor_start, idx), starts[:, idx])
            loss, kl, error = distillation_loss(target[..., :self.n], out[..., :self.n], target[..., self.n],
                                                out[..., self.n], config.distill_value_coef)
            self.opts["actor"].zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(actor.parameters(), config.max_grad_norm)
            self.opts["actor"].step()
            kls.append(kl.item())
            errors.append(error.item())
        return {"distill/kl": float(np.mean(kls)) if kls else math.nan,
                "distill/value_error": float(np.mean(errors)) if errors else math.nan}
