"""POPGym and MiniGrid memory tasks through make_env: ids register on use, observations are Boxes."""

import numpy as np
import pytest

from lagless.cli import main
from lagless.envs import make_env


@pytest.mark.parametrize("env_id,shape", [("popgym-RepeatFirstEasy-v0", (4,)),
                                          ("popgym-RepeatPreviousEasy-v0", (4,)),
                                          ("MiniGrid-MemoryS13-v0", (7, 7, 3))])
def test_memory_tasks_make_float_box_observations(env_id, shape):
    envs = make_env(env_id, num_envs=2, seed=1)
    obs, _ = envs.reset(seed=1)
    assert envs.single_observation_space.shape == shape and obs.dtype == np.float32
    obs, reward, *_ = envs.step(envs.action_space.sample())
    assert obs.shape == (2, *shape) and np.isfinite(reward).all()
    envs.close()


def test_popgym_one_hot_observation_is_one_hot():
    envs = make_env("popgym-RepeatFirstEasy-v0", num_envs=1, seed=3)
    obs, _ = envs.reset(seed=3)
    assert obs.sum() == 1 and set(np.unique(obs)) <= {0.0, 1.0}


@pytest.mark.parametrize("env_id", ["popgym-RepeatFirstEasy-v0", "MiniGrid-MemoryS7-v0"])
def test_ald_smoke_on_a_memory_task(env_id, tmp_path):
    assert main(["train", "--algo", "ald", "--env", env_id, "--num-envs", "2", "--rollout-steps", "16",
                 "--num-minibatches", "1", "--update-epochs", "1", "--hidden", "16", "--learner-hidden", "16",
                 "--learner-layers", "1", "--total-steps", "32", "--run-dir", str(tmp_path / "r"),
                 "--no-progress", "--no-tensorboard", "--threads", "1"]) == 0
