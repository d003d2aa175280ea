"""Delay semantics of every architecture: which outputs an observation can change."""

import gymnasium as gym
import pytest
import torch

from lagless.realtime import ARCHITECTURES, UNBOUNDED_DELAY, make_actor
from lagless.realtime.architectures import TRANSFORMER_MEMORY

LAYERS = 4
T = 14
EXPECTED_DELAYS = {  # for 4 layers, by the convention in lagless.realtime.pipelined
    "instant": (0, 0),
    "chain": (4, 4),
    "skip": (1, 4),
    "obs_to_all": (1, 4),
    "res_skip": (1, 4),
    "lstm": (0, UNBOUNDED_DELAY),
    "transformer": (0, TRANSFORMER_MEMORY),  # T below is shorter than its memory
}
SPACES = {
    "vector": gym.spaces.Box(-1, 1, (6,)),
    "image": gym.spaces.Box(0, 1, (5, 5, 2)),
    "dict": gym.spaces.Dict(
        {"observation": gym.spaces.Box(0, 1, (5, 5, 2)), "last_actions": gym.spaces.Box(0, 1, (6,))}
    ),
}


def _random_obs(space, t, b, gen):
    if isinstance(space, gym.spaces.Dict):
        return {k: torch.rand(t, b, *s.shape, generator=gen) for k, s in space.spaces.items()}
    return torch.rand(t, b, *space.shape, generator=gen)


def _step(obs, t):
    return {k: v[t] for k, v in obs.items()} if isinstance(obs, dict) else obs[t]


def _perturb(obs, t, keys=None):
    """``obs`` with step ``t`` changed (only the Dict parts in ``keys``, if given)."""
    obs = {k: v.clone() for k, v in obs.items()} if isinstance(obs, dict) else obs.clone()
    if isinstance(obs, dict):
        for key, v in obs.items():
            if keys is None or key in keys:
                v[t] += 1.0
    else:
        obs[t] += 1.0
    return obs


def _run_stepwise(net, obs, starts=None):
    state = net.initial_state(2)
    outs = []
    for t in range(T):
        y, state = net(_step(obs, t), state, None if starts is None else starts[t])
        outs.append(y)
    return torch.stack(outs)


def _changed_steps(a, b):
    return {t for t in range(T) if (a[t] - b[t]).abs().max() > 1e-7}


def _expected_changed(net, k):
    if net.max_delay == UNBOUNDED_DELAY:
        return set(range(k + net.min_delay, T))
    return {k + d for d in net.delays if k + d < T}


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_one_observation_changes_exactly_the_outputs_its_delays_allow(arch, space_name):
    torch.manual_seed(0)
    space = SPACES[space_name]
    net = make_actor(arch, space, gym.spaces.Discrete(3), layers=LAYERS, hidden=16)
    assert (net.min_delay, net.max_delay) == EXPECTED_DELAYS[arch]
    gen = torch.Generator().manual_seed(1)
    obs = _random_obs(space, T, 2, gen)
    base = _run_stepwise(net, obs)
    k = 3
    # the environment's observation; the agent's own last actions are tested below
    changed = _changed_steps(base, _run_stepwise(net, _perturb(obs, k, keys=("observation",))))
    assert changed == _expected_changed(net, k)
    # an observation seen at step t influences the output of step t only with delay 0
    assert (k in changed) == (net.min_delay == 0)


@pytest.mark.parametrize("fresh", [True, False])
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_last_actions_reach_the_head_at_once_when_fresh(arch, fresh):
    """The agent's own last actions: delay 0 with ``fresh_actions``, else the observation's."""
    torch.manual_seed(0)
    space = SPACES["dict"]
    net = make_actor(arch, space, gym.spaces.Discrete(3), layers=LAYERS, hidden=16, fresh_actions=fresh)
    obs = _random_obs(space, T, 2, torch.Generator().manual_seed(4))
    k = 3
    changed = _changed_steps(_run_stepwise(net, obs),
                             _run_stepwise(net, _perturb(obs, k, keys=("last_actions",))))
    pipelined = net.min_delay > 0
    if not pipelined:
        assert changed == _expected_changed(net, k)
        return
    if fresh:
        # the dense stages and the head read them in the same step (delays 0..L-2); the conv
        # only passes them on from register 0, so a chain has no path of delay L-1
        assert net.action_delays == ([0, 1, 2, 4] if arch == "chain" else [0, 1, 2, 3, 4])
    else:
        assert net.action_delays == net.delays
    assert changed == {k + d for d in net.action_delays}
    assert (k in changed) == fresh


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_delay_in_the_skip_paths_is_real(arch):
    """For skip-style nets each delay in 1..L shows up; for chain only L."""
    net = make_actor(arch, SPACES["vector"], gym.spaces.Discrete(3), layers=LAYERS, hidden=16)
    if arch in ("skip", "obs_to_all", "res_skip"):
        assert net.delays == [1, 2, 3, 4]
    elif arch == "chain":
        assert net.delays == [4]


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_after_a_reset_no_output_depends_on_earlier_observations(arch, space_name):
    torch.manual_seed(0)
    space = SPACES[space_name]
    net = make_actor(arch, space, gym.spaces.Discrete(3), layers=LAYERS, hidden=16)
    gen = torch.Generator().manual_seed(2)
    obs = _random_obs(space, T, 2, gen)
    reset_at = 6
    starts = torch.zeros(T, 2, dtype=torch.bool)
    starts[reset_at, 0] = True  # only batch entry 0 starts a new episode
    base = _run_stepwise(net, obs, starts)
    other = obs
    for t in range(reset_at):
        other = _perturb(other, t)
    moved = _run_stepwise(net, other, starts)
    assert torch.allclose(base[reset_at:, 0], moved[reset_at:, 0], atol=0, rtol=0)
    if arch != "instant":  # entry 1 did not reset, so its later outputs still remember
        assert not torch.allclose(base[reset_at:, 1], moved[reset_at:, 1])


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_sequence_forward_equals_stepwise_forward(arch):
    torch.manual_seed(0)
    space = SPACES["dict"]
    net = make_actor(arch, space, gym.spaces.Discrete(3), layers=LAYERS, hidden=16)
    gen = torch.Generator().manual_seed(3)
    obs = _random_obs(space, T, 2, gen)
    starts = torch.zeros(T, 2, dtype=torch.bool)
    starts[5, 1] = True
    starts[9, 0] = True
    stepwise = _run_stepwise(net, obs, starts)
    seq, _ = net.forward_sequence(obs, net.initial_state(2), starts)
    torch.testing.assert_close(seq, stepwise, rtol=1e-5, atol=1e-6)


def test_pipelined_cnn_runs_one_convolution_per_step():
    net = make_actor("chain", SPACES["image"], gym.spaces.Discrete(3), layers=LAYERS, hidden=16)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1
    assert all(sum(isinstance(m, torch.nn.Conv2d) for m in s.modules()) <= 1 for s in net.stages)


def test_box_action_space_gives_action_mean():
    net = make_actor("skip", SPACES["vector"], gym.spaces.Box(-1, 1, (2,)), layers=3, hidden=8)
    y, _ = net(torch.zeros(4, 6), net.initial_state(4))
    assert y.shape == (4, 2)


def test_runs_made_before_fresh_actions_keep_their_delayed_actions(tmp_path):
    """A config.json without the key is an older run: its head was built without fresh actions."""
    import json

    from lagless.trainers.run_dir import read_run_config

    (tmp_path / "config.json").write_text(json.dumps({"env": "CartPole-v1", "last_actions": 1}))
    assert read_run_config(tmp_path)[1].fresh_actions is False
    (tmp_path / "config.json").write_text(json.dumps({"env": "CartPole-v1", "fresh_actions": True}))
    assert read_run_config(tmp_path)[1].fresh_actions is True
