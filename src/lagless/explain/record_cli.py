"""Placeholder for `lagless record` while it is being built; replaced by the real parser."""

from lagless.errors import LaglessError


def add_parser(sub) -> None:
    p = sub.add_parser("record", help="record a trained agent's episodes")
    p.set_defaults(func=_not_ready)


def _not_ready(args) -> int:
    raise LaglessError("'lagless record' is not built yet")
