"""The fused executor computes what the sequential pipelined network computes, step by step."""

import gymnasium as gym
import pytest
import torch

from lagless.errors import LaglessError
from lagless.realtime import build_network, fuse, fused_native, make_actor
from lagless.realtime.fused import FusedPipelinedNet

PIPELINED = ["chain", "skip", "obs_to_all", "res_skip"]
SPACES = {
    "vector": gym.spaces.Box(-1, 1, (6,)),
    "vector+actions": gym.spaces.Dict(
        {"observation": gym.spaces.Box(-1, 1, (9,)), "last_actions": gym.spaces.Box(0, 1, (4,))}),
    "image+actions": gym.spaces.Dict(
        {"observation": gym.spaces.Box(0, 1, (5, 5, 2)), "last_actions": gym.spaces.Box(0, 1, (6,))}),
    "wide vector": gym.spaces.Box(-1, 1, (40,)),  # wider than the hidden layers: a side matmul
}
T = 12


def _obs(space, b, gen):
    if isinstance(space, gym.spaces.Dict):
        return {k: torch.rand(b, *s.shape, generator=gen) * 2 - 1 for k, s in space.spaces.items()}
    return torch.rand(b, *space.shape, generator=gen) * 2 - 1


def _compare(net, fused, space, batch, seed=0, flat=False):
    """``flat``: pass observations flattened, as acting code does (the native step takes only those)."""
    gen = torch.Generator().manual_seed(seed)
    s_seq, s_fused = net.initial_state(batch), fused.initial_state(batch)
    for t in range(T):
        obs = _obs(space, batch, gen)
        if flat:
            obs = net.layout.flatten(obs)
        starts = torch.rand(batch, generator=gen) < 0.2  # some rows start a new episode
        if t == 0:
            starts[:] = True
        y_seq, s_seq = net(obs, s_seq, starts)
        y_fused, s_fused = fused(obs, s_fused, starts)
        torch.testing.assert_close(y_fused, y_seq, rtol=1e-4, atol=1e-5, msg=f"step {t}")


@pytest.mark.parametrize("native", [None, False], ids=["native-if-possible", "python"])
@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("arch", PIPELINED)
def test_fused_equals_sequential_every_step(arch, space_name, native):
    space = SPACES[space_name]
    torch.manual_seed(0)
    for layers in range(1, 9):
        for batch in (1, 7):
            # head std 1 (not a policy's 0.01) so that every weight visibly reaches the output
            net = build_network(arch, space, 3, layers=layers, hidden=16, head_std=1.0).eval()
            with torch.no_grad():
                for p in net.parameters():  # nonzero biases too, so padding mistakes would show
                    p.add_(torch.randn_like(p) * 0.1)
            fused = fuse(net, native=native)
            with torch.inference_mode():
                _compare(net, fused, space, batch, seed=layers * 10 + batch)


@pytest.mark.parametrize("space_name", ["image", "image+actions"])
@pytest.mark.parametrize("arch", PIPELINED)
def test_native_step_with_a_first_convolution_equals_sequential(arch, space_name):
    """Flat observations, as acting code passes them, so the C++ step runs (not its Python fallback)."""
    space = SPACES[space_name] if space_name in SPACES else gym.spaces.Box(0, 1, (4, 3, 2))  # not square
    torch.manual_seed(1)
    for layers in range(2, 9):  # one layer is the head alone: no convolution
        for batch in (1, 7):
            net = build_network(arch, space, 3, layers=layers, hidden=16, head_std=1.0).eval()
            with torch.no_grad():
                for p in net.parameters():
                    p.add_(torch.randn_like(p) * 0.1)
            fused = fuse(net, native=True)
            assert fused.runs_native
            with torch.inference_mode():
                _compare(net, fused, space, batch, seed=layers * 10 + batch, flat=True)


@pytest.mark.parametrize("arch", PIPELINED)
def test_fused_keeps_the_delays(arch):
    net = make_actor(arch, SPACES["vector+actions"], gym.spaces.Discrete(3), layers=5, hidden=8)
    fused = fuse(net)
    assert (fused.min_delay, fused.max_delay, fused.delays) == (net.min_delay, net.max_delay, net.delays)
    assert fused.action_delays == net.action_delays


def test_fused_sequence_equals_sequential_sequence():
    space = SPACES["image+actions"]
    net = build_network("skip", space, 4, layers=4, hidden=16, head_std=1.0).eval()
    gen = torch.Generator().manual_seed(3)
    obs = {k: torch.rand(6, 2, *s.shape, generator=gen) for k, s in space.spaces.items()}
    starts = torch.zeros(6, 2, dtype=torch.bool)
    starts[0] = True
    starts[3, 1] = True
    with torch.inference_mode():
        y_seq, _ = net.forward_sequence(obs, net.initial_state(2), starts)
        fused = fuse(net)
        y_fused, _ = fused.forward_sequence(obs, fused.initial_state(2), starts)
    torch.testing.assert_close(y_fused, y_seq, rtol=1e-4, atol=1e-5)


def test_fused_under_bf16_autocast_computes_in_float32():
    space = SPACES["vector"]
    net = build_network("chain", space, 2, layers=3, hidden=16, head_std=1.0).eval()
    fused = fuse(net)
    x = torch.rand(2, 6)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        y, _ = fused(x, fused.initial_state(2), torch.ones(2, dtype=torch.bool))
    assert y.dtype == torch.float32


@pytest.mark.parametrize("arch", ["instant", "lstm", "transformer"])
def test_networks_without_parallel_layers_are_refused(arch):
    net = make_actor(arch, SPACES["vector"], gym.spaces.Discrete(2), layers=3, hidden=8)
    with pytest.raises(LaglessError, match="cannot fuse"):
        fuse(net)


def test_fusing_twice_returns_the_same_fused_actor():
    fused = fuse(make_actor("skip", SPACES["vector"], gym.spaces.Discrete(2), layers=3, hidden=8))
    assert isinstance(fused, FusedPipelinedNet) and fuse(fused) is fused


@pytest.mark.parametrize("space_name", ["vector+actions", "image+actions"])
def test_fused_handles_any_wiring_of_a_pipelined_net(space_name):
    """A registered architecture whose hidden stages read several registers (the general path)."""
    from lagless.realtime.architectures import _build
    from lagless.realtime.observations import ObsLayout

    space = SPACES[space_name]
    residual = [False, False, False, True, False]
    wirings = {"consecutive": [[0], [1, 0], [2, 1], [1, 3], [0, 2, 4]],
               "gapped": [[0], [1], [2], [3, 1], [1, 4]]}  # stages 2 and 4 read register 1, 3 does not
    for name, sources in wirings.items():
        net = _build(ObsLayout.from_space(space), 5, 16, 3, 1.0, True, sources=sources, residual=residual,
                     delayed=True).eval()
        fused = fuse(net)
        if name == "consecutive":
            assert fused.fast == (space_name == "image+actions")  # there wide inputs leave one block per row
        if space_name == "image+actions":  # the convolution register is wide; "gapped": rows 1, 3, the head
            assert (name == "gapped") == (fused._wide_rows[1][1] is None)
        with torch.inference_mode():
            for batch in (1, 7):
                _compare(net, fused, space, batch, seed=batch)


@pytest.mark.parametrize("batch", [1, 4, 9], ids=["batch1", "batch4", "batch9"])  # raw loops up to 4, ATen above
@pytest.mark.parametrize("space_name", ["vector", "vector+actions"])
@pytest.mark.parametrize("arch", PIPELINED)
def test_native_step_equals_the_python_step(arch, space_name, batch):
    """The C++ step (built on first use) gives the Python step's outputs, resets included."""
    space = SPACES[space_name]
    net = build_network(arch, space, 3, layers=6, hidden=16, head_std=1.0).eval()
    native, python = fuse(net, native=True), fuse(net, native=False)
    assert native.runs_native and not python.runs_native
    gen = torch.Generator().manual_seed(5)
    s_native, s_python = native.initial_state(batch), python.initial_state(batch)
    with torch.inference_mode():
        for t in range(T):
            obs = net.layout.flatten(_obs(space, batch, gen), batch_dims=1)  # flat, as Policy.act passes it
            starts = (torch.rand(batch, generator=gen) < 0.3) if t else torch.ones(batch, dtype=torch.bool)
            y_native, s_native = native(obs, s_native, starts if t % 3 else None)
            y_python, s_python = python(obs, s_python, starts if t % 3 else None)
            torch.testing.assert_close(y_native, y_python, rtol=1e-5, atol=1e-6, msg=f"step {t}")
    torch.testing.assert_close(s_native[0], s_python[0], rtol=1e-5, atol=1e-6)


def test_native_step_reads_weights_changed_in_place():
    """The raw small-batch step keeps a transposed copy of the head's weight: a change made in
    place afterwards (as load_state_dict makes) must still reach the output."""
    net = build_network("skip", SPACES["vector"], 3, layers=5, hidden=16, head_std=1.0).eval()
    native, python = fuse(net, native=True), fuse(net, native=False)
    assert native.runs_native
    with torch.no_grad():
        python.load_state_dict({k: v * 1.5 for k, v in native.state_dict().items()})
        native.load_state_dict(python.state_dict())
    x, starts = torch.rand(1, 6), torch.zeros(1, dtype=torch.bool)
    s_native, s_python = native.initial_state(1), python.initial_state(1)
    with torch.inference_mode():
        for t in range(4):
            y_native, s_native = native(x, s_native, starts)
            y_python, s_python = python(x, s_python, starts)
            torch.testing.assert_close(y_native, y_python, rtol=1e-5, atol=1e-6, msg=f"step {t}")


def test_native_step_stays_float32_under_a_bf16_autocast():
    net = build_network("skip", SPACES["vector"], 3, layers=4, hidden=16, head_std=1.0).eval()
    native, python = fuse(net, native=True), fuse(net, native=False)
    s_native, s_python = native.initial_state(2), python.initial_state(2)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for t in range(5):  # past the first steps, whose outputs are biases only
            x, starts = torch.rand(2, 6), torch.full((2,), t == 0)
            y_native, s_native = native(x, s_native, starts)
            y_python, s_python = python(x, s_python, starts)
    assert y_native.dtype == s_native[0].dtype == torch.float32
    torch.testing.assert_close(y_native, y_python)


def test_fused_actor_still_runs_forward_hooks():
    """``FusedPipelinedNet.__call__`` skips nn.Module's call path only while no hook is registered."""
    net = build_network("chain", SPACES["vector"], 3, layers=4, hidden=16)
    fused = fuse(net)
    seen = []
    handle = fused.register_forward_hook(lambda module, args, out: seen.append(out[0].shape))
    with torch.inference_mode():
        fused(torch.rand(2, 6), fused.initial_state(2), torch.ones(2, dtype=torch.bool))
        handle.remove()
        fused(torch.rand(2, 6), fused.initial_state(2))
    assert seen == [torch.Size([2, 3])]


def test_native_step_falls_back_for_inputs_it_does_not_take():
    net = build_network("skip", SPACES["vector"], 3, layers=4, hidden=16, head_std=1.0).eval()
    native, python = fuse(net, native=True), fuse(net, native=False)
    x = torch.rand(3, 6, dtype=torch.float64)  # not float32: the Python step converts it
    with torch.inference_mode():
        y_native, _ = native(x, native.initial_state(3), torch.ones(3, dtype=torch.bool))
        y_python, _ = python(x, python.initial_state(3), torch.ones(3, dtype=torch.bool))
    assert y_native.dtype == torch.float32
    torch.testing.assert_close(y_native, y_python)


def test_native_step_is_refused_where_it_does_not_apply():
    net = build_network("skip", SPACES["wide vector"], 3, layers=4, hidden=16)  # 40 inputs, 16 wide
    with pytest.raises(LaglessError, match="natively"):
        fuse(net, native=True).prepare()
    assert not fuse(net).runs_native  # auto: the Python step, silently (nothing is wrong)


def test_native_step_can_be_turned_off(monkeypatch):
    net = build_network("chain", SPACES["vector"], 3, layers=4, hidden=16)
    monkeypatch.setenv("LAGLESS_NATIVE", "0")
    fused_native.load.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="LAGLESS_NATIVE=0"):
            assert not fuse(net).runs_native
        with pytest.raises(LaglessError, match="LAGLESS_NATIVE=0"):
            fuse(net, native=True).prepare()
    finally:
        fused_native.load.cache_clear()
