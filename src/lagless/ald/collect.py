"""Acting for ALD: environments stepped by the acting network, in-process or on Ray actors.

A collector returns whole rollouts (``Rollout``): per step the flat observation, episode
start flag, action, the acting network's logits, reward and done flag, plus the observation
after the last step and the acting network's state at the rollout's start. ``LocalCollector``
steps a vector environment in the process; ``RayCollector`` gives each Ray actor a share of
the environments and its own copy of the acting network, broadcasts the weights with one
``ray.put`` per rollout, and replaces an actor that died (its rollout is rerun from fresh
episodes, so no trajectory is half-used).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch

from lagless.errors import LaglessError
from lagless.realtime.action_heads import CategoricalHead

log = logging.getLogger(__name__)


@dataclass
class Rollout:
    x: torch.Tensor  # [T, N, D]
    starts: torch.Tensor  # [T, N] bool
    actions: torch.Tensor  # [T, N]
    logits: torch.Tensor  # [T, N, A]
    rewards: torch.Tensor  # [T, N]
    dones: torch.Tensor  # [T, N]
    next_x: torch.Tensor  # [N, D]: the observation after the last step
    next_starts: torch.Tensor  # [N] bool: it starts an episode
    start_state: tuple  # the acting network's state before the first step
    episode_returns: list
    episode_lengths: list

    def to(self, device) -> Rollout:
        move = {k: getattr(self, k).to(device) for k in ("x", "starts", "actions", "logits", "rewards", "dones",
                                                          "next_x", "next_starts")}
        return Rollout(**move, start_state=tuple(s.to(device) for s in self.start_state),
                       episode_returns=self.episode_returns, episode_lengths=self.episode_lengths)


def concat(parts: list[Rollout]) -> Rollout:
    """Rollouts of disjoint environments side by side (the env axis)."""
    cat = {k: torch.cat([getattr(p, k) for p in parts], dim=1) for k in ("x", "starts", "actions", "logits",
                                                                        "rewards", "dones")}
    cat.update({k: torch.cat([getattr(p, k) for p in parts], dim=0) for k in ("next_x", "next_starts")})
    state = tuple(torch.cat(s, dim=0) for s in zip(*(p.start_state for p in parts)))
    return Rollout(**cat, start_state=state, episode_returns=[x for p in parts for x in p.episode_returns],
                   episode_lengths=[x for p in parts for x in p.episode_lengths])


class EnvRunner:
    """A vector environment and the acting network's state: ``rollout`` steps it ``T`` times."""

    def __init__(self, envs, net, n_actions: int, device):
        self.envs, self.net, self.device = envs, net, device
        self.n = n_actions
        self.head = CategoricalHead(envs.single_action_space)

    def start(self, seed: int) -> None:
        N = self.envs.num_envs
        self.obs, _ = self.envs.reset(seed=seed)
        self.state = self.net.initial_state(N, self.device)
        self.starts = torch.ones(N, dtype=torch.bool, device=self.device)
        self.ep_return, self.ep_length = np.zeros(N), np.zeros(N, dtype=np.int64)

    @torch.inference_mode()
    def rollout(self, steps: int) -> Rollout:
        layout, N, kw = self.net.layout, self.envs.num_envs, {"device": self.device}
        x = torch.zeros(steps, N, layout.flat_dim, **kw)
        starts = torch.zeros(steps, N, dtype=torch.bool, **kw)
        actions = torch.zeros(steps, N, dtype=torch.long, **kw)
        logits = torch.zeros(steps, N, self.n, **kw)
        rewards, dones = torch.zeros(steps, N, **kw), torch.zeros(steps, N, **kw)
        returns_done, lengths_done = [], []
        start_state = tuple(s.clone() for s in self.state)
        for t in range(steps):
            x[t] = layout.flatten(self.obs, device=self.device)
            out, self.state = self.net(x[t], self.state, self.starts)
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
        return Rollout(x, starts, actions, logits, rewards, dones, layout.flatten(self.obs, device=self.device),
                       self.starts.clone(), start_state, returns_done, lengths_done)


class LocalCollector:
    """The acting network steps the run's own vector environment, in this process."""

    restarts = 0

    def __init__(self, envs, net, n_actions: int, device):
        self.runner = EnvRunner(envs, net, n_actions, device)

    def start(self, seed: int) -> None:
        self.runner.start(seed)

    def collect(self, steps: int) -> Rollout:
        return self.runner.rollout(steps)

    def close(self) -> None:
        pass


class _RayWorker:
    """One Ray actor: its share of the environments and a CPU copy of the acting network."""

    def __init__(self, config, models_fn, acting: str, num_envs: int, seed: int):
        torch.set_num_threads(1)
        envs = config.make_envs(num_envs, seed=seed)
        net = models_fn(config, envs.single_observation_space, envs.single_action_space,
                        torch.device("cpu"))[acting]
        self.runner = EnvRunner(envs, net, int(envs.single_action_space.n), torch.device("cpu"))
        self.runner.start(seed)

    def rollout(self, weights: dict, steps: int) -> Rollout:
        self.runner.net.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
        r = self.runner.rollout(steps)
        plain = {k: getattr(r, k).clone() for k in ("x", "starts", "actions", "logits", "rewards", "dones",
                                                     "next_x", "next_starts")}  # inference tensors do not pickle
        return Rollout(**plain, start_state=tuple(s.clone() for s in r.start_state),
                       episode_returns=r.episode_returns, episode_lengths=r.episode_lengths)


def check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail in one line, at once, when nothing answers at a Ray address (ray.init would wait minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise LaglessError(f"--ray-address '{address}' is not HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise LaglessError(f"nothing answers at --ray-address {address} ({e}): start the cluster there with "
                           "'ray start --head', or drop --ray-address to run a local one") from None


class RayCollector:
    """``num_actors`` Ray actors step the environments; a dead actor is replaced and its rollout rerun."""

    def __init__(self, config, models_fn, acting: str, net, device):
        import ray

        if not ray.is_initialized():
            try:
                if config.ray_address:
                    check_reachable(config.ray_address)
                    ray.init(address=config.ray_address, log_to_driver=False)
                else:
                    ray.init(num_cpus=max(2, config.num_actors), include_dashboard=False,
                             object_store_memory=200_000_000, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise LaglessError(f"could not join the Ray cluster at '{config.ray_address}' ({e}): start it "
                                   "with 'ray start --head' or drop --ray-address to run a local one") from None
            self._owns_ray = True
        else:
            self._owns_ray = False
        self.ray, self.config, self.models_fn, self.acting, self.net, self.device = (
            ray, config, models_fn, acting, net, device)
        self.share = config.num_envs // config.num_actors
        self.restarts = 0
        self.name_prefix = f"lagless-ald-{os.getpid()}-{id(self):x}"
        self.workers = [self._worker(i, config.seed + 1000 * i) for i in range(config.num_actors)]

    def _worker(self, i: int, seed: int):
        remote = self.ray.remote(num_cpus=1, max_restarts=0)(_RayWorker)  # replaced by us, with fresh seeds
        # named, so that tools (and the failure test of benchmarks/ald_ray.py) can find the actors of a run
        name = f"{self.name_prefix}-{i}-{self.restarts}"
        return remote.options(name=name).remote(self.config, self.models_fn, self.acting, self.share, seed)

    def start(self, seed: int) -> None:
        pass  # each worker reset its environments when it was made

    def collect(self, steps: int) -> Rollout:
        weights = self.ray.put({k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()})
        pending = {i: w.rollout.remote(weights, steps) for i, w in enumerate(self.workers)}
        parts = {}
        for i, ref in pending.items():
            try:
                parts[i] = self.ray.get(ref)
            except self.ray.exceptions.RayError as e:  # the actor died: replace it, rerun its share
                self.restarts += 1
                log.warning("Ray actor %d failed (%s); replacing it", i, type(e).__name__)
                self.ray.kill(self.workers[i], no_restart=True)
                self.workers[i] = self._worker(i, self.config.seed + 1000 * i + 7919 * self.restarts)
                parts[i] = self.ray.get(self.workers[i].rollout.remote(weights, steps))
        return concat([parts[i] for i in range(len(self.workers))]).to(self.device)

    def close(self) -> None:
        for w in self.workers:
            self.ray.kill(w)
        if self._owns_ray:
            self.ray.shutdown()
