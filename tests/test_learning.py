"""Each trainer learns a task that a correct implementation solves in seconds (a regression net)."""

import numpy as np
import pytest
from toy_tasks import register

from lagless.realtime.evaluate import run_episodes
from lagless.realtime.ppo_config import PPOConfig
from lagless.realtime.sac_config import SACConfig
from lagless.trainers import load_policy, train

register()
QUIET = {"progress": False, "tensorboard": False, "threads": 1}


def _greedy_return(run_dir) -> float:
    returns, _ = run_episodes(load_policy(run_dir), 20, seed=123, greedy=True)
    return float(np.mean(returns))


def test_ppo_learns_a_discrete_identity(tmp_path):
    config = PPOConfig(env="lagless-test/DiscreteIdentity-v0", arch="instant", layers=2, hidden=32,
                       num_envs=8, rollout_steps=32, total_steps=8_192, lr=3e-3, run_dir=str(tmp_path / "r"),
                       **QUIET)
    train("ppo", config)
    assert _greedy_return(tmp_path / "r") >= 18  # of 20; random play gets about 5


def test_ppo_learns_a_continuous_identity_with_a_gaussian_policy(tmp_path):
    config = PPOConfig(env="lagless-test/BoxIdentity-v0", arch="instant", layers=2, hidden=32,
                       num_envs=8, rollout_steps=32, total_steps=16_384, lr=3e-3, ent_coef=0.0,
                       run_dir=str(tmp_path / "r"), **QUIET)
    train("ppo", config)
    assert _greedy_return(tmp_path / "r") >= -1.0  # random play: about -13


def test_sac_learns_a_continuous_identity(tmp_path):
    config = SACConfig(env="lagless-test/BoxIdentity-v0", arch="instant", layers=2, hidden=32,
                       critic_hidden=32, batch_size=64, learning_starts=300, total_steps=2_000,
                       run_dir=str(tmp_path / "r"), log_every=500, **QUIET)
    train("sac", config)
    assert _greedy_return(tmp_path / "r") >= -1.0  # random play: about -13


@pytest.mark.parametrize("arch", ["chain", "lstm"])
def test_sac_with_a_stateful_actor_learns_a_held_target(arch, tmp_path):
    """Replayed sequences with burn-in: a 3-step pipelined chain (and an LSTM) learn a target that
    holds for the episode; the chain misses only the steps before its first observation arrives."""
    config = SACConfig(env="lagless-test/BoxHold-v0", arch=arch, layers=3, hidden=32, critic_hidden=32,
                       batch_size=64, learning_starts=300, total_steps=2_500, burn_in=4,
                       run_dir=str(tmp_path / "r"), log_every=500, **QUIET)
    train("sac", config)
    assert _greedy_return(tmp_path / "r") >= -3.0  # random play: about -13
