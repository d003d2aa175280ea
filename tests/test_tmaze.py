"""The T-maze memory task: cue at the first step only, reward for the turn the cue named."""

import numpy as np
import pytest

from lagless.envs import make_env, make_single_env
from lagless.envs.tmaze import FORWARD, LEFT, RIGHT


def _play(env, seed, turn_with_cue: bool):
    obs, info = env.reset(seed=seed)
    cue = LEFT if obs[0] == 1 else RIGHT
    assert obs[:2].sum() == 1 and info["goal"] == cue  # the cue names the goal
    seen, total, done = [obs], 0.0, False
    while not done:
        at_junction = obs[3] == 1
        if at_junction:
            action = cue if turn_with_cue else (RIGHT if cue == LEFT else LEFT)
        else:
            action = FORWARD
        obs, reward, terminated, truncated, _ = env.step(action)
        seen.append(obs)
        total += reward
        done = terminated or truncated
    return total, seen, terminated


@pytest.mark.parametrize("env_id,length", [("lagless/TMaze-v0", 10), ("lagless/TMaze-L3-v0", 3),
                                           ("lagless/TMaze-L50-v0", 50)])
def test_the_optimal_policy_earns_the_full_reward_and_the_wrong_turn_nothing(env_id, length):
    env = make_single_env(env_id)
    for seed in range(8):
        total, seen, terminated = _play(env, seed, turn_with_cue=True)
        assert total == 1.0 and terminated and len(seen) == length + 2
        assert all(o[:2].sum() == 0 for o in seen[1:])  # the cue is visible only at the first step
        wrong, _, _ = _play(env, seed, turn_with_cue=False)
        assert wrong == 0.0


def test_both_cues_occur_and_a_memoryless_agent_is_at_chance():
    env = make_single_env("lagless/TMaze-L2-v0")
    goals = [env.reset(seed=s)[1]["goal"] for s in range(200)]
    assert 0.35 < np.mean(np.array(goals) == LEFT) < 0.65


def test_turning_in_the_corridor_does_nothing_and_the_time_limit_cuts():
    envs = make_env("lagless/TMaze-L4-v0", num_envs=1)
    envs.reset(seed=0)
    for _ in range(2 * 4 + 10):
        obs, reward, terminated, truncated, _ = envs.step(np.array([LEFT]))
        assert obs[0][2] == 1 and reward[0] == 0 and not terminated[0]
    assert truncated[0]


def test_a_malformed_tmaze_id_is_an_unknown_environment():
    from lagless.errors import LaglessError

    with pytest.raises(LaglessError, match="unknown environment"):
        make_single_env("lagless/TMaze-Lx-v0")
