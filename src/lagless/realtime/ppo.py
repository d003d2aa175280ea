"""PPO for real-time agents: roll out with the pipeline state carried, learn on whole sequences.

The actor's state is carried from step to step and reset at episode starts; at update time
each minibatch takes whole environments and re-runs the network over the rollout from the
state stored at its start (BPTT through the pipeline), so delays are the same in learning
as in acting.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lagless.realtime.agent import ActorCritic
from lagless.realtime.ppo_config import PPOConfig
from lagless.realtime.ppo_loss import clipped_policy_loss, gae, value_loss
from lagless.realtime.run_files import (
    RunFiles,
    open_run,
    restore_training_state,
    save_training_state,
)

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    global_step: int
    episode_returns: list[float] = field(default_factory=list)
    sps: float = 0.0


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _clone_state(state):
    return tuple(tuple(t.clone() for t in part) for part in state)


def _select(state, idx):
    return tuple(tuple(t[idx] for t in part) for part in state)


def _truncated_final_obs(layout, infos: dict, truncated: np.ndarray) -> list[tuple[int, torch.Tensor]]:
    """(env index, flat last observation) of the episodes cut by a time limit at this step."""
    final = infos.get("final_obs")
    if final is None:
        return []
    out = []
    for i in np.nonzero(truncated)[0]:
        obs_i = final[i]
        if isinstance(obs_i, dict):
            x = layout.flatten({k: np.asarray(v)[None] for k, v in obs_i.items()})
        else:
            x = layout.flatten(np.asarray(obs_i)[None])
        out.append((int(i), x[0]))
    return out


def _bootstrap_truncations(agent: ActorCritic, rewards: torch.Tensor, cut, gamma: float) -> None:
    """Add gamma * V(last observation) to the reward of steps that a time limit cut short.

    Only a stateless critic can value a lone observation; a delayed critic treats the cut as
    an episode end.
    """
    if not cut or agent.critic.initial_state(1):
        return
    x = torch.stack([obs for _, _, obs in cut]).unsqueeze(0)
    values, _ = agent.values(x, (), None)
    for (t, i, _), v in zip(cut, values[0]):
        rewards[t, i] += gamma * v


def train(config: PPOConfig, *, resume: bool = False) -> TrainResult:
    """Train (or, with ``resume``, continue) a run; returns when ``total_steps`` are done."""
    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    run: RunFiles = open_run(config, resume=resume)
    _seed_everything(config.seed)
    envs = config.make_envs(config.num_envs, seed=config.seed)
    agent = ActorCritic(config, envs.single_observation_space, envs.single_action_space)
    # fused: one kernel per parameter; PyTorch otherwise picks a per-tensor loop on CPU (4x slower)
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.lr, eps=1e-5, fused=True)

    N, T = config.num_envs, config.rollout_steps
    batch = N * T
    num_updates = math.ceil(config.total_steps / batch)
    global_step, update = 0, 0
    recent = deque(maxlen=100)
    all_returns: list[float] = []
    if run.checkpoint is not None:
        global_step, update, restored = restore_training_state(run, agent, optimizer)
        recent.extend(restored)
        log.info("resumed %s at step %d", run.path, global_step)
    if global_step >= config.total_steps:
        log.info("run %s already has %d of %d steps", run.path, global_step, config.total_steps)
        run.finish(agent)
        envs.close()
        return TrainResult(run.path, global_step, [], 0.0)

    # a resumed run restarts its episodes; seed them from the step so they differ from the start
    obs, _ = envs.reset(seed=config.seed + global_step)
    layout = agent.layout
    actor_state, critic_state = agent.initial_state(N)
    starts = torch.ones(N, dtype=torch.bool)
    ep_return = np.zeros(N)
    ep_length = np.zeros(N, dtype=np.int64)

    buf_x = torch.zeros(T, N, layout.flat_dim)
    buf_starts = torch.zeros(T, N, dtype=torch.bool)
    buf_actions = torch.zeros(T, N, dtype=torch.long)
    buf_logprob = torch.zeros(T, N)
    buf_rewards = torch.zeros(T, N)
    buf_dones = torch.zeros(T, N)

    bar = tqdm(total=config.total_steps, initial=global_step, unit="step", dynamic_ncols=True,
               disable=not config.progress, desc=f"{config.arch} {config.env}")
    next_checkpoint = (global_step // config.checkpoint_every + 1) * config.checkpoint_every
    t_start, steps_at_start = time.perf_counter(), global_step
    try:
        while global_step < config.total_steps:
            update += 1
            if config.anneal_lr:
                frac = max(0.0, 1.0 - (update - 1) / num_updates)
                optimizer.param_groups[0]["lr"] = frac * config.lr
            start_state = _clone_state((actor_state, critic_state))
            finished_returns, finished_lengths, cut = [], [], []
            for t in range(T):
                x = layout.flatten(obs)
                action, logprob, actor_state = agent.act(x, actor_state, starts)
                obs, reward, terminated, truncated, infos = envs.step(action.numpy())
                reward = np.asarray(reward, dtype=np.float64)
                done = np.logical_or(terminated, truncated)
                ep_return += reward
                ep_length += 1
                if truncated.any():
                    trunc_only = np.logical_and(truncated, np.logical_not(terminated))
                    cut += [(t, i, o) for i, o in _truncated_final_obs(layout, infos, trunc_only)]
                buf_x[t] = x
                buf_starts[t] = starts
                buf_actions[t] = action
                buf_logprob[t] = logprob
                buf_rewards[t] = torch.as_tensor(reward, dtype=torch.float32)
                buf_dones[t] = torch.as_tensor(done, dtype=torch.float32)
                starts = torch.as_tensor(done)
                for i in np.nonzero(done)[0]:
                    finished_returns.append(float(ep_return[i]))
                    finished_lengths.append(int(ep_length[i]))
                ep_return[done] = 0.0
                ep_length[done] = 0
            global_step += batch

            # the critic, for the whole rollout at once (it did not take part in acting)
            buf_values, critic_state = agent.values(buf_x, critic_state, buf_starts)
            next_value = agent.values(layout.flatten(obs)[None], critic_state, starts[None])[0][0]
            _bootstrap_truncations(agent, buf_rewards, cut, config.gamma)
            advantages, returns = gae(buf_rewards, buf_values, buf_dones, next_value,
                                      config.gamma, config.gae_lambda)
            losses = _ppo_update(agent, optimizer, config, start_state, buf_x, buf_starts,
                                 buf_actions, buf_logprob, advantages, returns, buf_values)

            recent.extend(finished_returns)
            all_returns.extend(finished_returns)
            elapsed = time.perf_counter() - t_start
            sps = (global_step - steps_at_start) / max(elapsed, 1e-9)
            metrics = {
                "charts/episodic_return": float(np.mean(finished_returns)) if finished_returns else math.nan,
                "charts/episodic_length": float(np.mean(finished_lengths)) if finished_lengths else math.nan,
                "charts/recent_return": float(np.mean(recent)) if recent else math.nan,
                "charts/episodes": float(len(finished_returns)),
                "charts/learning_rate": optimizer.param_groups[0]["lr"],
                "charts/sps": sps,
                **losses,
            }
            run.metrics.log(global_step, metrics)
            bar.update(batch)
            bar.set_postfix(sps=f"{sps:,.0f}", ret=f"{metrics['charts/recent_return']:.2f}")
            if global_step >= next_checkpoint or global_step >= config.total_steps:
                save_training_state(run, agent, optimizer, global_step, update, list(recent))
                next_checkpoint = (global_step // config.checkpoint_every + 1) * config.checkpoint_every
    except KeyboardInterrupt:
        save_training_state(run, agent, optimizer, global_step, update, list(recent))
        bar.close()
        envs.close()
        run.close()
        raise
    bar.close()
    envs.close()
    sps = (global_step - steps_at_start) / max(time.perf_counter() - t_start, 1e-9)
    run.finish(agent)
    return TrainResult(run.path, global_step, all_returns, sps)


def _ppo_update(agent, optimizer, config, start_state, buf_x, buf_starts, buf_actions,
                buf_logprob, advantages, returns, old_values) -> dict[str, float]:
    """Epochs over env-wise minibatches, each re-running the network over whole sequences."""
    N = config.num_envs
    per_mb = N // config.num_minibatches
    stats = {"policy": [], "value": [], "entropy": [], "kl": [], "clipfrac": []}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for _ in range(config.update_epochs):
        perm = torch.randperm(N)
        for m in range(config.num_minibatches):
            idx = perm[m * per_mb:(m + 1) * per_mb]
            logprob, entropy, values = agent.evaluate_sequence(
                buf_x[:, idx], buf_actions[:, idx], _select(start_state, idx), buf_starts[:, idx])
            adv = advantages[:, idx]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg_loss, kl, clipfrac = clipped_policy_loss(logprob, buf_logprob[:, idx], adv, config.clip_coef)
            v_loss = value_loss(values, returns[:, idx])
            ent = entropy.mean()
            loss = pg_loss - config.ent_coef * ent + config.vf_coef * v_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
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
