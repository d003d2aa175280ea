"""`lagless explain`: discover behaviours in recorded episodes and attribute actions to them.

Only the parser lives here; the work is imported inside the command so that building the
`lagless` parser stays fast.
"""

from __future__ import annotations

from pathlib import Path

from lagless.config import add_config_arguments, build_config, load_config_json
from lagless.explain import attribute_cli
from lagless.explain.discover_config import DiscoverConfig


def add_parser(sub) -> None:
    """Add `explain` with its own subcommands to the top-level subparsers ``sub``."""
    p = sub.add_parser("explain", help="discover behaviours and attribute actions to them",
                       description="Discover behaviours in recorded episodes and attribute an "
                                   "agent's actions to them.")
    explain_sub = p.add_subparsers(dest="explain_command", metavar="SUBCOMMAND",
                                   parser_class=type(p))
    explain_sub.required = True
    _discover_parser(explain_sub)
    attribute_cli.add_parsers(explain_sub)


def _discover_parser(sub) -> None:
    p = sub.add_parser(
        "discover", help="find behaviours (VQ-VAE codes clustered on a code graph)",
        description="Train a small causal-transformer VQ-VAE on (state, action) windows, code "
                    "every step, cluster the graph of codes into behaviours and write labels, "
                    "segments, statistics, the model and an HTML report to OUT. Every option can "
                    "also come from --config FILE.json; flags override the file.")
    p.add_argument("data", metavar="DATA",
                   help="dataset: an .npz file, a Minari dataset folder or a local Minari dataset id")
    p.add_argument("--out", required=True, metavar="OUT", help="folder to write the results to")
    p.add_argument("--config", metavar="FILE.json", help="load options from a JSON config")
    add_config_arguments(p, DiscoverConfig)
    p.set_defaults(func=_cmd_discover)


def _cmd_discover(args) -> int:
    from lagless.explain.datasets import load_dataset
    from lagless.explain.discover import discover

    base = load_config_json(args.config, DiscoverConfig) if args.config else None
    config = build_config(DiscoverConfig, args, base)
    config.validate()
    data = load_dataset(args.data)
    path = Path(args.data).expanduser()
    source = str(path.resolve()) if path.exists() else str(args.data)
    s = discover(data, args.out, config, source=source)
    print(f"{s['num_steps']:,} steps, {s['codes_in_use']} of {s['codebook_size']} codes in use, "
          f"{s['num_behaviours']} behaviours in {s['num_segments']:,} segments; "
          f"written to {args.out} (open {Path(args.out) / 'report.html'})")
    return 0
