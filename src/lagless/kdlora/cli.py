"""Placeholder for `lagless kdlora` while it is being built; replaced by the real parser."""

from lagless.errors import LaglessError


def add_parser(sub) -> None:
    p = sub.add_parser("kdlora", help="KD-LoRA on GLUE-style text tasks")
    p.set_defaults(func=_not_ready)


def _not_ready(args) -> int:
    raise LaglessError("'lagless kdlora' is not built yet")
