"""Trainers behind ``lagless train --algo``: one registry, one loop, one way to load a policy."""

from lagless.trainers.base import Iteration, Trainer
from lagless.trainers.loading import load_policy
from lagless.trainers.loop import TrainResult, train
from lagless.trainers.registry import get_trainer, register_trainer, trainer_names

__all__ = ["Iteration", "TrainResult", "Trainer", "get_trainer", "load_policy", "register_trainer",
           "train", "trainer_names"]
