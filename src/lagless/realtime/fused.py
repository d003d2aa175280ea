"""The fused executor: every stage of a pipelined step in one batched matrix multiply.

Within one step of a pipelined network no stage reads another stage's new output (see
``lagless.realtime.pipelined``), so the stages' matrix products are independent and can run
as one ``baddbmm`` over stacked weights instead of one call per layer. On a CPU at batch 1
each layer's call is mostly fixed overhead; one call for all of them is where the speed-up
claimed by Anokhin et al. (ICLR 2025) comes from.

How a stage is split: stage ``i`` computes ``act(b_i + sum_j W_ij r_j)`` over the registers
``j`` it reads (plus the current last actions, if it reads them fresh). Every block ``W_ij``
whose register and output fit in the common width ``P`` (the widest dense stage) is padded to
``P x P`` and stacked: one ``baddbmm`` computes them all. The few blocks that do not fit (a
wide register such as a convolution's output, or the fresh last actions) are one matmul per
register. A first convolution stays its own call. Padding is exact: padded weights, biases
and register columns are zero, so padded outputs stay zero through ReLU and residual adds.

The fused actor keeps the sequential one's interface (``initial_state``, ``forward``,
``forward_sequence``, delays); only its state is laid out differently (narrow registers
stacked as one ``[R, B, P]`` tensor). It computes in float32 and is for acting: training keeps
the sequential form, whose weights it copies (re-fuse after the weights change).
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn.modules import module as _nn_module  # its global hook tables (see __call__)

from lagless.errors import LaglessError
from lagless.realtime.module_device import DeviceAware
from lagless.realtime.pipelined import PipelinedNet
from lagless.realtime.stages import ConvStage, HeadStage, LinearStage

State = tuple[torch.Tensor, ...]


def fuse(actor: nn.Module, native: bool | None = None) -> FusedPipelinedNet:
    """A fused copy of a pipelined actor (``chain``, ``skip``, ``obs_to_all``, ``res_skip``, ...).

    ``native``: run the step as one C++ call where the layout allows it (``fused_native``);
    ``None`` (default) uses it when it builds and says once why not otherwise, ``True``
    requires it (a ``LaglessError`` if it cannot be built), ``False`` keeps the Python step.
    Refused with a ``LaglessError`` for networks whose layers depend on each other within a
    step (``instant``, ``lstm``, ``transformer``): there is nothing to run at once.
    """
    if isinstance(actor, FusedPipelinedNet):
        return actor
    if not isinstance(actor, PipelinedNet) or not actor.delayed:
        kind = type(actor).__name__ if not isinstance(actor, PipelinedNet) else "an instant PipelinedNet"
        raise LaglessError(f"cannot fuse {kind}: only pipelined networks (chain, skip, ...) compute their "
                           "layers independently within a step; act without --fused")
    return FusedPipelinedNet(actor, native=native)


class FusedPipelinedNet(DeviceAware):
    """A pipelined network whose dense stages fire in one ``baddbmm`` per step.

    Rows of the pre-activation ``[S, B, P]``: row 0 is the head, rows 1.. the dense hidden
    stages in order. The state is ``(hidden registers [S-1, B, P], observation register
    [B, D], first convolution's register [B, C] if any)``.
    """

    def __init__(self, net: PipelinedNet, native: bool | None = None):
        super().__init__()
        self.native_mode = native
        stages = list(net.stages)
        for i, stage in enumerate(stages, 1):
            ok = isinstance(stage, (LinearStage, HeadStage)) or (i == 1 and isinstance(stage, ConvStage))
            if not ok:
                raise LaglessError(f"cannot fuse stage {i} ({type(stage).__name__}): the fused executor knows "
                                   "dense stages, a head and a first convolution")
        self.layout = net.layout
        self.delays, self.min_delay, self.max_delay = net.delays, net.min_delay, net.max_delay
        self.action_delays = net.action_delays
        self.out_dim = net.out_dim
        self.fresh = net.fresh
        self.conv = stages[0] if isinstance(stages[0], ConvStage) else None
        n_stages = len(stages)
        dense = list(range(2 if self.conv is not None else 1, n_stages))  # hidden dense stage numbers
        row = {n_stages: 0, **{i: k + 1 for k, i in enumerate(dense)}}  # stage number -> row
        slot = {i: k for k, i in enumerate(dense)}  # hidden register -> slot in the stacked state
        dims = net.register_dims
        self.register_dims = dims
        self.width = width = max([stages[i - 1].out_dim for i in dense] + [net.out_dim])
        self.n_rows = n_rows = len(dense) + 1
        # sources other than the stacked registers: the observation (register 0), a convolution's
        # register, the fresh last actions; narrow ones share one matmul over every row
        self.merged = [k for k in (0, "fresh") if k == "fresh" and self.fresh is not None
                       or k == 0 and dims[0] <= width]
        self.wide = [j for j in range(min(2, len(dims))) if j not in slot and j not in self.merged]
        side_dims = {0: dims[0], "fresh": 0 if self.fresh is None else self.fresh.stop - self.fresh.start}
        if self.conv is not None:
            side_dims[1] = dims[1]

        blocks: list[tuple[int, int, torch.Tensor]] = []  # (row, slot, [P, P]) for the batched product
        head_blocks: dict[int, torch.Tensor] = {}  # slot -> [P, out]
        side: dict[object, dict[int, torch.Tensor]] = {k: {} for k in side_dims}  # source -> row -> [d, out]
        bias = torch.zeros(n_rows, width)
        for i in [*dense, n_stages]:
            linear = stages[i - 1].linear
            w, b = linear.weight.detach().float(), linear.bias.detach().float()
            bias[row[i], : b.numel()] = b
            parts = [(j, dims[j]) for j in net.sources[i - 1]]
            if net.fresh_stages[i - 1]:
                parts.append(("fresh", side_dims["fresh"]))
            col = 0
            for j, d in parts:
                cols = w[:, col: col + d].t()
                col += d
                if j in slot and i == n_stages:
                    head_blocks[slot[j]] = cols
                elif j in slot:
                    padded = torch.zeros(width, width)
                    padded[:d, : cols.shape[1]] = cols
                    blocks.append((row[i], slot[j], padded))
                else:
                    side[j][row[i]] = cols
            if col != w.shape[1]:
                raise LaglessError(f"cannot fuse stage {i}: its input width {w.shape[1]} is not the sum of "
                                   f"the registers it reads ({col})")

        # the batched product: fast when rows r0.. each read one stacked register, slots s0.. in order
        rows = [r for r, _, _ in blocks]
        slots = [s for _, s, _ in blocks]
        self.r0 = rows[0] if rows else n_rows
        self.s0 = slots[0] if slots else 0
        self.fast = (rows == list(range(self.r0, n_rows)) and slots == list(range(self.s0, self.s0 + len(slots))))
        self.register_buffer("weights", torch.stack([w for _, _, w in blocks]) if blocks
                             else torch.zeros(0, width, width))
        self.register_buffer("block_rows", torch.tensor([r - 1 for r in rows], dtype=torch.long))
        self.register_buffer("block_slots", torch.tensor(slots, dtype=torch.long))
        # merged side sources: one addmm (bias of every row included) -> [B, rows * P]
        merged_w = torch.zeros(sum(side_dims[k] for k in self.merged), n_rows * width)
        offset = 0
        for k in self.merged:
            for r, cols in side[k].items():
                merged_w[offset: offset + side_dims[k], r * width: r * width + cols.shape[1]] = cols
            offset += side_dims[k]
        self.register_buffer("merged_weight", merged_w)
        self.register_buffer("row_bias", bias.reshape(-1))
        # wide side sources: one matmul each over the rows that read them, the head's part only
        # its outputs wide (a 1,600-wide convolution register padded to the hidden width for a
        # 3-action head would be most of a step's weight traffic), added in place where the
        # hidden rows are consecutive; a source no row reads (the image under a first
        # convolution, which only the convolution reads) costs nothing
        self.wide = [j for j in self.wide if side[j]]
        self._wide_rows: dict[int, tuple[int, tuple[int, int] | None]] = {}  # j -> (head cols, span)
        for j in self.wide:
            head_cols = self.out_dim if 0 in side[j] else 0
            reading = sorted(r for r in side[j] if r != 0)
            consecutive = bool(reading) and reading == list(range(reading[0], reading[0] + len(reading)))
            self._wide_rows[j] = (head_cols, (reading[0], reading[0] + len(reading)) if consecutive else None)
            w = torch.zeros(side_dims[j], head_cols + len(reading) * width)
            if head_cols:
                w[:, :head_cols] = side[j][0]
            for k, r in enumerate(reading):
                cols = side[j][r]
                w[:, head_cols + k * width: head_cols + k * width + cols.shape[1]] = cols
            self.register_buffer(f"wide_weight{j}", w)
            self.register_buffer(f"wide_rows{j}", torch.tensor(reading, dtype=torch.long))
        # the head's stacked registers: one matmul over them, flattened
        self.head_slots = sorted(head_blocks)
        self.head_all = self.head_slots == list(range(len(dense)))
        self.register_buffer("head_weight", torch.cat([_pad_rows(head_blocks[s], width) for s in self.head_slots])
                             if head_blocks else torch.zeros(0, self.out_dim))
        self.register_buffer("head_slot_index", torch.tensor(self.head_slots, dtype=torch.long))
        # residual: stage i adds register i-1 after its ReLU (both stacked, same width)
        res = [(row[i] - 1, slot[i - 1]) for i in dense if net.residual[i - 1]]
        self.register_buffer("res_rows", torch.tensor([r for r, _ in res], dtype=torch.long))
        self.register_buffer("res_slots", torch.tensor([s for _, s in res], dtype=torch.long))
        self.has_res = bool(res)
        self._build_lean(side, side_dims, bias, blocks)
        self._fast_args: tuple | None = None
        self._native = None  # the C++ step holding this actor's buffers (fused_native), set by prepare

    def _build_lean(self, side: dict, side_dims: dict, bias: torch.Tensor, blocks: list) -> None:
        """The lean step for flat observations (every dense architecture but a first convolution).

        It applies when the batched rows each read one stacked register (``fast``) and nothing
        is wide. One ``addmm`` over the side sources (the observation, fresh last actions) gives,
        biases included, the rows before the batched ones, the head's side part and, only where
        the batched rows read side sources too (``obs_to_all``, fresh actions), their
        pre-activations; its columns are laid out in that order. The ``baddbmm`` then writes
        straight into the new state (with a broadcast bias where no side source reaches it), so
        no all-rows pre-activation is built or copied.
        """
        self.lean = self.fast and bool(blocks) and not self.wide and bool(self.merged)
        if not self.lean:
            return
        width, n_pre, out, r0 = self.width, self.r0 - 1, self.out_dim, self.r0
        self.bmm_reads_side = any(r >= r0 for k in self.merged for r in side[k])
        start = {r: (r - 1) * width for r in range(1, r0)}  # row -> its first column
        start[0] = n_pre * width
        if self.bmm_reads_side:
            start.update({r: n_pre * width + out + (r - r0) * width for r in range(r0, self.n_rows)})
        cols = max(c + (out if r == 0 else width) for r, c in start.items())
        weight, row_bias = torch.zeros(sum(side_dims[k] for k in self.merged), cols), torch.zeros(cols)
        for r, c in start.items():
            row_bias[c: c + (out if r == 0 else width)] = bias[r, : out if r == 0 else width]
        offset = 0
        for k in self.merged:
            for r, w in side[k].items():
                weight[offset: offset + side_dims[k], start[r]: start[r] + w.shape[1]] = w
            offset += side_dims[k]
        self.register_buffer("lean_side_weight", weight)
        self.register_buffer("lean_side_bias", row_bias)
        self.register_buffer("lean_bmm_bias", bias[r0:].unsqueeze(1).clone())  # [blocks, 1, P]

    @property
    def device(self) -> torch.device:
        return self.row_bias.device  # the fused weights are buffers, not parameters

    def _apply(self, fn, recurse=True):
        self._fast_args = self._native = None
        return super()._apply(fn, recurse)

    def __call__(self, obs, state: State, episode_start: torch.Tensor | None = None):
        """``forward``, straight, unless a hook is registered: nn.Module's call path is about 2 us,
        4% of an 8-layer step at batch 1 (this module is for acting fast)."""
        if (self._forward_hooks or self._forward_pre_hooks or self._backward_hooks or self._backward_pre_hooks
                or _nn_module._global_forward_hooks or _nn_module._global_forward_pre_hooks
                or _nn_module._global_backward_hooks or _nn_module._global_backward_pre_hooks):
            return super().__call__(obs, state, episode_start)
        return self.forward(obs, state, episode_start)

    @property
    def runs_native(self) -> bool:
        """Whether steps run as one C++ call (builds or loads it, as the first step would)."""
        if self._fast_args is None:
            self.prepare()
        return self._native is not None

    # -- state -------------------------------------------------------------------------
    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        """Zero registers: the hidden ones stacked ``[S-1, B, P]``, the observation, a convolution's."""
        z = functools.partial(torch.zeros, device=device)
        convs = (z(batch_size, self.register_dims[1]),) if self.conv is not None else ()
        return (z(self.n_rows - 1, batch_size, self.width), z(batch_size, self.register_dims[0]), *convs)

    @staticmethod
    def reset_state(state: State, episode_start: torch.Tensor) -> State:
        keep = (~episode_start.bool()).float().unsqueeze(-1)  # [B, 1]: broadcasts over [R, B, P] and [B, d]
        return tuple(s * keep for s in state)

    # -- compute -----------------------------------------------------------------------
    def forward(self, obs, state: State, episode_start: torch.Tensor | None = None):
        """One step, equal to the sequential network's ``forward`` (float tolerance)."""
        if self._fast_args is None:
            self.prepare()
        native = self._native
        if (native is not None and type(obs) is torch.Tensor
                and (episode_start is None or type(episode_start) is torch.Tensor)):
            if self.conv is None:
                out = native(state[0], state[1], obs, episode_start)  # None: not a flat float32 CPU input
                if out is not None:
                    return out[0], (out[1], obs)
            else:
                out = native(state[0], state[1], state[2], obs, episode_start)
                if out is not None:
                    return out[0], (out[1], obs, out[2])
        device = self._fast_args[0]
        if (isinstance(obs, torch.Tensor) and obs.dtype == torch.float32 and obs.device == device
                and obs.dim() == 2 and obs.shape[1] == self.register_dims[0]):
            x = obs  # already flat (as Policy.act passes it): skip the flattening's checks
        else:
            x = self.layout.flatten(obs, batch_dims=1, device=device)
        if episode_start is not None and bool(episode_start.any()):
            state = self.reset_state(state, episode_start.to(device))
        step = self._lean_step if self.lean else self._step
        if torch.is_autocast_enabled(device.type):
            with torch.autocast(device.type, enabled=False):
                return step(x, state)
        return step(x, state)

    def prepare(self) -> FusedPipelinedNet:
        """Look up what one step needs, and build or load the native step (done by the first step)."""
        buf = self._buffers
        n = buf["weights"].shape[0]
        head_last = len(self.head_slots) == 1 and self.head_slots[0] == self.n_rows - 2
        self._fast_args = (buf["row_bias"].device, buf["row_bias"], buf["merged_weight"], buf["weights"], n,
                           slice(self.r0, None), slice(self.s0, self.s0 + n), buf["head_weight"], head_last)
        self._native = None
        if self.native_mode is False:
            return self
        if not (self.lean or self.conv is not None) or buf["row_bias"].device.type != "cpu":
            if self.native_mode:
                raise LaglessError("cannot run this fused actor natively: the C++ step covers dense "
                                   "pipelined networks on flat observations no wider than the hidden "
                                   "layers, and networks with a first convolution, on the CPU; "
                                   "fuse with native=None or False")
            return self
        from lagless.realtime import fused_native

        module, why = fused_native.load()
        if module is None:
            if self.native_mode:
                raise LaglessError(f"cannot build the native fused step: {why}; fuse with native=None or False")
            fused_native.warn_unavailable(why)
            return self
        mode = 0 if not self.head_slots else 1 if head_last else 2 if self.head_all else 3
        if self.conv is not None:
            self._native = module.ConvStep(self._conv_step_constants(mode), self._wide_sources())
            return self
        fresh = self.fresh if len(self.merged) > 1 else slice(0, 0)  # fresh actions in the side addmm
        self._native = module.LeanStep(buf["lean_side_bias"], buf["lean_side_weight"], buf["lean_bmm_bias"],
                                       buf["weights"], buf["head_weight"], buf["head_slot_index"], buf["res_rows"],
                                       buf["res_slots"], self.r0 - 1, self.s0, mode, self.bmm_reads_side,
                                       fresh.start, fresh.stop - fresh.start, self.register_dims[0])
        return self

    def _conv_step_constants(self, head_mode: int) -> dict:
        """What ``fused_native.ConvStep`` reads once: ``_step``'s buffers and the convolution's."""
        buf, conv, layout = self._buffers, self.conv.conv, self.conv.layout
        fresh = self.fresh if self.fresh is not None else slice(0, 0)
        merged_mode = {(): 0, (0,): 1, ("fresh",): 2, (0, "fresh"): 3}[tuple(self.merged)]
        h, w, c = layout.image_shape
        return {"row_bias": buf["row_bias"], "merged_weight": buf["merged_weight"], "weights": buf["weights"],
                "block_rows": buf["block_rows"], "block_slots": buf["block_slots"],
                "head_weight": buf["head_weight"], "head_index": buf["head_slot_index"],
                "res_rows": buf["res_rows"], "res_slots": buf["res_slots"],
                "conv_weight": conv.weight.detach().float(), "conv_bias": conv.bias.detach().float(),
                "conv_stride": list(conv.stride), "conv_padding": list(conv.padding),
                "conv_dilation": list(conv.dilation), "merged_mode": merged_mode, "fresh_start": fresh.start,
                "fresh_len": fresh.stop - fresh.start, "r0": self.r0, "s0": self.s0, "head_mode": head_mode,
                "n_rows": self.n_rows, "width": self.width, "out_dim": self.out_dim,
                "obs_dim": self.register_dims[0], "h": h, "w": w, "c": c, "image_dim": layout.image_dim,
                "fast": self.fast}

    def _wide_sources(self) -> list[tuple]:
        """``(is the observation, weight, rows, head columns, span start, span end)`` per wide source."""
        out = []
        for j in self.wide:
            head_cols, span = self._wide_rows[j]
            lo, hi = span if span is not None else (-1, -1)
            out.append((j == 0, self._buffers[f"wide_weight{j}"], self._buffers[f"wide_rows{j}"], head_cols, lo, hi))
        return out

    def _lean_step(self, x: torch.Tensor, state: State):
        """``_step`` for the lean layout (see ``_build_lean``): same outputs, fewer calls."""
        buf = self._buffers
        hidden, obs_reg = state
        batch, width, n_pre, weights = x.shape[0], self.width, self.r0 - 1, buf["weights"]
        side_in = obs_reg if len(self.merged) == 1 else torch.cat([obs_reg, x[:, self.fresh]], dim=1)
        side = torch.addmm(buf["lean_side_bias"], side_in, buf["lean_side_weight"])
        head_end = n_pre * width + self.out_dim
        bmm_bias = (side[:, head_end:].view(batch, weights.shape[0], width).transpose(0, 1)
                    if self.bmm_reads_side else buf["lean_bmm_bias"])
        new_hidden = hidden.new_empty(self.n_rows - 1, batch, width)
        torch.baddbmm(bmm_bias, hidden[self._fast_args[6]], weights, out=new_hidden[n_pre:])
        torch.relu_(new_hidden[n_pre:])
        pre = side[:, : n_pre * width].view(batch, n_pre, width).transpose(0, 1)
        torch.clamp_min(pre, 0.0, out=new_hidden[:n_pre])
        if self.has_res:
            new_hidden.index_add_(0, buf["res_rows"], hidden.index_select(0, buf["res_slots"]))
        head = side[:, n_pre * width: head_end]
        if self.head_slots:
            head = torch.addmm(head, self._head_input(hidden, batch), buf["head_weight"])
        return head, (new_hidden, x)

    def _head_input(self, hidden: torch.Tensor, batch: int) -> torch.Tensor:
        """The stacked registers the head reads, flattened to ``[B, slots * P]``."""
        if self._fast_args[8]:  # the last register only
            return hidden[-1]
        regs = hidden if self.head_all else hidden.index_select(0, self._buffers["head_slot_index"])
        return regs[0] if len(self.head_slots) == 1 else regs.transpose(0, 1).reshape(batch, -1)

    def _step(self, x: torch.Tensor, state: State):
        _, row_bias, merged_weight, weights, n_blocks, rows, slots, head_weight, _ = self._fast_args
        buf = self._buffers
        hidden, obs_reg = state[0], state[1]
        batch, width, n_rows = x.shape[0], self.width, self.n_rows
        fresh = x[:, self.fresh] if self.fresh is not None else None
        if self.merged:
            side_in = (obs_reg if self.merged[0] == 0 else fresh) if len(self.merged) == 1 else \
                torch.cat([obs_reg, fresh], dim=1)
            pre = torch.addmm(row_bias, side_in, merged_weight).view(batch, n_rows, width).transpose(0, 1)
        else:
            pre = row_bias.view(n_rows, 1, width).expand(-1, batch, -1).clone()
        for j in self.wide:
            (head_cols, span), reading = self._wide_rows[j], buf[f"wide_rows{j}"]
            part = (obs_reg if j == 0 else state[2]) @ buf[f"wide_weight{j}"]
            if head_cols:
                pre[0, :, :head_cols].add_(part[:, :head_cols])
            if len(reading):
                rows_part = part[:, head_cols:].view(batch, len(reading), width).transpose(0, 1)
                if span is not None:
                    pre[span[0]: span[1]].add_(rows_part)
                else:
                    pre.index_add_(0, reading, rows_part)
        if self.fast and n_blocks:
            new_hidden = torch.baddbmm(pre[rows], hidden[slots], weights)
            if self.r0 > 1:
                new_hidden = torch.cat([pre[1: self.r0], new_hidden])
        else:
            new_hidden = pre[1:].clone()
            if n_blocks:
                products = torch.bmm(hidden.index_select(0, buf["block_slots"]), weights)
                new_hidden.index_add_(0, buf["block_rows"], products)
        torch.relu_(new_hidden)
        if self.has_res:
            new_hidden.index_add_(0, buf["res_rows"], hidden.index_select(0, buf["res_slots"]))
        head = pre[0, :, : self.out_dim]
        if self.head_slots:
            head = torch.addmm(head, self._head_input(hidden, batch), head_weight)
        if self.conv is not None:
            return head, (new_hidden, x, self.conv(obs_reg))
        return head, (new_hidden, x)

    def forward_sequence(self, obs, state: State, episode_start: torch.Tensor | None = None):
        """``[T, B, ...]`` one step at a time (the fused form is for acting, not for training)."""
        x = self.layout.flatten(obs, batch_dims=2, device=self.device)
        outs = []
        for t in range(x.shape[0]):
            out, state = self.forward(x[t], state, None if episode_start is None else episode_start[t])
            outs.append(out)
        return torch.stack(outs), state


def _pad_rows(w: torch.Tensor, rows: int) -> torch.Tensor:
    """``w`` ([d, out]) with zero rows appended up to ``rows``: a stacked register's padded width."""
    return torch.cat([w, w.new_zeros(rows - w.shape[0], w.shape[1])]) if w.shape[0] < rows else w
