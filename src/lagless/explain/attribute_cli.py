"""Placeholder for `lagless explain attribute` and `lagless explain report` while they are built."""


def add_parsers(explain_subparsers) -> None:
    """Adds nothing yet; the real module adds `attribute` and `report`."""
