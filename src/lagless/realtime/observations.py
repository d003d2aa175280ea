"""Turn any observation (Box image, Box vector, Dict of those) into one flat float tensor.

Networks keep every pipeline register as a flat vector so that masking, shifting and
concatenating registers is uniform. The layout remembers where the image part is, so a
convolutional first layer can fold it back into (C, H, W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces

from lagless.errors import LaglessError


@dataclass(frozen=True)
class ObsLayout:
    """Where the parts of a flattened observation live.

    The flat vector is ``[image (H*W*C, HWC order) | extras]`` when the observation holds an
    image, else just the flattened features. Dict keys other than ``"observation"`` are
    extras, in sorted order.
    """

    image_shape: tuple[int, int, int] | None  # (H, W, C)
    flat_dim: int
    keys: tuple[str, ...] | None  # Dict key order, None for a Box
    part_dims: tuple[int, ...] = ()  # flat width of each Dict key, in ``keys`` order

    @property
    def image_dim(self) -> int:
        return 0 if self.image_shape is None else math.prod(self.image_shape)

    @property
    def extra_dim(self) -> int:
        return self.flat_dim - self.image_dim

    def part_slice(self, key: str) -> slice | None:
        """Where Dict key ``key`` lies in the flat vector, or None if there is no such key."""
        if self.keys is None or key not in self.keys:
            return None
        i = self.keys.index(key)
        start = sum(self.part_dims[:i])
        return slice(start, start + self.part_dims[i])

    @classmethod
    def from_space(cls, space: spaces.Space) -> ObsLayout:
        if isinstance(space, spaces.Box):
            image = tuple(space.shape) if len(space.shape) == 3 else None
            return cls(image, int(math.prod(space.shape)), None)
        if isinstance(space, spaces.Dict):
            keys = sorted(space.spaces, key=lambda k: (k != "observation", k))
            for key in keys:
                if not isinstance(space[key], spaces.Box):
                    raise LaglessError(f"observation key '{key}' is {space[key]}; only Box parts are supported")
            first = space[keys[0]]
            image = tuple(first.shape) if keys[0] == "observation" and len(first.shape) == 3 else None
            dims = tuple(int(math.prod(space[k].shape)) for k in keys)
            return cls(image, sum(dims), tuple(keys), dims)
        raise LaglessError(f"observation space {space} is not supported: use a Box or a Dict of Boxes")

    def flatten(self, obs, batch_dims: int = 1, device: torch.device | str = "cpu") -> torch.Tensor:
        """Flatten a batch of observations (array, tensor or dict of them) to ``[*batch, flat_dim]``."""
        if self.keys is None:
            parts = [obs]
        else:
            if not isinstance(obs, dict):
                if isinstance(obs, torch.Tensor) and obs.shape[-1] == self.flat_dim:
                    return obs.to(device=device, dtype=torch.float32)
                raise LaglessError("this network expects a dict observation with keys " + ", ".join(self.keys))
            parts = [obs[k] for k in self.keys]
        flat = []
        for part in parts:
            t = torch.as_tensor(np.asarray(part) if not isinstance(part, torch.Tensor) else part)
            t = t.to(device=device, dtype=torch.float32)
            flat.append(t.reshape(*t.shape[:batch_dims], -1))
        out = flat[0] if len(flat) == 1 else torch.cat(flat, dim=-1)
        if out.shape[-1] != self.flat_dim:
            raise LaglessError(f"observation has {out.shape[-1]} features, the network expects {self.flat_dim}")
        return out


def final_observations(layout: ObsLayout, infos: dict, ended: np.ndarray) -> list[tuple[int, torch.Tensor]]:
    """(env index, flat last observation) of the episodes that ended where ``ended`` is set.

    A same-step-autoreset vector env returns the next episode's first observation; the last
    one of the finished episode is in ``infos["final_obs"]``.
    """
    final = infos.get("final_obs")
    if final is None:
        return []
    out = []
    for i in np.nonzero(ended)[0]:
        obs_i = final[i]
        if isinstance(obs_i, dict):
            x = layout.flatten({k: np.asarray(v)[None] for k, v in obs_i.items()})
        else:
            x = layout.flatten(np.asarray(obs_i)[None])
        out.append((int(i), x[0]))
    return out
