"""ALD's Ray backend on a local Ray instance (shared by this module): smoke, a killed actor, bad input."""

import socket

import numpy as np
import pytest
import torch

from lagless.cli import main
from lagless.runs import read_metrics

ray = pytest.importorskip("ray", reason="the Ray backend needs pip install 'lagless[ray]'")
pytestmark = pytest.mark.ray

TINY = ["--algo", "ald", "--env", "lagless/TMaze-L3-v0", "--num-envs", "4", "--rollout-steps", "16",
        "--num-minibatches", "2", "--update-epochs", "1", "--hidden", "16", "--learner-hidden", "16",
        "--learner-layers", "1", "--no-progress", "--no-tensorboard", "--threads", "1"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the block ends: nothing answers there


@pytest.mark.parametrize("flags,needle", [(["--backend", "ray", "--num-actors", "0"], "--num-actors must be >= 1"),
                                          (["--backend", "spark"], "unknown --backend 'spark'"),
                                          (["--backend", "ray", "--num-actors", "3"], "multiple of --num-actors")])
def test_bad_backend_input_is_one_line(flags, needle, tmp_path, capsys):
    assert main(["train", *TINY, *flags, "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_a_ray_address_that_does_not_answer_is_one_line(tmp_path, capsys):
    address = f"127.0.0.1:{_closed_port()}"
    assert main(["train", *TINY, "--backend", "ray", "--ray-address", address, "--run-dir",
                 str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nothing answers at --ray-address" in err and len(err.splitlines()) == 1
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200_000_000, log_to_driver=False)
    yield
    ray.shutdown()


def test_ald_on_two_ray_actors(local_ray, tmp_path):
    run = tmp_path / "r"
    assert main(["train", *TINY, "--backend", "ray", "--num-actors", "2", "--total-steps", "128",
                 "--run-dir", str(run)]) == 0
    metrics = read_metrics(run / "metrics.csv")
    assert list(metrics["step"]) == [64, 128] and np.isfinite(metrics["distill/kl"]).all()
    assert (metrics["charts/actor_restarts"] == 0).all()
    assert main(["eval", str(run), "--episodes", "2"]) == 0  # the LSTM acts locally


def test_a_killed_ray_actor_is_replaced_and_no_rollout_is_half_used(local_ray):
    from lagless.ald.collect import RayCollector
    from lagless.ald.config import ALDConfig
    from lagless.ald.trainer import ALDTrainer

    config = ALDConfig(env="lagless/TMaze-L3-v0", num_envs=4, hidden=16, learner_hidden=16, learner_layers=1,
                       backend="ray", num_actors=2)
    envs = config.make_envs(1)
    models = ALDTrainer.build_models(config, envs.single_observation_space, envs.single_action_space,
                                     torch.device("cpu"))
    collector = RayCollector(config, ALDTrainer.build_models, "actor", models["actor"], torch.device("cpu"))
    first = collector.collect(8)
    ray.kill(collector.workers[0])  # the actor dies between rollouts; the next rollout replaces it
    second = collector.collect(8)
    assert collector.restarts == 1
    assert second.x.shape == first.x.shape == (8, 4, first.x.shape[-1])
    assert second.starts[0, :2].all()  # the replacement's environments start fresh episodes
    collector.close()
    envs.close()
