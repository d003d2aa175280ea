"""A replay of transitions that samples short sequences, each inside one episode.

Each environment writes its own stream ([capacity, num_envs] arrays), so consecutive
steps of an episode sit next to each other. A sample is a window ending at a random
stored step: ``burn_in`` steps that only set the actor's state, then ``seq_len`` training
steps. Steps of the window from another episode (or not stored any more) are padding: the
actor's state is reset at the first real step and the loss ignores padding, so no sequence
ever crosses an episode end.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SequenceBatch:
    """``L = burn_in + seq_len`` steps per sequence, time first; ``n`` sequences."""

    obs: torch.Tensor  # [L + 1, n, D]: the window's observations, then the last step's next observation
    starts: torch.Tensor  # [L + 1, n] bool: reset the actor's state here (at the first real step)
    actions: torch.Tensor  # [seq_len, n, A]
    rewards: torch.Tensor  # [seq_len, n]
    terminated: torch.Tensor  # [seq_len, n] float: no bootstrap after this step
    mask: torch.Tensor  # [seq_len, n] float: 1 for real training steps, 0 for padding
    index: torch.Tensor  # [L, n] buffer rows of the window (for tests and debugging)
    env: torch.Tensor  # [n] which environment's stream
    episode: torch.Tensor  # [L, n] episode ids (-1 for padding)


class SequenceReplay:
    """Circular storage of (obs, action, reward, terminated, next_obs, episode) per environment."""

    def __init__(self, capacity: int, num_envs: int, obs_dim: int, action_dim: int,
                 device: torch.device | str = "cpu"):
        self.capacity = max(2, capacity // num_envs)  # rows; each row holds one step of every env
        self.num_envs = num_envs
        C, N = self.capacity, num_envs
        kw = {"device": device}
        self.obs = torch.zeros(C, N, obs_dim, **kw)
        self.next_obs = torch.zeros(C, N, obs_dim, **kw)
        self.actions = torch.zeros(C, N, action_dim, **kw)
        self.rewards = torch.zeros(C, N, **kw)
        self.terminated = torch.zeros(C, N, **kw)
        self.episode = torch.full((C, N), -1, dtype=torch.long, **kw)
        self.pos = 0  # the next row to write
        self.size = 0  # rows stored
        self.device = torch.device(device)

    def add(self, obs, action, reward, terminated, next_obs, episode) -> None:
        """One step of every environment (tensors with a leading ``num_envs`` axis)."""
        p = self.pos
        self.obs[p] = obs
        self.actions[p] = action
        self.rewards[p] = reward
        self.terminated[p] = terminated
        self.next_obs[p] = next_obs
        self.episode[p] = episode
        self.pos = (p + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def __len__(self) -> int:
        return self.size * self.num_envs

    def sample(self, n: int, seq_len: int, burn_in: int) -> SequenceBatch:
        """``n`` windows of ``burn_in + seq_len`` steps, each ending at a uniformly drawn stored step."""
        if self.size == 0:
            raise ValueError("the replay is empty")
        L = burn_in + seq_len
        C, dev = self.capacity, self.device
        env = torch.randint(self.num_envs, (n,), device=dev)
        age_end = torch.randint(self.size, (n,), device=dev)  # 0: the newest row
        ages = age_end.unsqueeze(0) + torch.arange(L - 1, -1, -1, device=dev).unsqueeze(1)  # [L, n]
        rows = (self.pos - 1 - ages) % C
        stored = ages < self.size
        episode = self.episode[rows, env]
        real = stored & (episode == episode[-1])  # only the end step's episode; the rest is padding
        # a window is real from its first real step on (an episode's steps are consecutive)
        real = real & (torch.cumsum(real.long().flip(0), 0).flip(0) == torch.arange(L, 0, -1, device=dev)
                       .unsqueeze(1))
        first = real & ~torch.cat([torch.zeros_like(real[:1]), real[:-1]])
        obs = self.obs[rows, env] * real.unsqueeze(-1)
        obs = torch.cat([obs, self.next_obs[rows[-1], env].unsqueeze(0)])
        # reset only at the first real step: padding before it is zeros and is forgotten there, and
        # an LSTM runs one call per stretch between resets
        starts = torch.cat([first, torch.zeros_like(real[:1])])
        train = slice(burn_in, L)
        return SequenceBatch(
            obs=obs, starts=starts, actions=self.actions[rows[train], env[None]],
            rewards=self.rewards[rows[train], env[None]], terminated=self.terminated[rows[train], env[None]],
            mask=real[train].float(), index=rows, env=env, episode=torch.where(real, episode, -1))

    # -- checkpoints ---------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The stored rows, oldest first (only what is filled, so early checkpoints stay small)."""
        order = (torch.arange(self.size, device=self.device) + self.pos - self.size) % self.capacity
        return {name: getattr(self, name)[order] for name in
                ("obs", "next_obs", "actions", "rewards", "terminated", "episode")}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        rows = int(tensors["obs"].shape[0]) if "obs" in tensors else 0
        rows = min(rows, self.capacity)
        for name in ("obs", "next_obs", "actions", "rewards", "terminated", "episode"):
            if rows:
                getattr(self, name)[:rows] = tensors[name][-rows:].to(self.device)
        self.size, self.pos = rows, rows % self.capacity
