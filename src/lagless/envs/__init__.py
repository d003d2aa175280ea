"""Environments for lagless: one factory plus the wrappers that make fast, delayed acting work."""

from lagless.envs.make_env import make_env, make_single_env
from lagless.envs.wrappers import ActionRepeat, LastActions, ObsDelay, ObsHistory

__all__ = ["ActionRepeat", "LastActions", "ObsDelay", "ObsHistory", "make_env", "make_single_env"]
