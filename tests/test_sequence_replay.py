"""The SAC replay: sequences stay inside one episode, and burn-in rebuilds the acting state."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from lagless.realtime import make_actor
from lagless.realtime.sequence_replay import SequenceReplay


def _fill(replay, lengths_per_env, steps, rng, obs_dim=3):
    """Write ``steps`` rows; env i's episodes have lengths drawn from ``lengths_per_env[i]``."""
    n = replay.num_envs
    episode = torch.arange(n)
    next_id, left = n, [int(rng.choice(lengths_per_env[i])) for i in range(n)]
    for _ in range(steps):
        obs = torch.randn(n, obs_dim)
        done = torch.tensor([left[i] == 1 for i in range(n)])
        replay.add(obs, torch.randn(n, 1), torch.randn(n), done.float(), torch.randn(n, obs_dim), episode.clone())
        for i in range(n):
            left[i] -= 1
            if left[i] == 0:
                episode[i], next_id = next_id, next_id + 1
                left[i] = int(rng.choice(lengths_per_env[i]))


@pytest.mark.parametrize("capacity,steps", [(400, 150), (200, 700)])  # not full, then wrapped around
def test_sequences_never_cross_an_episode_end(capacity, steps):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    replay = SequenceReplay(capacity, num_envs=2, obs_dim=3, action_dim=1)
    _fill(replay, [[1, 2, 3, 7], [4, 20, 40]], steps, rng)
    burn_in, seq_len = 5, 4
    b = replay.sample(512, seq_len, burn_in)
    L = burn_in + seq_len
    assert b.obs.shape == (L + 1, 512, 3) and b.mask.shape == (seq_len, 512)
    real = b.episode >= 0
    for j in range(512):
        ids = b.episode[:, j][real[:, j]]
        assert len(ids) >= 1 and bool(real[-1, j])  # the sequence ends at a stored step
        assert (ids == ids[-1]).all()  # one episode only
        first = int(torch.nonzero(real[:, j])[0])
        assert real[first:, j].all()  # padding only before the episode's first step
        rows = b.index[first:, j]
        assert (((rows[1:] - rows[:-1]) % replay.capacity) == 1).all()  # consecutive steps
        assert bool(b.starts[first, j]) and not b.starts[first + 1:L, j].any()
        assert torch.equal(b.mask[:, j], real[burn_in:, j].float())
        # no step of the window but the last may end its episode
        assert not replay.terminated[b.index[first:-1, j], b.env[j]].any()
    assert (b.obs[:L][~real] == 0).all()


def test_sample_of_an_empty_replay_is_refused():
    with pytest.raises(ValueError):
        SequenceReplay(10, 1, 2, 1).sample(4, 2, 1)


@pytest.mark.parametrize("arch", ["chain", "skip", "res_skip"])
def test_burn_in_gives_the_actor_the_output_it_had_when_acting(arch):
    """After ``max_delay`` burn-in steps a pipelined actor's registers are exactly as in acting."""
    torch.manual_seed(1)
    space = gym.spaces.Box(-1, 1, (4,))
    actor = make_actor(arch, space, gym.spaces.Box(-1, 1, (2,)), layers=4, hidden=8)
    n_env, steps = 2, 120
    replay = SequenceReplay(1000, n_env, 4, 1)
    rng = np.random.default_rng(1)
    state = actor.initial_state(n_env)
    starts = torch.ones(n_env, dtype=torch.bool)
    episode, next_id = torch.arange(n_env), n_env
    acted = torch.zeros(steps, n_env, 2)
    with torch.no_grad():
        for t in range(steps):
            obs = torch.randn(n_env, 4)
            out, state = actor(obs, state, starts)
            acted[t] = out
            done = torch.as_tensor(rng.random(n_env) < 0.08)
            replay.add(obs, torch.zeros(n_env, 1), torch.zeros(n_env), done.float(), torch.randn(n_env, 4),
                       episode.clone())
            episode = torch.where(done, torch.arange(next_id, next_id + n_env), episode)
            next_id += n_env
            starts = done
        burn_in, seq_len = actor.max_delay, 6
        b = replay.sample(64, seq_len, burn_in)
        out, _ = actor.forward_sequence(b.obs, actor.initial_state(64), b.starts)
    for j in range(64):
        for k in range(seq_len):
            if b.mask[k, j]:
                row = b.index[burn_in + k, j]
                torch.testing.assert_close(out[burn_in + k, j], acted[row, b.env[j]])
