"""PPO for real-time agents: roll out with the pipeline state carried, learn on whole sequences.

The actor's state is carried from step to step and reset at episode starts; at update time
each minibatch takes whole environments and re-runs the network over the rollout from the
state stored at its start (BPTT through the pipeline), so delays are the same in learning
as in acting. The run folder, checkpoints and resuming are the shared trainer loop's
(``lagless.trainers``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces

from lagless.realtime.agent import ActorCritic
from lagless.realtime.architectures import network_layout_id
from lagless.realtime.observations import final_observations
from lagless.realtime.policy import Policy
from lagless.realtime.ppo_config import PPOConfig
from lagless.realtime.ppo_loss import clipped_policy_loss, gae, value_loss
from lagless.trainers.base import Iteration, Trainer
from lagless.trainers.loop import TrainResult
from lagless.trainers.loop import train as train_run


def train(config: PPOConfig, *, resume: bool = False) -> TrainResult:
    """Train (or, with ``resume``, continue) a PPO run; returns when ``total_steps`` are done."""
    return train_run("ppo", config, resume=resume)


def _clone_state(state):
    return tuple(tuple(t.clone() for t in part) for part in state)


def _select(state, idx):
    return tuple(tuple(t[idx] for t in part) for part in state)


def bootstrap_truncations(agent: ActorCritic, rewards: torch.Tensor, cut, gamma: float) -> None:
    """Add gamma * V(last observation) to the reward of steps that a time limit cut short.

    Only a stateless critic can value a lone observation; a delayed critic treats the cut as
    an episode end.
    """
    if not cut or agent.critic.initial_state(1):
        return
    x = torch.stack([obs for _, _, obs in cut]).unsqueeze(0).to(rewards.device)
    values, _ = agent.values(x, (), None)
    for (t, i, _), v in zip(cut, values[0]):
        rewards[t, i] += gamma * v


class PPOTrainer(Trainer):
    """Real-time PPO: one ``iterate`` is one rollout of ``rollout_steps`` per env and its update."""

    name = "ppo"
    config_class = PPOConfig
    description = "PPO with pipelined actors and an asymmetric critic; Discrete or Box actions"

    @classmethod
    def build_models(cls, config, observation_space, action_space, device):
        return {"agent": ActorCritic(config, observation_space, action_space).to(device)}

    @classmethod
    def layout_id(cls, config, models):
        agent = models["agent"]
        critic_arch = "instant" if config.critic == "instant" else config.arch
        return (f"{network_layout_id(config.arch, agent.actor)}+"
                f"{network_layout_id(critic_arch, agent.critic)}+{type(agent.head).__name__}")

    @classmethod
    def make_policy(cls, config, models, observation_space, action_space):
        agent = models["agent"]
        return Policy(config, agent.actor, agent.head, critic=agent.critic, bf16=agent.bf16,
                      observation_space=observation_space, action_space=action_space)

    def __init__(self, config: PPOConfig, models, envs, device):
        super().__init__(config, models, envs, device)
        self.agent: ActorCritic = models["agent"]
        # fused: one kernel per parameter; PyTorch otherwise picks a per-tensor loop on CPU (4x slower)
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=config.lr, eps=1e-5, fused=True)
        self.update = 0
        N, T = config.num_envs, config.rollout_steps
        self.num_updates = math.ceil(config.total_steps / (N * T))
        flat = self.agent.layout.flat_dim
        discrete = isinstance(envs.single_action_space, spaces.Discrete)
        act_shape = () if discrete else (self.agent.head.out_dim,)
        kw = {"device": device}
        self.buf_x = torch.zeros(T, N, flat, **kw)
        self.buf_starts = torch.zeros(T, N, dtype=torch.bool, **kw)
        self.buf_actions = torch.zeros(T, N, *act_shape, dtype=torch.long if discrete else torch.float32, **kw)
        self.buf_logprob = torch.zeros(T, N, **kw)
        self.buf_rewards = torch.zeros(T, N, **kw)
        self.buf_dones = torch.zeros(T, N, **kw)

    def optimizers(self):
        return {"agent": self.optimizer}

    def state_meta(self):
        return {"update": self.update}

    def load_state_meta(self, meta):
        self.update = int(meta.get("update", 0))

    def start(self, global_step: int) -> None:
        config, N = self.config, self.config.num_envs
        # a resumed run restarts its episodes; seed them from the step so they differ from the start
        self.obs, _ = self.envs.reset(seed=config.seed + global_step)
        self.state = self.agent.initial_state(N)
        self.starts = torch.ones(N, dtype=torch.bool, device=self.device)
        self.ep_return = np.zeros(N)
        self.ep_length = np.zeros(N, dtype=np.int64)

    def iterate(self, global_step: int) -> Iteration:
        config, agent, layout = self.config, self.agent, self.agent.layout
        N, T = config.num_envs, config.rollout_steps
        self.update += 1
        if config.anneal_lr:
            frac = max(0.0, 1.0 - (self.update - 1) / self.num_updates)
            self.optimizer.param_groups[0]["lr"] = frac * config.lr
        start_state = _clone_state(self.state)
        actor_state, critic_state = self.state
        returns_done, lengths_done, cut = [], [], []
        for t in range(T):
            x = layout.flatten(self.obs, device=self.device)
            action, logprob, actor_state = agent.act(x, actor_state, self.starts)
            self.obs, reward, terminated, truncated, infos = self.envs.step(agent.head.env_action(action))
            reward = np.asarray(reward, dtype=np.float64)
            done = np.logical_or(terminated, truncated)
            self.ep_return += reward
            self.ep_length += 1
            if truncated.any():
                trunc_only = np.logical_and(truncated, np.logical_not(terminated))
                cut += [(t, i, o) for i, o in final_observations(layout, infos, trunc_only)]
            self.buf_x[t] = x
            self.buf_starts[t] = self.starts
            self.buf_actions[t] = action
            self.buf_logprob[t] = logprob
            self.buf_rewards[t] = torch.as_tensor(reward, dtype=torch.float32)
            self.buf_dones[t] = torch.as_tensor(done, dtype=torch.float32)
            self.starts = torch.as_tensor(done, device=self.device)
            for i in np.nonzero(done)[0]:
                returns_done.append(float(self.ep_return[i]))
                lengths_done.append(int(self.ep_length[i]))
            self.ep_return[done] = 0.0
            self.ep_length[done] = 0

        # the critic, for the whole rollout at once (it did not take part in acting)
        buf_values, critic_state = agent.values(self.buf_x, critic_state, self.buf_starts)
        next_x = layout.flatten(self.obs, device=self.device)[None]
        next_value = agent.values(next_x, critic_state, self.starts[None])[0][0]
        self.state = (actor_state, critic_state)
        bootstrap_truncations(agent, self.buf_rewards, cut, config.gamma)
        advantages, returns = gae(self.buf_rewards, buf_values, self.buf_dones, next_value,
                                  config.gamma, config.gae_lambda)
        losses = self._update(start_state, advantages, returns, buf_values)
        losses["charts/learning_rate"] = self.optimizer.param_groups[0]["lr"]
        return Iteration(N * T, returns_done, lengths_done, losses)

    def _update(self, start_state, advantages, returns, old_values) -> dict[str, float]:
        """Epochs over env-wise minibatches, each re-running the network over whole sequences."""
        config, agent = self.config, self.agent
        N, M = config.num_envs, config.minibatches()
        per_mb = N // M
        stats = {"policy": [], "value": [], "entropy": [], "kl": [], "clipfrac": []}
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        for _ in range(config.update_epochs):
            perm = torch.randperm(N).to(self.device)
            for m in range(M):
                idx = perm[m * per_mb:(m + 1) * per_mb]
                logprob, entropy, values = agent.evaluate_sequence(
                    self.buf_x[:, idx], self.buf_actions[:, idx], _select(start_state, idx),
                    self.buf_starts[:, idx])
                adv = advantages[:, idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg_loss, kl, clipfrac = clipped_policy_loss(logprob, self.buf_logprob[:, idx], adv,
                                                            config.clip_coef)
                v_loss = value_loss(values, returns[:, idx])
                ent = entropy.mean()
                loss = pg_loss - config.ent_coef * ent + config.vf_coef * v_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                self.optimizer.step()
                for k, v in (("policy", pg_loss), ("value", v_loss), ("entropy", ent), ("kl", kl),
                             ("clipfrac", clipfrac)):
                    stats[k].append(v.item())
        var_y = returns.var()
        explained = math.nan if var_y == 0 else float(1 - (returns - old_values).var() / var_y)
        return {
            "losses/policy_loss": float(np.mean(stats["policy"])),
            "losses/value_loss": float(np.mean(stats["value"])),
            "losses/entropy": float(np.mean(stats["entropy"])),
            "losses/approx_kl": float(np.mean(stats["kl"])),
            "losses/clipfrac": float(np.mean(stats["clipfrac"])),
            "losses/explained_variance": explained,
        }
