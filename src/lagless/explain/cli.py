"""Placeholder for `lagless explain` while it is being built; replaced by the real parser."""

from lagless.errors import LaglessError


def add_parser(sub) -> None:
    p = sub.add_parser("explain", help="discover behaviours and attribute actions to them")
    p.set_defaults(func=_not_ready)


def _not_ready(args) -> int:
    raise LaglessError("'lagless explain' is not built yet")
