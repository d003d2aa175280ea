"""bfloat16 runs: the hidden layers may round, the output layer must not."""

import gymnasium as gym
import pytest
import torch

from lagless.realtime import ARCHITECTURES, make_actor
from lagless.realtime.stages import HeadStage

SPACE = gym.spaces.Dict(
    {"observation": gym.spaces.Box(0, 1, (5, 5, 2)), "last_actions": gym.spaces.Box(0, 1, (6,))}
)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_head_computes_in_float32_under_bf16_autocast(arch):
    torch.manual_seed(0)
    net = make_actor(arch, SPACE, gym.spaces.Discrete(3), layers=3, hidden=16)
    head = next(m for m in net.modules() if isinstance(m, HeadStage))
    with torch.no_grad():
        head.linear.bias.fill_(20.3)  # a value-sized output: bf16 would round it to 20.25
    seen = {}
    head.register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0], y=out))
    obs = {k: torch.rand(4, *s.shape) for k, s in SPACE.spaces.items()}
    state = net.initial_state(4)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(3):  # let the pipeline fill, so the head reads real activations
            out, state = net(obs, state)
    assert out.dtype == torch.float32
    expected = torch.nn.functional.linear(seen["x"].float(), head.linear.weight, head.linear.bias)
    torch.testing.assert_close(seen["y"], expected, rtol=0, atol=0)
    assert not torch.equal(out, out.to(torch.bfloat16).float())  # not bf16 values in disguise


def test_twin_critics_give_float32_q_values_under_bf16_autocast():
    from lagless.realtime.twin_q import TwinQ

    torch.manual_seed(0)
    critic = TwinQ(in_dim=7, hidden=16, layers=3)
    with torch.no_grad():
        critic.biases[-1].fill_(500.3)  # a return-sized Q: bf16 would round it to 500.0
    obs, action = torch.rand(2, 5, 5), torch.rand(2, 5, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q = critic(obs, action)
    assert q.shape == (2, 2, 5) and q.dtype == torch.float32
    assert not torch.equal(q, q.to(torch.bfloat16).float())  # not bf16 values in disguise
    plain = critic(obs, action)
    torch.testing.assert_close(q, plain, rtol=0.02, atol=0.5)  # hidden layers round, the output does not
