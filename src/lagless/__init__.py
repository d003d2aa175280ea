"""lagless: fast-acting agents on small hardware, learning from big models, inspectable afterwards."""

__version__ = "0.1.0"
