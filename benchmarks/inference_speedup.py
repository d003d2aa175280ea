"""Per-step acting latency: the sequential pipelined actor against the fused executor.

The whole actor is timed (observation in, head out; input layer and head included, state
carried, episode starts passed as acting code does), under inference mode, for each depth,
batch size and thread count. ``bmm_floor_ms`` is the bare batched matmul the fused step
contains (its stacked hidden blocks on the same inputs, nothing else): the floor of this
design. ``fused_ms`` is the fused actor as ``fuse`` returns it (its C++ step where that builds,
``fused_native``), ``fused_python_ms`` the same actor with ``native=False``. Blocks of all
timings are interleaved and the median of
``--repeats`` blocks is kept, so load on a shared machine slows all three alike; the load
average is recorded with each row. On CUDA every block is synchronised.

Goals (issue 15) at 8 layers, batch 1: at least 2.0x with 1 thread and 3.0x with 2 threads on
an otherwise idle machine, and the fused step within 1.25x of its bmm floor.

    python benchmarks/inference_speedup.py [--layers 2 4 8 16 32 64] [--batch 1 32] [--threads 1 2]
    python benchmarks/inference_speedup.py --report-only
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from records import load_records, machine, merge_record

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "inference_speedup.json"
KEY_FIELDS = ("device", "threads", "batch", "arch", "layers", "hidden", "obs")
FLAT_OBS = "17"  # what rows from before --image were measured with


def _timer(device: torch.device):
    def block(fn, steps: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - t0) / steps * 1e3  # ms per step

    return block


def measure(arch: str, layers: int, hidden: int, batch: int, device: torch.device, steps: int,
            repeats: int, obs_dim: int, act_dim: int, image: tuple[int, ...] | None = None) -> dict:
    """``image`` (height, width, channels): a MinAtar-like grid observation, so the actor's
    first stage is a convolution; else a flat observation of ``obs_dim``."""
    import gymnasium as gym

    from lagless.realtime import fuse, make_actor

    obs_space = gym.spaces.Box(0, 1, image) if image else gym.spaces.Box(-1, 1, (obs_dim,))
    net = make_actor(arch, obs_space, gym.spaces.Box(-1, 1, (act_dim,)), layers=layers, hidden=hidden)
    net = net.to(device).eval()
    fused, fused_python = fuse(net), fuse(net, native=False)
    native = fused.runs_native
    # flat, as acting code passes observations (Policy.act flattens them once)
    x = ((torch.rand(batch, *image, device=device) < 0.1).float().reshape(batch, -1) if image
         else torch.rand(batch, obs_dim, device=device))
    starts = torch.zeros(batch, dtype=torch.bool, device=device)
    states = {"seq": net.initial_state(batch, device), "fused": fused.initial_state(batch, device),
              "python": fused_python.initial_state(batch, device)}
    k = fused.weights.shape[0]
    floor_in = torch.rand(k, batch, fused.width, device=device)
    floor_bias = torch.rand(k, batch, fused.width, device=device)

    def seq():
        states["seq"] = net(x, states["seq"], starts)[1]

    def fus():
        states["fused"] = fused(x, states["fused"], starts)[1]

    def python():
        states["python"] = fused_python(x, states["python"], starts)[1]

    def floor():
        torch.baddbmm(floor_bias, floor_in, fused.weights)

    block = _timer(device)
    times: dict[str, list[float]] = {"seq": [], "fused": [], "python": [], "floor": []}
    with torch.inference_mode():
        for fn in (seq, fus, python, floor):  # warm-up
            block(fn, max(10, steps // 10))
        for _ in range(repeats):
            times["seq"].append(block(seq, steps))
            times["fused"].append(block(fus, steps))
            times["python"].append(block(python, steps))
            if k:
                times["floor"].append(block(floor, steps))
    med = {name: statistics.median(v) if v else float("nan") for name, v in times.items()}
    return {"sequential_ms": round(med["seq"], 5), "fused_ms": round(med["fused"], 5), "native": native,
            "fused_python_ms": round(med["python"], 5),
            "bmm_floor_ms": round(med["floor"], 5), "speedup": round(med["seq"] / med["fused"], 3),
            "fused_over_floor": round(med["fused"] / med["floor"], 3) if k else None, "stacked_blocks": k}


def write_report(out: Path, command: str) -> None:
    recs = load_records(out)
    lines = ["# Fused executor: per-step latency", "", f"Command: `{command}`", "",
             ("Whole actor (17 inputs, or the image in the obs column: a first convolution, 6 outputs, hidden as listed), one step, inference mode, median of "
             "interleaved blocks. speed-up = sequential / fused; floor = the fused step's bare baddbmm. "
             "step: native = the C++ step (fused_native), python = its Python step; python fused = the "
             "same actor with native=False (rows from before the C++ step have neither)."), "",
             ("| device | threads | batch | arch | obs | layers | sequential ms | fused ms | step | speed-up | "
              "floor ms | fused / floor | python fused ms | load | date |"),
             "|---|---:|---:|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in recs:
        r.setdefault("obs", FLAT_OBS)
        ratio = "" if r["fused_over_floor"] is None else f"{r['fused_over_floor']:.2f}"
        step = {True: "native", False: "python"}.get(r.get("native"), "python (before native)")
        python_ms = f"{r['fused_python_ms']:.4f}" if "fused_python_ms" in r else ""
        lines.append(f"| {r['device']} | {r['threads']} | {r['batch']} | {r['arch']} | {r['obs']} | {r['layers']} | "
                     f"{r['sequential_ms']:.4f} | {r['fused_ms']:.4f} | {step} | {r['speedup']:.2f}x | "
                     f"{r['bmm_floor_ms']:.4f} | {ratio} | {python_ms} | {r['load']} | {r['date'][:10]} |")
    machines = sorted({r["machine"] for r in recs})
    lines += ["", "Machines: " + "; ".join(machines), "",
              ("Goals at 8 layers, batch 1: 2.0x (1 thread), 3.0x (2 threads) on an idle machine; fused "
              "within 1.25x of its floor."), ""]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    plot(recs, out.with_suffix(".png"))


def plot(recs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    key = lambda r: (r["device"], r["threads"], r["batch"], r["arch"], r.get("obs", FLAT_OBS))
    for group in sorted({key(r) for r in recs}):
        device, threads, batch, arch, obs = group
        g = sorted((r for r in recs if key(r) == group), key=lambda r: r["layers"])
        image = "" if obs == FLAT_OBS else f", {obs} image"
        ax.plot([r["layers"] for r in g], [r["speedup"] for r in g], marker="o",
                label=f"{arch}{image}, {device}, {threads} thr, batch {batch}")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set(xscale="log", xlabel="layers", ylabel="speed-up (sequential / fused)",
           title="Fused executor: per-step speed-up")
    ax.set_xticks(sorted({r["layers"] for r in recs}), [str(n) for n in sorted({r["layers"] for r in recs})])
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", nargs="+", type=int, default=[2, 4, 8, 16, 32, 64])
    p.add_argument("--batch", nargs="+", type=int, default=[1, 32])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--arch", nargs="+", default=["chain", "skip"])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu or cuda (on cuda --threads is ignored)")
    p.add_argument("--steps", type=int, default=400, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=7, help="interleaved blocks of each executor")
    p.add_argument("--obs-dim", type=int, default=17, help="observation width (HalfCheetah's: 17)")
    p.add_argument("--act-dim", type=int, default=6)
    p.add_argument("--image", type=int, nargs=3, metavar=("H", "W", "C"),
                   help="a grid observation instead (MinAtar: 10 10 4 to 10 10 10): the first stage is a convolution")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    command = "python benchmarks/inference_speedup.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    if not args.report_only:
        for threads in ([0] if device.type == "cuda" else args.threads):
            if threads:
                torch.set_num_threads(threads)
            for batch in args.batch:
                for arch in args.arch:
                    for layers in args.layers:
                        res = measure(arch, layers, args.hidden, batch, device, args.steps, args.repeats,
                                      args.obs_dim, args.act_dim, tuple(args.image) if args.image else None)
                        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
                        rec = {"device": name, "threads": threads or torch.get_num_threads(), "batch": batch,
                               "arch": arch, "layers": layers, "hidden": args.hidden,
                               "obs": "x".join(map(str, args.image)) if args.image else str(args.obs_dim), **res,
                               "load": round(os.getloadavg()[0], 2), "machine": machine(),
                               "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                               "command": command}
                        merge_record(args.out, rec, KEY_FIELDS,
                                     lambda r: tuple(r.get(k, FLAT_OBS) for k in KEY_FIELDS))
                        print(f"[inference_speedup] {rec['device']} {rec['threads']} thr batch {batch} {arch} "
                              f"L{layers}: seq {res['sequential_ms']:.4f} ms, fused {res['fused_ms']:.4f} ms "
                              f"({res['speedup']:.2f}x, {'native' if res['native'] else 'python'}; python "
                              f"{res['fused_python_ms']:.4f} ms), floor {res['bmm_floor_ms']:.4f} ms", flush=True)
    write_report(args.out, command)
    print(f"[inference_speedup] report {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
