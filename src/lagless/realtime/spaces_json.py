"""Describe Gymnasium spaces as JSON, so checkpoints say what they were trained on."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces


def space_to_json(space: spaces.Space) -> dict:
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": float(np.min(space.low)), "high": float(np.max(space.high))}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(v) for k, v in space.spaces.items()}}
    return {"type": type(space).__name__, "repr": repr(space)}
