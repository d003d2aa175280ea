"""`lagless record`: play a trained agent and save its episodes as an npz or Minari dataset."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "record", help="record a trained agent's episodes as a dataset",
        description="Run a trained agent, with its delays, for N episodes and write them (observations, "
                    "actions, rewards, flags, plus the agent's action probabilities and values) as an "
                    ".npz file or a Minari dataset.")
    p.add_argument("run_dir", metavar="DIR", help="run directory made by 'lagless train'")
    p.add_argument("--episodes", type=int, required=True, metavar="N", help="episodes to record")
    p.add_argument("--out", metavar="DATA", help="the .npz file to write; with --format minari, an optional "
                   "Minari datasets root (default: MINARI_DATASETS_PATH or ~/.minari/datasets)")
    p.add_argument("--checkpoint", metavar="PATH", help="a checkpoint folder (default: the newest)")
    p.add_argument("--greedy", action="store_true", help="take the most likely action instead of sampling")
    p.add_argument("--seed", type=int, default=None, metavar="X",
                   help="environment and sampling seed (default: run seed + 10000)")
    p.add_argument("--format", choices=("npz", "minari"), default=None,
                   help="dataset format (default: minari if --dataset-id is given, else npz)")
    p.add_argument("--dataset-id", metavar="ID", help="Minari dataset id, e.g. mydata/breakout/agent-v0")
    p.add_argument("--num-envs", type=int, default=8, metavar="K", help="environments played in parallel (default: 8)")
    p.add_argument("--device", default="cpu", metavar="DEV", help="auto, cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--fused", action="store_true", help="act with the fused executor (pipelined architectures "
                   "only; same outputs, faster)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_record)


def _cmd_record(args) -> int:
    from lagless.explain.record import record

    s = record(args.run_dir, args.episodes, args.out, checkpoint=args.checkpoint, greedy=args.greedy,
               seed=args.seed, num_envs=args.num_envs, progress=not args.no_progress,
               format=args.format, dataset_id=args.dataset_id, device=args.device,
               fused=args.fused)
    print(f"recorded {s['episodes']} episodes ({s['steps']} steps, mean return {s['mean_return']:.2f}) "
          f"of {s['arch']} on {s['env']} at step {s['checkpoint_step']}; written to {s['written_to']}")
    return 0
