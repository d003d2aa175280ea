"""ALD acting latency: one step of the LSTM actor against one step of the transformer learner.

Both act as they would in lagless: the LSTM carries its state, the transformer its cached
memory (``lagless.realtime.transformer``), one observation batch per call, under inference
mode, one torch thread. Timings are interleaved (LSTM block, transformer block, ...) so load
on a shared machine slows both alike; the median per-step time of each is reported, with
the ratio. Goal (the gap ALD exploits): the transformer at least 10x slower per step at the
default sizes of ``lagless train --algo ald``.

    python benchmarks/ald_latency.py [--batch 1 16] [--steps 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys

ARGS = None
if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", nargs="+", type=int, default=[1, 16])
    p.add_argument("--steps", type=int, default=300, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=5, help="interleaved blocks of each network")
    p.add_argument("--obs-dim", type=int, default=4, help="observation width (the T-maze's is 4)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="benchmarks/results/ald_latency.json")
    ARGS = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"

import datetime as _dt
import json
import shlex
import statistics
import time
from pathlib import Path

import gymnasium as gym
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minatar_delay import machine

from lagless.ald.config import ALDConfig
from lagless.realtime.architectures import build_network


def networks(obs_dim: int, n_actions: int = 3):
    """The default ALD actor and learner (``ALDConfig``'s sizes), with logits and a value."""
    c = ALDConfig()
    space = gym.spaces.Box(-1, 1, (obs_dim,))
    actor = build_network(c.arch, space, n_actions + 1, layers=c.layers, hidden=c.hidden)
    learner = build_network(c.learner_arch, space, n_actions + 1, layers=c.learner_layers,
                            hidden=c.learner_hidden, **c.learner_options())
    sizes = {"actor": f"{c.arch}, {c.hidden} units", "learner": f"{c.learner_arch}, {c.learner_layers} blocks x "
             f"{c.learner_hidden} wide, {c.learner_heads} heads, memory {c.learner_memory}"}
    return {"lstm": actor.eval(), "transformer": learner.eval()}, sizes


@torch.inference_mode()
def time_block(net, state, x, starts, steps: int, device) -> tuple[float, tuple]:
    """Seconds per step over ``steps`` steps, carrying the state (as acting does)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        _, state = net(x, state, starts)
    sync()
    return (time.perf_counter() - t0) / steps, state


def measure(batch: int, steps: int, repeats: int, obs_dim: int, device) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    nets, sizes = networks(obs_dim)
    x = torch.rand(batch, obs_dim, device=device)
    starts = torch.zeros(batch, dtype=torch.bool, device=device)
    times = {name: [] for name in nets}
    states = {name: net.to(device).initial_state(batch, device) for name, net in nets.items()}
    for name, net in nets.items():  # warm-up, and fill the transformer's memory
        _, states[name] = time_block(net, states[name], x, starts, ALDConfig().learner_memory + 10, device)
    for r in range(repeats):
        order = list(nets) if r % 2 == 0 else list(reversed(nets))
        for name in order:
            t, states[name] = time_block(nets[name], states[name], x, starts, steps, device)
            times[name].append(t)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    return {"batch": batch, "lstm_us": round(med["lstm"] * 1e6, 1),
            "transformer_us": round(med["transformer"] * 1e6, 1),
            "ratio": round(med["transformer"] / med["lstm"], 2), "sizes": sizes, "threads": 1,
            "device": str(device), "steps": steps, "repeats": repeats}


def main() -> None:
    device = torch.device(ARGS.device)
    command = "python benchmarks/ald_latency.py " + shlex.join(sys.argv[1:])
    records = []
    for batch in ARGS.batch:
        rec = measure(batch, ARGS.steps, ARGS.repeats, ARGS.obs_dim, device)
        rec.update(machine=machine(), date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                   command=command)
        records.append(rec)
        print(f"batch {batch}: LSTM {rec['lstm_us']:.0f} us/step, transformer {rec['transformer_us']:.0f} us/step, "
              f"ratio {rec['ratio']:.1f}x (goal >= 10x)", flush=True)
    out = Path(ARGS.out)
    out.write_text(json.dumps(records, indent=2) + "\n")
    lines = ["# ALD acting latency", "", f"Command: `{command}`", "",
             (f"Actor: {records[0]['sizes']['actor']}; learner: {records[0]['sizes']['learner']}. One torch "
             "thread, inference mode, state/memory carried, median of interleaved blocks."), "",
             "| batch | LSTM us/step | transformer us/step | ratio | device | machine | date |",
             "|---:|---:|---:|---:|---|---|---|"]
    lines += [f"| {r['batch']} | {r['lstm_us']:.0f} | {r['transformer_us']:.0f} | {r['ratio']:.1f}x | {r['device']} | "
              f"{r['machine']} | {r['date'][:10]} |" for r in records]
    lines += ["", "Goal: the transformer at least 10x slower per step than the LSTM (the gap ALD exploits)."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
