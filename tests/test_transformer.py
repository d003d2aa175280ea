"""The gated transformer: its cached memory gives step-by-step acting the sequence forward's outputs."""

import gymnasium as gym
import pytest
import torch

from lagless.realtime.observations import ObsLayout
from lagless.realtime.stages import HeadStage
from lagless.realtime.transformer import GRUGate, GTrXLNet, init_transformer

SPACE = gym.spaces.Box(-1, 1, (5,))


def _net(memory=4, blocks=2, dim=16, heads=4):
    torch.manual_seed(0)
    layout = ObsLayout.from_space(SPACE)
    return init_transformer(GTrXLNet(layout, blocks, dim, heads, memory, HeadStage(dim, 3, 1.0)))


def _stepwise(net, x, starts):
    state, outs = net.initial_state(x.shape[1]), []
    for t in range(x.shape[0]):
        out, state = net(x[t], state, starts[t])
        outs.append(out)
    return torch.stack(outs), state


@pytest.mark.parametrize("memory", [1, 4, 40])
def test_acting_with_the_cache_equals_the_sequence_forward(memory):
    net = _net(memory=memory)
    T, B = 23, 3
    x = torch.randn(T, B, 5)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    starts[7, 0] = starts[15, 1] = starts[16, 1] = True
    step, step_state = _stepwise(net, x, starts)
    seq, seq_state = net.forward_sequence(x, net.initial_state(B), starts)
    torch.testing.assert_close(seq, step, rtol=1e-5, atol=1e-5)
    # and in chunks, carrying the state: the cache carries exactly what the sequence needs
    a, state = net.forward_sequence(x[:10], net.initial_state(B), starts[:10])
    b, state = net.forward_sequence(x[10:], state, starts[10:])
    torch.testing.assert_close(torch.cat([a, b]), step, rtol=1e-5, atol=1e-5)
    for s1, s2 in zip(step_state, seq_state):
        torch.testing.assert_close(s1, s2, rtol=1e-5, atol=1e-5)


def test_memory_length_bounds_what_an_output_can_see():
    net = _net(memory=3, blocks=1)
    T = 12
    x = torch.randn(T, 1, 5)
    starts = torch.zeros(T, 1, dtype=torch.bool)
    base, _ = net.forward_sequence(x, net.initial_state(1), starts)
    moved = x.clone()
    moved[2] += 1.0
    out, _ = net.forward_sequence(moved, net.initial_state(1), starts)
    changed = {t for t in range(T) if (out[t] - base[t]).abs().max() > 1e-6}
    assert changed == {2, 3, 4, 5}  # one block: seen for memory = 3 steps after it, then gone


def test_an_episode_start_hides_everything_before_it():
    net = _net(memory=8)
    T = 10
    x = torch.randn(T, 2, 5)
    starts = torch.zeros(T, 2, dtype=torch.bool)
    starts[4, 0] = True
    base, _ = net.forward_sequence(x, net.initial_state(2), starts)
    moved = x.clone()
    moved[:4] += 1.0
    out, _ = net.forward_sequence(moved, net.initial_state(2), starts)
    torch.testing.assert_close(out[4:, 0], base[4:, 0], rtol=0, atol=0)
    assert not torch.allclose(out[4:, 1], base[4:, 1])


def test_the_gate_starts_close_to_the_identity():
    torch.manual_seed(0)
    gate = GRUGate(32)
    x, y = torch.randn(64, 32), torch.randn(64, 32)
    z_mean = (gate(x, y) - x).abs().mean() / (y - x).abs().mean()
    assert z_mean < 0.3  # update gate about sigmoid(-2) = 0.12 on average


def test_width_must_divide_into_heads():
    from lagless.errors import LaglessError
    from lagless.realtime import make_actor

    with pytest.raises(LaglessError, match="divisible"):
        make_actor("transformer", SPACE, gym.spaces.Discrete(2), layers=2, hidden=30)


def test_a_batch_subset_gets_the_outputs_it_has_in_the_whole_batch():
    """ALD's distillation computes the learner's targets once per rollout and slices out each
    minibatch's environments: that is exact only if batch entries never see each other."""
    net = _net(memory=6)
    T, B = 15, 5
    x = torch.randn(T, B, 5)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[4, 2] = starts[9, 0] = True
    _, state = net.forward_sequence(torch.randn(8, B, 5), net.initial_state(B), starts[:8])
    whole, _ = net.forward_sequence(x, state, starts)
    idx = torch.tensor([3, 0, 2])
    part, _ = net.forward_sequence(x[:, idx], tuple(s[idx] for s in state), starts[:, idx])
    torch.testing.assert_close(part, whole[:, idx], rtol=1e-5, atol=1e-6)


def test_learns_to_recall_the_observation_k_steps_back():
    """The learned bias per distance lets a head single out one distance; ALiBi's linear
    penalty alone (the bias frozen at its start) stays near 0.45 on this task."""
    torch.manual_seed(0)
    space = gym.spaces.Box(0, 1, (4,))
    net = init_transformer(GTrXLNet(ObsLayout.from_space(space), 1, 32, 4, 8, HeadStage(32, 4, 0.01)))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    k, T, B = 3, 24, 32
    for _ in range(200):
        cards = torch.randint(0, 4, (T, B))
        out, _ = net.forward_sequence(torch.nn.functional.one_hot(cards, 4).float(), net.initial_state(B))
        loss = torch.nn.functional.cross_entropy(out[k:].reshape(-1, 4), cards[:-k].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    cards = torch.randint(0, 4, (T, 256))
    with torch.no_grad():
        out, _ = net.forward_sequence(torch.nn.functional.one_hot(cards, 4).float(), net.initial_state(256))
    assert (out[k:].argmax(-1) == cards[:-k]).float().mean() > 0.85
