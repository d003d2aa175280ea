"""The ``lagless`` command line: one parser per subcommand, user errors as one line, exit 2."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from lagless import __version__
from lagless.config import add_config_arguments, build_config, check_config_dict
from lagless.errors import LaglessError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
RESUME_HINTS = {
    "train": "; progress up to the last checkpoint is saved (continue with 'lagless train --resume DIR')",
    "demo": "; rerun 'lagless demo' to resume both runs from their checkpoints",
    "kdlora": "; finished steps are kept (rerun the same 'lagless kdlora run' to continue)",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line naming the problem, then exit 2."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        sys.exit(EXIT_USAGE)


def _algo_from_argv(argv: list[str]) -> tuple[str, bool]:
    """(trainer name, named explicitly?) for ``lagless train``, read before the full parse.

    ``--algo`` wins; else the run that ``--resume`` names, or the ``algo`` key of ``--config``;
    else PPO. The answer picks which config class supplies the flags (and ``--help``).
    """
    from lagless.trainers.registry import DEFAULT_TRAINER
    from lagless.trainers.run_dir import ALGO_KEY, read_json_object

    def value(flag: str) -> str | None:
        for i, a in enumerate(argv):
            if a == flag and i + 1 < len(argv):
                return argv[i + 1]
            if a.startswith(flag + "="):
                return a.split("=", 1)[1]
        return None

    if (algo := value("--algo")) is not None:
        return algo, True
    for flag, name in (("--resume", "config.json"), ("--config", "")):
        where = value(flag)
        path = Path(where) / name if where and name else Path(where) if where else None
        if path is not None and path.is_file():
            try:
                return str(read_json_object(path, "the config").get(ALGO_KEY) or DEFAULT_TRAINER), False
            except LaglessError:
                return DEFAULT_TRAINER, False  # the full parse reports the damaged file
    return DEFAULT_TRAINER, False


def _train_parser(sub, argv: list[str]) -> None:
    from lagless.trainers import get_trainer, trainer_names
    from lagless.trainers.registry import DEFAULT_TRAINER

    algo, _ = _algo_from_argv(argv)
    trainer = get_trainer(algo)
    choices = ", ".join(f"{n} ({get_trainer(n).description})" if n == algo else n for n in trainer_names())
    p = sub.add_parser(
        "train", help=f"train an agent (--algo {', '.join(trainer_names())}; default {DEFAULT_TRAINER})",
        description=f"Train a real-time agent with {algo.upper()}: {trainer.description}. The options "
                    f"below are {algo}'s ('lagless train --algo NAME --help' shows another trainer's). "
                    "Every option can also come from --config FILE.json; flags override the file.")
    p.add_argument("--algo", default=algo, metavar="NAME", help=f"trainer: {choices} (default: {algo})")
    p.add_argument("--config", metavar="FILE.json", help="load options from a JSON config")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its newest checkpoint "
                   "(budget flags such as --total-steps may change; network and environment flags may not)")
    add_config_arguments(p, trainer.config_class)
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from lagless.config import check_resume_changes, config_to_dict
    from lagless.trainers import get_trainer, train
    from lagless.trainers.run_dir import ALGO_KEY, default_run_dir, read_run_config

    cls = get_trainer(args.algo).config_class
    if args.resume:
        run_algo, saved = read_run_config(args.resume)
        if run_algo != args.algo:
            raise LaglessError(f"--algo cannot change when resuming ({args.resume} is a '{run_algo}' run, "
                               f"the flags ask for '{args.algo}'): start a new run with another --run-dir")
        base = {**config_to_dict(saved), "run_dir": args.resume}
        config = build_config(cls, args, base)
        if config.run_dir != args.resume:
            raise LaglessError("--resume and --run-dir name different folders: give only --resume DIR")
        check_resume_changes(saved, config, args.resume)
    else:
        base = None
        if args.config:
            base = _read_config_file(args.config)
            file_algo = base.pop(ALGO_KEY, args.algo)
            if file_algo != args.algo:
                raise LaglessError(f"{args.config} is a '{file_algo}' config, but --algo is '{args.algo}'")
            base = check_config_dict(base, cls, args.config)
        config = build_config(cls, args, base)
    config.validate()
    if not config.run_dir:
        config.run_dir = str(default_run_dir(config))
    print(f"{'resuming' if args.resume else 'training'} {config.arch} with {args.algo} on {config.env}; "
          f"run directory {config.run_dir} (TensorBoard: tensorboard --logdir {config.run_dir})", flush=True)
    result = train(args.algo, config, resume=bool(args.resume))
    recent = result.episode_returns[-max(1, len(result.episode_returns) // 10):]
    summary = f"mean return of the last {len(recent)} episodes {sum(recent) / len(recent):.2f}, " if recent else ""
    print(f"done: {result.global_step} steps, {summary}{result.sps:,.0f} steps/s; run in {result.run_dir}")
    return 0


def _read_config_file(path: str) -> dict:
    from lagless.trainers.run_dir import read_json_object

    if not Path(path).is_file():
        raise LaglessError(f"config file {path} does not exist")
    return read_json_object(Path(path), "the config file")


def _eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a trained agent, with its delays",
                       description="Run a trained agent (any trainer) for N episodes; print and write "
                                   "DIR/eval.json.")
    p.add_argument("run_dir", metavar="DIR", help="run directory made by 'lagless train'")
    p.add_argument("--episodes", type=int, default=10, metavar="N", help="episodes to run (default: 10)")
    p.add_argument("--checkpoint", metavar="PATH", help="a checkpoint folder (default: the newest)")
    p.add_argument("--greedy", action="store_true", help="take the most likely action instead of sampling")
    p.add_argument("--seed", type=int, default=None, metavar="X", help="environment seed (default: run seed + 10000)")
    p.add_argument("--device", default="cpu", metavar="DEV", help="auto, cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--fused", action="store_true", help="act with the fused executor: all layers of a step in "
                   "one batched matmul (pipelined architectures only; same outputs, faster)")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args) -> int:
    from lagless.realtime.evaluate import evaluate

    s = evaluate(args.run_dir, episodes=args.episodes, checkpoint=args.checkpoint,
                 greedy=args.greedy, seed=args.seed, device=args.device, fused=args.fused)
    print(f"{s['arch']} ({s['algo']}) on {s['env']} at step {s['step']} ({s['delay']}): {s['episodes']} "
          f"episodes, return mean {s['mean']:.2f} std {s['std']:.2f} "
          f"min {s['min']:.2f} max {s['max']:.2f}; written to {args.run_dir}/eval.json")
    return 0


def _demo_parser(sub) -> None:
    from lagless.realtime.demo import DEMO_ENV, DEMO_LAYERS, DEMO_STEPS

    p = sub.add_parser("demo", help=f"skip + last actions vs chain, {DEMO_LAYERS} layers on {DEMO_ENV}, side by side",
                       description=f"Train a {DEMO_LAYERS}-layer 'skip' agent with last-action augmentation and "
                                   f"a 'chain' agent of the same depth on {DEMO_ENV} at tau 1, one per CPU core; "
                                   "print a table and write a comparison plot; time the trained skip actor "
                                   "with the fused executor and run it against a wall clock.")
    p.add_argument("--steps", type=int, default=DEMO_STEPS, metavar="S", help=f"agent steps per agent (default: {DEMO_STEPS})")
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="where the two runs and the plot go "
                   "(default: runs/demo)")
    p.add_argument("--seed", type=int, default=1, metavar="X", help="random seed (default: 1)")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> int:
    from lagless.realtime.demo import run_demo

    run_demo(args.out, steps=args.steps, seed=args.seed)
    return 0


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="lagless", description="Agents that act fast on small hardware.")
    parser.add_argument("--version", action="version", version=f"lagless {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    _train_parser(sub, list(sys.argv[1:] if argv is None else argv))
    _eval_parser(sub)
    from lagless.realtime import runner_cli  # lagless run: an agent on a wall clock
    runner_cli.add_parser(sub)
    _demo_parser(sub)
    from lagless.explain import cli as explain_cli
    from lagless.explain import record_cli
    from lagless.kdlora import cli as kdlora_cli

    record_cli.add_parser(sub)
    explain_cli.add_parser(sub)
    kdlora_cli.add_parser(sub)
    return parser


def _interrupt_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C, so a terminated training run saves a checkpoint first."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        pass


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser(argv)
    except LaglessError as e:  # e.g. an unknown --algo, found while choosing the train options
        print(f"lagless: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    _interrupt_on_sigterm()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except LaglessError as e:
        print(f"lagless {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"lagless {args.command}: interrupted{RESUME_HINTS.get(args.command, '')}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
