"""Pipelined ("parallel neuron") networks: every layer fires once per agent step.

Convention (Anokhin et al., ICLR 2025; lagless DESIGN.md):

* Register 0 holds the observation; register ``i`` (1 <= i < L) holds stage ``i``'s output.
  Stage ``L`` is the output head.
* In one step every stage fires at once, each reading the registers as they stood at the
  end of the *previous* step. So ``forward(o_t)`` stores ``o_t`` in register 0 but no stage
  reads it before step ``t + 1``: an observation seen at step ``t`` never influences the
  output of step ``t``. A plain ``chain`` of L stages answers with the observation of step
  ``t - L`` (delay L); a skip connection to the head brings the minimum delay down to 1.
* ``instant`` networks use the same graph without registers: every stage reads the value
  computed in the same step, so the delay is 0 (the idealised reference).
* The agent's own last actions (the ``last_actions`` part of the observation, from
  ``--last-actions``) are not sensor readings: the newest of them is what the agent sampled
  from its head's output one step before, a value every stage may read in this step like any
  register. With ``fresh_stages`` set, those stages (every dense stage and the head; not a
  convolution, which would only pass them through) read that part of the *current*
  observation. A stage that works on an observation ``d`` steps old can then combine it with
  the actions taken since, which is what makes a delayed observation useful. Read only
  through register 0, the actions would be as old as the observation that carries them:
  exactly the ones it already reflects. ``min_delay``, ``max_delay`` and ``delays``
  describe the environment's observation; ``action_delays`` this part.
* ``episode_start[b]`` zeroes every register of batch entry ``b`` before the step is
  computed, so after a reset no output depends on observations from before it.

Within a step the stages are independent, and across a training sequence no stage feeds
back into itself, so a whole sequence is computed stage by stage with one call per stage
over all time steps (``forward_sequence``); that is exact, not an approximation.
"""

from __future__ import annotations

import torch
from torch import nn

from lagless.realtime.episode_state import reset_state
from lagless.realtime.module_device import DeviceAware
from lagless.realtime.observations import ObsLayout

State = tuple[torch.Tensor, ...]


def _delays(sources: list[list[int]], residual: list[bool], delayed: bool,
            entry: list[bool] | None = None) -> list[int]:
    """The set of input-to-output delays implied by the wiring.

    The input sits in register 0; ``entry[i-1]`` says stage ``i`` also reads it in the same step.
    """
    step = 1 if delayed else 0
    reg: list[set[int]] = [{0}]
    for i, src in enumerate(sources, start=1):
        d = {x + step for j in src for x in reg[j]}
        if residual[i - 1]:
            d |= {x + step for x in reg[i - 1]}
        if entry is not None and entry[i - 1]:
            d.add(0)
        reg.append(d)
    return sorted(reg[-1])


class PipelinedNet(DeviceAware):
    """A feed-forward graph of stages with per-stage delay (or none, for ``instant``).

    ``sources[i-1]`` lists the registers that stage ``i`` reads (concatenated in that order);
    ``residual[i-1]`` adds register ``i-1`` to stage ``i``'s output (same width required).
    ``fresh`` is the slice of the flat observation (the agent's last actions) that the stages
    marked in ``fresh_stages`` also read from the current step, appended after their sources
    (their input widths must include it).
    """

    def __init__(
        self,
        layout: ObsLayout,
        stages: list[nn.Module],
        sources: list[list[int]],
        residual: list[bool],
        *,
        delayed: bool,
        fresh: slice | None = None,
        fresh_stages: list[bool] | None = None,
    ):
        super().__init__()
        if not (len(stages) == len(sources) == len(residual)):
            raise ValueError("stages, sources and residual must have one entry per stage")
        for i, src in enumerate(sources, start=1):
            if not src or any(j < 0 or j >= i for j in src):
                raise ValueError(f"stage {i} must read registers in 0..{i - 1}, got {src}")
        self.layout = layout
        self.stages = nn.ModuleList(stages)
        self.sources = [list(s) for s in sources]
        self.residual = list(residual)
        self.delayed = delayed
        # an instant network already reads the current step
        self.fresh = fresh if delayed and fresh is not None and any(fresh_stages or ()) else None
        self.fresh_stages = list(fresh_stages) if self.fresh is not None else [False] * len(stages)
        self.register_dims = [layout.flat_dim] + [s.out_dim for s in stages[:-1]]
        self.out_dim = stages[-1].out_dim
        self.delays = _delays(self.sources, self.residual, delayed)
        self.min_delay = self.delays[0]
        self.max_delay = self.delays[-1]
        self.action_delays = (_delays(self.sources, self.residual, delayed, self.fresh_stages)
                              if self.fresh is not None else self.delays)

    # -- state -------------------------------------------------------------------------
    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        """All registers zero (the state at an episode start). Empty for ``instant``."""
        if not self.delayed:
            return ()
        return tuple(torch.zeros(batch_size, d, device=device) for d in self.register_dims)

    reset_state = staticmethod(reset_state)  # zero the registers where an episode starts

    # -- compute -----------------------------------------------------------------------
    def forward(self, obs, state: State, episode_start: torch.Tensor | None = None):
        """One step: ``obs`` is ``[B, ...]`` (or a dict of those); returns ``(out [B, out], state)``.

        Same result as ``forward_sequence`` with T = 1, without its shifting and copying.
        """
        x = self.layout.flatten(obs, batch_dims=1, device=self.device)
        if not self.delayed:
            return self._instant(x), ()
        if episode_start is not None:
            state = self.reset_state(state, episode_start.to(x.device))
        outs: list[torch.Tensor] = []
        for i, (stage, src, res) in enumerate(zip(self.stages, self.sources, self.residual), 1):
            y = stage(_cat(self._with_fresh(i, [state[j] for j in src], x)))
            outs.append(y + state[i - 1] if res else y)
        return outs[-1], (x, *outs[:-1])

    def _with_fresh(self, stage: int, parts: list[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
        """Stage ``stage``'s inputs, plus the current last actions if it reads them."""
        return parts + [x[..., self.fresh]] if self.fresh_stages[stage - 1] else parts

    def _instant(self, x: torch.Tensor) -> torch.Tensor:
        regs = [x]
        for stage, src, res in zip(self.stages, self.sources, self.residual):
            y = stage(_cat([regs[j] for j in src]))
            regs.append(y + regs[-1] if res else y)
        return regs[-1]

    def forward_sequence(self, obs, state: State, episode_start: torch.Tensor | None = None):
        """A whole sequence: ``obs`` is ``[T, B, ...]``, ``episode_start`` is ``[T, B]``.

        Returns ``(out [T, B, out], state after the last step)``; identical to T calls of
        ``forward``.
        """
        x = self.layout.flatten(obs, batch_dims=2, device=self.device)
        if not self.delayed:
            return self._instant(x), ()
        keep = None
        if episode_start is not None:
            keep = (~episode_start.to(x.device).bool()).float().unsqueeze(-1)  # [T, B, 1]
        seqs = [x]  # seqs[j][t]: register j after step t
        previous: dict[int, torch.Tensor] = {}

        def prev(j: int) -> torch.Tensor:
            # register j as read during step t: its value after step t-1, zeroed on reset
            if j not in previous:
                p = torch.cat([state[j].unsqueeze(0), seqs[j][:-1]], dim=0)
                previous[j] = p if keep is None else p * keep
            return previous[j]

        for i, (stage, src, res) in enumerate(zip(self.stages, self.sources, self.residual), 1):
            y = stage(_cat(self._with_fresh(i, [prev(j) for j in src], x)))
            seqs.append(y + prev(i - 1) if res else y)
        new_state = tuple(s[-1] for s in seqs[:-1])
        return seqs[-1], new_state


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
