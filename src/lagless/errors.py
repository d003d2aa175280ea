"""User-facing errors: the command line prints these as one line and exits with code 2."""


class LaglessError(Exception):
    """A problem with the user's input (names, values, files) that they can fix."""
