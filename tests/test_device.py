"""--device: training, replay, rollouts and acting on every device this machine has (CPU always)."""

import numpy as np
import pytest
import torch
from toy_tasks import register

from lagless.realtime.evaluate import run_episodes
from lagless.realtime.ppo_config import PPOConfig
from lagless.realtime.sac_config import SACConfig
from lagless.runs import read_metrics
from lagless.trainers import get_trainer, load_policy, train

register()
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
QUIET = {"progress": False, "tensorboard": False, "threads": 1}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arch", ["skip", "lstm"])
def test_ppo_and_sac_train_and_act_on_the_device(device, arch, tmp_path):
    ppo = PPOConfig(env="lagless-test/BoxHold-v0", arch=arch, layers=3, hidden=16, num_envs=4, rollout_steps=16,
                    total_steps=128, last_actions=1, device=device, run_dir=str(tmp_path / "ppo"), **QUIET)
    sac = SACConfig(env="lagless-test/BoxHold-v0", arch=arch, layers=3, hidden=16, critic_hidden=16,
                    batch_size=16, learning_starts=40, total_steps=120, log_every=40, num_envs=2,
                    device=device, run_dir=str(tmp_path / "sac"), **QUIET)
    for algo, config in (("ppo", ppo), ("sac", sac)):
        train(algo, config)
        assert np.isfinite(read_metrics(tmp_path / algo / "metrics.csv")["charts/recent_return"][-1])
        policy = load_policy(tmp_path / algo, device=device)
        assert policy.device.type == device
        returns, _ = run_episodes(policy, 2, seed=5)
        assert len(returns) == 2
        # the same checkpoint acts the same on the CPU (float tolerance)
        if device != "cpu":
            cpu = load_policy(tmp_path / algo)
            x = torch.rand(5, 3, cpu.layout.flat_dim)
            starts = torch.zeros(5, 3, dtype=torch.bool)
            starts[0] = True
            out_cpu = cpu.actor.forward_sequence(x, cpu.actor.initial_state(3), starts)[0]
            out_dev = policy.actor.forward_sequence(x.to(device), policy.actor.initial_state(3, policy.device),
                                                    starts.to(device))[0]
            torch.testing.assert_close(out_dev.cpu(), out_cpu, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_rollout_and_replay_storage_live_on_the_device(device):
    for algo, config in (("ppo", PPOConfig(env="lagless-test/BoxHold-v0", num_envs=2, device=device)),
                         ("sac", SACConfig(env="lagless-test/BoxHold-v0", buffer_size=100, device=device))):
        trainer_cls = get_trainer(algo)
        envs = config.make_envs(config.num_envs)
        models = trainer_cls.build_models(config, envs.single_observation_space, envs.single_action_space,
                                          torch.device(device))
        trainer = trainer_cls(config, models, envs, torch.device(device))
        storage = trainer.buf_x if algo == "ppo" else trainer.replay.obs
        assert storage.device.type == device
        envs.close()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arch", ["chain", "skip"])
def test_fused_actor_matches_the_sequential_one_on_the_device(device, arch):
    import gymnasium as gym

    from lagless.realtime import build_network, fuse

    space = gym.spaces.Dict({"observation": gym.spaces.Box(0, 1, (5, 5, 2)),
                             "last_actions": gym.spaces.Box(0, 1, (4,))})
    net = build_network(arch, space, 3, layers=6, hidden=32, head_std=1.0).to(device).eval()
    fused = fuse(net)
    assert fused.device.type == device
    x = torch.rand(9, 4, 54, device=device)
    starts = torch.rand(9, 4, device=device) < 0.2
    starts[0] = True
    with torch.inference_mode():
        seq, _ = net.forward_sequence(x, net.initial_state(4, device), starts)
        out, _ = fused.forward_sequence(x, fused.initial_state(4, device), starts)
    torch.testing.assert_close(out, seq, rtol=1e-3, atol=1e-4)
