"""Capture and restore every random generator a training run draws from (bit-exact resume).

torch's global generator goes to the checkpoint's tensor file; numpy's global state, python's
``random`` state and named ``numpy.random.Generator`` objects (seeded backends' shot samplers,
SPSA perturbations) go to its JSON file.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from quicq.training.errors import CheckpointError

__all__ = ["Snapshot", "find_generators", "restore_rng", "rng_json"]


def rng_json(generators: Mapping[str, np.random.Generator]) -> dict[str, Any]:
    """JSON-ready numpy-global, python and named-Generator states (the torch state goes to tensors)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    return {
        "numpy": {"name": name, "keys": [int(k) for k in keys], "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": {"version": py[0], "state": list(py[1]), "gauss_next": py[2]},
        "generators": {k: g.bit_generator.state for k, g in generators.items()},
    }


def restore_rng(state: Mapping[str, Any], torch_state: torch.Tensor,
                generators: Mapping[str, np.random.Generator]) -> None:
    """Restore what :func:`rng_json` (and the torch state tensor) recorded."""
    torch.set_rng_state(torch_state)
    npst = state["numpy"]
    np.random.set_state((npst["name"], np.asarray(npst["keys"], dtype=np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    saved = state.get("generators", {})
    missing = sorted(set(generators) - set(saved))
    if missing:
        raise CheckpointError(f"checkpoint has no state for random generator(s) {missing}; it was written by another run")
    for k, g in generators.items():
        g.bit_generator.state = saved[k]


@dataclass
class Snapshot:
    """Every RNG state at one instant (to checkpoint the start of a failed step)."""

    torch_state: torch.Tensor
    json_state: dict[str, Any]

    @classmethod
    def take(cls, generators: Mapping[str, np.random.Generator]) -> Snapshot:
        return cls(torch.get_rng_state().clone(), copy.deepcopy(rng_json(generators)))


def find_generators(*objects: Any, prefix: str = "") -> dict[str, np.random.Generator]:
    """Named ``numpy.random.Generator`` objects held by ``objects`` (attribute ``rng`` or ``_rng``).

    Seeded backends draw their shots (or simulator seeds) from such a generator; a bit-exact
    resume must restore it too.
    """
    out: dict[str, np.random.Generator] = {}
    for i, obj in enumerate(objects):
        if obj is None:
            continue
        for attr in ("rng", "_rng"):
            g = getattr(obj, attr, None)
            if isinstance(g, np.random.Generator):
                out[f"{prefix}{i}.{attr}"] = g
    return out
