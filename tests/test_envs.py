"""Tests for lagless.envs: factory shapes, wrapper semantics, user errors and determinism."""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from lagless.envs import ActionRepeat, LastActions, ObsDelay, ObsHistory, make_env, make_single_env
from lagless.errors import LaglessError

needs_minatar = pytest.mark.skipif(
    importlib.util.find_spec("minatar") is None, reason="needs pip install 'lagless[minatar]'"
)


class CounterEnv(gym.Env):
    """Deterministic: observation is [frame, last action]; reward 1 per frame; ends after N."""

    def __init__(self, n_frames: int = 5, continuous: bool = False):
        self.n_frames = n_frames
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        if continuous:
            self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        else:
            self.action_space = spaces.Discrete(3)
        self.frames = 0  # frames played in the current episode
        self.total_frames = 0

    def _obs(self, action: float = 0.0) -> np.ndarray:
        return np.array([self.frames, action], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.frames = 0
        return self._obs(), {}

    def step(self, action):
        self.frames += 1
        self.total_frames += 1
        first = float(np.asarray(action).reshape(-1)[0])
        return self._obs(first), 1.0, self.frames >= self.n_frames, False, {}


@needs_minatar
def test_minatar_vector_env_shapes_and_dtypes():
    envs = make_env("MinAtar/Breakout-v1", num_envs=3, tau=2, last_actions=2, obs_history=1)
    obs, _ = envs.reset(seed=0)
    assert set(obs) == {"observation", "last_actions"}
    # Breakout has 4 channels and 3 actions; history 1 doubles channels, HWC kept.
    assert obs["observation"].shape == (3, 10, 10, 8)
    assert obs["observation"].dtype == np.float32
    assert obs["last_actions"].shape == (3, 2 * 3)
    assert obs["last_actions"].dtype == np.float32
    assert not obs["last_actions"].any()
    obs, rew, term, trunc, _ = envs.step(np.array([1, 2, 0]))
    assert obs["observation"].shape == (3, 10, 10, 8)
    assert rew.shape == term.shape == trunc.shape == (3,)
    np.testing.assert_array_equal(
        obs["last_actions"][:, :3], np.eye(3, dtype=np.float32)[[1, 2, 0]]
    )
    assert envs.single_observation_space["observation"].shape == (10, 10, 8)
    envs.close()


@needs_minatar
def test_minatar_plain_obs_and_time_limit():
    env = make_single_env("MinAtar/Breakout-v1")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (10, 10, 4) and obs.dtype == np.float32
    assert set(np.unique(obs)) <= {0.0, 1.0}
    assert env.spec.max_episode_steps == 10_000
    assert (
        make_single_env("MinAtar/Breakout-v1", max_episode_frames=50).spec.max_episode_steps == 50
    )
    assert make_single_env("CartPole-v1").spec.max_episode_steps == 500


def test_action_repeat_sums_rewards_and_stops_at_termination():
    base = CounterEnv(n_frames=5)
    env = ActionRepeat(base, 3)
    env.reset()
    obs, reward, terminated, truncated, _ = env.step(1)
    assert reward == 3.0 and not terminated and not truncated
    assert obs[0] == 3 and base.total_frames == 3
    obs, reward, terminated, _, _ = env.step(1)
    # Only 2 frames were left in the episode: stops early, returns the last observation.
    assert reward == 2.0 and terminated
    assert obs[0] == 5 and base.total_frames == 5


def test_action_repeat_counts_frames_against_time_limit():
    base = CounterEnv(n_frames=100)
    env = ActionRepeat(gym.wrappers.TimeLimit(base, 7), 3)
    env.reset()
    rewards, truncs = [], []
    for _ in range(3):
        _, r, _, trunc, _ = env.step(0)
        rewards.append(r)
        truncs.append(trunc)
    assert rewards == [3.0, 3.0, 1.0] and truncs == [False, False, True]
    assert base.total_frames == 7


def test_last_actions_one_hot_and_reset():
    env = LastActions(CounterEnv(n_frames=100), 3)
    assert env.observation_space["last_actions"].shape == (9,)
    obs, _ = env.reset()
    assert not obs["last_actions"].any()
    for a in (2, 0, 1):
        obs, *_ = env.step(a)
    expected = np.concatenate([np.eye(3)[1], np.eye(3)[0], np.eye(3)[2]]).astype(np.float32)
    np.testing.assert_array_equal(obs["last_actions"], expected)
    assert obs["last_actions"].dtype == np.float32
    assert obs["observation"][0] == 3
    obs, *_ = env.step(1)  # oldest action (2) drops out
    expected = np.concatenate([np.eye(3)[1], np.eye(3)[1], np.eye(3)[0]]).astype(np.float32)
    np.testing.assert_array_equal(obs["last_actions"], expected)
    obs, _ = env.reset()
    assert not obs["last_actions"].any()


def test_last_actions_box_raw_values():
    env = LastActions(CounterEnv(continuous=True), 2)
    assert env.observation_space["last_actions"].shape == (4,)
    env.reset()
    env.step(np.array([0.5, -0.5]))
    obs, *_ = env.step(np.array([0.25, 1.0]))
    np.testing.assert_allclose(obs["last_actions"], [0.25, 1.0, 0.5, -0.5])


def test_obs_history_order_and_zero_padding():
    env = ObsHistory(CounterEnv(n_frames=100), 2)
    assert env.observation_space.shape == (6,)
    assert env.observation_space.dtype == np.float32
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs, [0, 0, 0, 0, 0, 0])
    first, *_ = env.step(1)
    np.testing.assert_array_equal(first, [1, 1, 0, 0, 0, 0])
    obs, *_ = env.step(2)
    np.testing.assert_array_equal(obs, [2, 2, 1, 1, 0, 0])
    obs, *_ = env.step(0)
    np.testing.assert_array_equal(obs, [3, 0, 2, 2, 1, 1])
    np.testing.assert_array_equal(first, [1, 1, 0, 0, 0, 0])  # earlier returns are not mutated
    for _ in range(3):
        env.step(1)
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs, np.zeros(6))


@needs_minatar
def test_obs_history_images_stack_channels_most_recent_first():
    env = make_single_env("MinAtar/Breakout-v1", obs_history=2)
    assert env.observation_space.shape == (10, 10, 12)
    obs0, _ = env.reset(seed=1)
    assert not obs0[..., 4:].any()
    obs1, *_ = env.step(0)
    obs2, *_ = env.step(0)
    np.testing.assert_array_equal(obs2[..., 4:8], obs1[..., :4])
    np.testing.assert_array_equal(obs2[..., 8:], obs0[..., :4])


def test_obs_delay_shows_observations_late_and_rewards_on_time():
    env = ObsDelay(CounterEnv(n_frames=4), 2)
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs, [0, 0])
    seen, rewards, ends = [], [], []
    for action in (1, 2, 0, 1):
        obs, reward, terminated, _, _ = env.step(action)
        seen.append(obs.tolist())
        rewards.append(reward)
        ends.append(terminated)
    # step t shows the observation of step t - 2 (the first one until then)
    assert seen == [[0, 0], [0, 0], [1, 1], [2, 2]]
    assert rewards == [1.0] * 4 and ends == [False, False, False, True]
    obs, _ = env.reset()  # nothing from the last episode leaks into the next
    first, *_ = env.step(2)
    np.testing.assert_array_equal(obs, [0, 0])
    np.testing.assert_array_equal(first, [0, 0])


def test_obs_delay_sits_under_last_actions():
    """The delayed observation comes with the actions taken since, undelayed."""
    env = make_single_env("CartPole-v1", obs_delay=1, last_actions=1)
    plain = make_single_env("CartPole-v1")
    env.reset(seed=3)
    ref, _ = plain.reset(seed=3)
    late, *_ = env.step(1)
    plain.step(1)
    np.testing.assert_array_equal(late["observation"], ref)  # one step late
    np.testing.assert_array_equal(late["last_actions"], [0, 1])  # the action just taken


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"env_id": "Foo-v0"}, "Foo-v0"),
        pytest.param({"env_id": "MinAtar/Nope-v1"}, "MinAtar/Nope-v1", marks=needs_minatar),
        ({"env_id": "CartPole-v1", "tau": 0}, "--tau"),
        ({"env_id": "CartPole-v1", "last_actions": -1}, "--last-actions"),
        ({"env_id": "CartPole-v1", "obs_history": -2}, "--obs-history"),
        ({"env_id": "CartPole-v1", "obs_delay": -1}, "--obs-delay"),
        ({"env_id": "CartPole-v1", "num_envs": 0}, "--num-envs"),
        ({"env_id": "CartPole-v1", "max_episode_frames": 0}, "--max-episode-frames"),
    ],
)
def test_user_errors(kwargs, needle):
    with pytest.raises(LaglessError, match=needle) as info:
        make_env(**kwargs)
    assert "\n" not in str(info.value)


def test_unknown_id_message():
    with pytest.raises(LaglessError, match="not a registered Gymnasium id"):
        make_single_env("Foo-v0")


@needs_minatar
def test_same_seed_same_trajectory():
    def rollout(seed):
        envs = make_env("MinAtar/Breakout-v1", num_envs=2, seed=seed, last_actions=1)
        obs, _ = envs.reset(seed=seed)
        frames = [obs["observation"].copy()]
        actions = np.random.default_rng(0).integers(0, 3, size=(60, 2))
        for a in actions:
            obs, *_ = envs.step(a)
            frames.append(obs["observation"].copy())
        sampled = envs.action_space.sample()
        envs.close()
        return np.stack(frames), sampled

    a, sa = rollout(3)
    b, sb = rollout(3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa, sb)
    c, _ = rollout(4)
    assert not np.array_equal(a, c)


@needs_minatar
def test_same_step_autoreset_reports_final_obs():
    envs = make_env("MinAtar/Breakout-v1", num_envs=2, max_episode_frames=4, tau=2)
    envs.reset(seed=0)
    envs.step(np.zeros(2, dtype=np.int64))
    obs, _, _, trunc, infos = envs.step(np.zeros(2, dtype=np.int64))
    assert trunc.all()
    assert infos["_final_obs"].all()
    assert infos["final_obs"][0].shape == (10, 10, 4)
    assert obs.shape == (2, 10, 10, 4)
