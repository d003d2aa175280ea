"""`lagless run`: a trained agent on a wall clock (see ``lagless.realtime.runner`` for the rules)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "run", help="drive a trained agent in wall-clock time: deadline misses, latency, return",
        description="Run a trained agent against a wall clock: the environment steps every 1/HZ seconds "
                    "whatever the agent is doing, with the newest action that is ready; when no new action "
                    "has arrived since the previous tick the previous one repeats (a deadline miss). A "
                    "pipelined network (chain, skip, ...) computes one network step per tick; instant, lstm "
                    "and transformer compute the whole network per action. Prints and writes (DIR/run.json "
                    "or --out) the achieved rate, deadline misses, observation-to-action latency in ticks "
                    "and ms (the run's --obs-delay included) and the return per episode.")
    p.add_argument("run_dir", metavar="DIR", help="run directory made by 'lagless train'")
    p.add_argument("--hz", type=float, required=True, metavar="F", help="environment ticks (agent steps) per second")
    p.add_argument("--episodes", type=int, default=3, metavar="N", help="episodes to run (default: 3)")
    p.add_argument("--max-ticks", type=int, default=None, metavar="K",
                   help="end an episode after K ticks (default: the environment's own limit)")
    p.add_argument("--layer-ms", type=float, default=0.0, metavar="X",
                   help="simulate slow hardware: add X ms of compute per layer (a sleep). Assumes one processor "
                        "per layer for pipelined networks, whose layers run in parallel (a step costs X), and "
                        "layers in series for instant, lstm and transformer (a step costs layers x X, with the "
                        "run's --layers) (default: 0, the measured compute only)")
    p.add_argument("--checkpoint", metavar="PATH", help="a checkpoint folder (default: the newest)")
    p.add_argument("--greedy", action=argparse.BooleanOptionalAction, default=True,
                   help="take the most likely action; --no-greedy samples (default: greedy)")
    p.add_argument("--seed", type=int, default=None, metavar="X",
                   help="environment and sampling seed; episode i uses X + i (default: run seed + 10000)")
    p.add_argument("--device", default="cpu", metavar="DEV", help="auto, cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--fused", action="store_true",
                   help="act with the fused executor (all layers of a step in one operation)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch CPU threads while acting; 0 keeps torch's default (default: 1: one observation "
                        "gains nothing from more, and a thread waiting for a busy core stalls the whole step)")
    p.add_argument("--out", metavar="FILE.json", help="where to write the summary (default: DIR/run.json)")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args) -> int:
    from lagless.realtime.runner import describe, run_agent

    s = run_agent(args.run_dir, hz=args.hz, episodes=args.episodes, layer_ms=args.layer_ms,
                  checkpoint=args.checkpoint, greedy=args.greedy, seed=args.seed, device=args.device,
                  max_ticks=args.max_ticks, fused=args.fused, out=args.out, threads=args.threads)
    print(describe(s))
    return 0
