"""``lagless explain attribute`` and ``lagless explain report``: the parsers and their commands.

Built on every ``lagless`` call, so the work modules are imported inside the commands.
"""

from __future__ import annotations

import dataclasses

from lagless.config import add_config_arguments, build_config
from lagless.errors import LaglessError


def add_parsers(explain_subparsers) -> None:
    """Add ``attribute`` and ``report`` to the ``lagless explain`` subcommands."""
    from lagless.explain.attribute import AttributeConfig

    p = explain_subparsers.add_parser(
        "attribute", help="attribute an agent's actions to the discovered behaviours",
        description="Explain an agent's actions at query states by the behaviours in OUT: by the "
                    "similarity of its action distribution to per-behaviour cloned policies, and by "
                    "how much a cloned policy's action changes when a behaviour is left out of its data. "
                    "Writes OUT/attribution.json and rebuilds OUT/report.html.")
    p.add_argument("out", metavar="OUT", help="folder written by 'lagless explain discover'")
    agent = p.add_mutually_exclusive_group()
    agent.add_argument("--policy", metavar="DIR", help="a lagless run directory: the agent to explain")
    agent.add_argument("--bc", action="store_true", help="explain a policy behaviour-cloned from all the data")
    agent.add_argument("--recorded", action="store_true",
                       help="explain the action probabilities 'lagless record' saved with the data")
    p.add_argument("--data", metavar="DATA", help="dataset (.npz, Minari folder or id); default: the one "
                                                  "OUT/discover.json names")
    p.add_argument("--checkpoint", metavar="PATH", help="with --policy: a checkpoint folder (default: the newest)")
    add_config_arguments(p, AttributeConfig)
    p.set_defaults(func=_cmd_attribute)

    r = explain_subparsers.add_parser("report", help="rebuild OUT/report.html from the files in OUT",
                                      description="Rebuild the self-contained HTML report of OUT.")
    r.add_argument("out", metavar="OUT", help="folder written by 'lagless explain discover'")
    r.add_argument("--data", metavar="DATA", help="dataset for the example segments; default: the one "
                                                  "OUT/discover.json names")
    r.set_defaults(func=_cmd_report)


def _cmd_attribute(args) -> int:
    from lagless.explain.attribute import AttributeConfig, attribute

    if not (args.policy or args.bc or args.recorded):
        raise LaglessError("say which agent to explain: --policy DIR, --bc or --recorded")
    config = build_config(AttributeConfig, args)
    if hasattr(args, "queries") and config.episode is not None:
        raise LaglessError("give either --queries N or --episode E, not both")
    result = attribute(args.out, policy_dir=args.policy, bc=args.bc, recorded=args.recorded, data=args.data,
                       checkpoint=args.checkpoint, **dataclasses.asdict(config))
    top = result["most_attributed"]
    print(f"{result['num_queries']} queries, {result['num_behaviours']} behaviours; most attributed: "
          f"behaviour {top['similarity']} by similarity, behaviour {top['counterfactual']} by counterfactual; "
          f"written to {args.out}/attribution.json and {args.out}/report.html")
    return 0


def _cmd_report(args) -> int:
    from lagless.explain.attribute import check_out_dir, load_labels
    from lagless.explain.report import write_report

    out = check_out_dir(args.out)
    load_labels(out)  # a folder without discovery results is a user error, not an empty report
    print(write_report(out, data=args.data))
    return 0
