"""The registry of actor architectures, and ``make_actor``.

Extend lagless by registering a name: ``@register_architecture("mine")`` on a function
``(layout, layers, hidden, out_dim, head_std, fresh_actions) -> nn.Module`` whose module has
``initial_state``, ``forward(obs, state, episode_start)``, ``forward_sequence``,
``reset_state``, ``min_delay`` and ``max_delay``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

from gymnasium import spaces
from torch import nn

from lagless.errors import LaglessError
from lagless.realtime.observations import ObsLayout
from lagless.realtime.pipelined import PipelinedNet
from lagless.realtime.recurrent import LSTMNet
from lagless.realtime.stages import ConvStage, HeadStage, LinearStage
from lagless.realtime.transformer import GTrXLNet, init_transformer

Builder = Callable[[ObsLayout, int, int, int, float, bool], nn.Module]
# Part of every network layout id: bump it when saved tensors must be read differently
# (rt2: convolution features flattened channels-last, HWC, since the speed-up commit 29736ea).
LAYOUT_FORMAT = "rt2"
FRESH_KEY = "last_actions"
TRANSFORMER_HEADS = 4  # attention heads of the 'transformer' architecture (the width must divide)
TRANSFORMER_MEMORY = 32  # past steps each transformer layer attends to  # the observation part that ``fresh_actions`` feeds in undelayed
ARCHITECTURES: dict[str, Builder] = {}
DESCRIPTIONS: dict[str, str] = {}


def register_architecture(name: str, description: str = ""):
    """Decorator: make a network builder available under ``name``."""

    def wrap(fn: Builder) -> Builder:
        ARCHITECTURES[name] = fn
        DESCRIPTIONS[name] = description or (fn.__doc__ or "").strip().splitlines()[0]
        return fn

    return wrap


def check_architecture(name: str) -> None:
    if name not in ARCHITECTURES:
        raise LaglessError(f"unknown architecture '{name}': choose one of {', '.join(ARCHITECTURES)}")


def _is_conv(layout: ObsLayout, index: int, in_dim: int) -> bool:
    """Hidden stage ``index`` is one convolution if it is the first and reads only the observation."""
    return index == 1 and layout.image_shape is not None and in_dim == layout.flat_dim


def _hidden_stage(layout: ObsLayout, index: int, in_dim: int, hidden: int) -> nn.Module:
    return ConvStage(layout) if _is_conv(layout, index, in_dim) else LinearStage(in_dim, hidden)


def _build(layout, layers, hidden, out_dim, head_std, fresh_actions, *, sources, residual, delayed):
    """Build stages whose input widths follow from ``sources`` (computed stage by stage).

    With ``fresh_actions`` (pipelined only), every dense stage and the head also read the
    observation's last actions from the current step (see ``lagless.realtime.pipelined``).
    """
    fresh = layout.part_slice(FRESH_KEY) if fresh_actions and delayed else None
    fresh_dim = 0 if fresh is None else fresh.stop - fresh.start
    dims = [layout.flat_dim]
    stages: list[nn.Module] = []
    fresh_stages: list[bool] = []
    for i in range(1, layers + 1):
        in_dim = sum(dims[j] for j in sources[i - 1])
        if i < layers:
            takes_fresh = fresh_dim > 0 and not _is_conv(layout, i, in_dim)
            stage = _hidden_stage(layout, i, in_dim + (fresh_dim if takes_fresh else 0), hidden)
        else:
            takes_fresh = fresh_dim > 0
            stage = HeadStage(in_dim + fresh_dim, out_dim, head_std)
        stages.append(stage)
        fresh_stages.append(takes_fresh)
        dims.append(stage.out_dim)
    # residual only where the widths match
    residual = [r and dims[i] == dims[i + 1] for i, r in enumerate(residual)]
    return PipelinedNet(layout, stages, sources, residual, delayed=delayed, fresh=fresh,
                        fresh_stages=fresh_stages)


def _chain_sources(layers: int) -> list[list[int]]:
    return [[i - 1] for i in range(1, layers + 1)]


def _skip_sources(layers: int) -> list[list[int]]:
    return _chain_sources(layers)[:-1] + [list(range(layers))]


@register_architecture("instant", "ordinary feed-forward network, no delay (reference)")
def build_instant(layout, layers, hidden, out_dim, head_std, fresh_actions):
    return _build(layout, layers, hidden, out_dim, head_std, fresh_actions, sources=_chain_sources(layers),
                  residual=[False] * layers, delayed=False)


@register_architecture("chain", "pipelined: each layer reads the layer below from the previous step")
def build_chain(layout, layers, hidden, out_dim, head_std, fresh_actions):
    return _build(layout, layers, hidden, out_dim, head_std, fresh_actions, sources=_chain_sources(layers),
                  residual=[False] * layers, delayed=True)


@register_architecture("skip", "pipelined; the head also reads the observation and every layer")
def build_skip(layout, layers, hidden, out_dim, head_std, fresh_actions):
    return _build(layout, layers, hidden, out_dim, head_std, fresh_actions, sources=_skip_sources(layers),
                  residual=[False] * layers, delayed=True)


@register_architecture("obs_to_all", "pipelined; the observation is fed into every layer")
def build_obs_to_all(layout, layers, hidden, out_dim, head_std, fresh_actions):
    sources = [[0]] + [[i - 1, 0] for i in range(2, layers + 1)]
    return _build(layout, layers, hidden, out_dim, head_std, fresh_actions, sources=sources,
                  residual=[False] * layers, delayed=True)


@register_architecture("res_skip", "skip with residual connections between hidden layers")
def build_res_skip(layout, layers, hidden, out_dim, head_std, fresh_actions):
    residual = [i >= 2 and i < layers for i in range(1, layers + 1)]
    return _build(layout, layers, hidden, out_dim, head_std, fresh_actions, sources=_skip_sources(layers),
                  residual=residual, delayed=True)


@register_architecture("lstm", "ordinary recurrent network (LSTM), no delay (reference)")
def build_lstm(layout, layers, hidden, out_dim, head_std, fresh_actions):
    if layers < 2:
        raise LaglessError("architecture 'lstm' needs --layers >= 2 (encoder layers + LSTM + head)")
    encoder: list[nn.Module] = []
    in_dim = layout.flat_dim
    for i in range(1, layers - 1):
        encoder.append(_hidden_stage(layout, i, in_dim, hidden))
        in_dim = encoder[-1].out_dim
    return LSTMNet(layout, encoder, hidden, HeadStage(hidden, out_dim, head_std))


@register_architecture("transformer", "gated transformer (GTrXL-style) over a cached memory of "
                                      "past steps, no delay; --layers counts its blocks")
def build_transformer(layout, layers, hidden, out_dim, head_std, fresh_actions, *,
                      heads: int = TRANSFORMER_HEADS, memory: int = TRANSFORMER_MEMORY):
    if heads < 1 or memory < 1:
        raise LaglessError(f"a transformer needs >= 1 heads and >= 1 steps of memory, got {heads} and {memory}")
    if hidden % heads:
        raise LaglessError(f"architecture 'transformer' needs a width divisible by its {heads} heads, got {hidden}")
    net = GTrXLNet(layout, layers, hidden, heads, memory, HeadStage(hidden, out_dim, head_std))
    return init_transformer(net)


def output_dim(action_space: spaces.Space) -> int:
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.Box):
        return int(math.prod(action_space.shape))
    raise LaglessError(f"action space {action_space} is not supported: use Discrete or Box")


def build_network(arch: str, observation_space: spaces.Space, out_dim: int, *, layers: int,
                  hidden: int, head_std: float = 1.0, fresh_actions: bool = True, **options) -> nn.Module:
    """A network of a registered architecture with ``out_dim`` outputs (e.g. 1 for a critic).

    ``fresh_actions``: a pipelined network's dense stages and head read the observation's
    ``last_actions`` part from the current step (the agent's own past actions, known at once;
    see ``lagless.realtime.pipelined``). ``options`` go to builders that take more settings
    (the transformer's ``heads`` and ``memory``).
    """
    check_architecture(arch)
    if layers < 1:
        raise LaglessError(f"--layers must be >= 1, got {layers}")
    if hidden < 1:
        raise LaglessError(f"--hidden must be >= 1, got {hidden}")
    layout = ObsLayout.from_space(observation_space)
    return ARCHITECTURES[arch](layout, layers, hidden, out_dim, head_std, fresh_actions, **options)


def make_actor(arch: str, observation_space: spaces.Space, action_space: spaces.Space, *,
               layers: int, hidden: int, fresh_actions: bool = True) -> nn.Module:
    """An actor network: logits for Discrete actions, the action mean for Box actions.

    ``layers`` counts every stage including the output head; in a pipelined architecture
    each stage adds one step of delay (see ``lagless.realtime.pipelined``).
    """
    return build_network(arch, observation_space, output_dim(action_space), layers=layers,
                         hidden=hidden, head_std=0.01, fresh_actions=fresh_actions)


def network_layout_id(arch: str, net: nn.Module) -> str:
    """A short id of how ``net`` reads its tensors: wiring, stage kinds, conv flatten order.

    Two networks with the same id read the same saved tensors the same way; a checkpoint
    whose id differs from the network the code builds now must not be loaded into it.
    """
    parts = [LAYOUT_FORMAT, type(net).__name__]
    for attr in ("sources", "residual", "delayed", "fresh_stages", "heads", "positions"):
        if hasattr(net, attr):
            parts.append(f"{attr}={getattr(net, attr)}")
    fresh = getattr(net, "fresh", None)
    if fresh is not None:
        parts.append(f"fresh={fresh.start}:{fresh.stop}")
    for name, module in net.named_modules():
        if name:
            parts.append(f"{name}:{type(module).__name__}:{getattr(module, 'FLATTEN', '')}")
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:10]
    return f"{arch}-{LAYOUT_FORMAT}-{digest}"
