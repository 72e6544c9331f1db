"""Block estimates of ``quicq demo``: every adapted layer's blocks from one backend condition.

Raw and post-selected estimates share one sampling per layer (the same shots reduced both
ways); the mitigated estimate runs every layer in one job through the model bridge with
:data:`~quicq.hardware.mitigation.NOISY_BLOCK_TOMOGRAPHY`. Errors are against the exact engine.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from quicq.hardware.model_bridge import ModelHardwareBridge
from quicq.training.tasks import accuracy

__all__ = ["Estimate", "accuracy_with", "estimate_all", "estimate_mitigated", "exact_blocks"]


@dataclass
class Estimate:
    """Blocks of every adapted layer from one backend condition, with error statistics."""

    label: str
    blocks: dict[str, list[torch.Tensor]]  # layer → one (N', D, D) tensor per order
    max_abs_error: float
    mean_abs_error: float
    magnitude_mean_abs_error: float | None  # Z-basis |U| estimates alone: where post-selection acts
    kept_fraction: float | None
    seconds: float
    circuits: int


def exact_blocks(model: Any) -> dict[str, list[torch.Tensor]]:
    with torch.no_grad():
        return {name: [b.detach().double() for b in layer.blocks()] for name, layer in model.quicq_layers().items()}


def estimate_all(model: Any, backend: Any, shots: int, exact: dict[str, list[torch.Tensor]],
                  postselect_variants: Sequence[bool]) -> list[Estimate]:
    """Estimate every layer's blocks on ``backend``; one sampling per layer, reduced per variant."""
    from quicq.hardware.tomography import BlockTomography

    per_variant: dict[bool, dict[str, Any]] = {v: {"blocks": {}, "err": [], "kept": [], "mag": [], "circuits": 0}
                                               for v in postselect_variants}
    t0 = time.perf_counter()
    for name, layer in model.quicq_layers().items():
        spec = layer.quic_spec["default"]
        angles = layer.angles().detach().double().numpy()
        plans = {v: BlockTomography(layer.circuit(), spec.orders, magnitudes=True, postselect=v)
                 for v in postselect_variants}
        first = plans[postselect_variants[0]]
        outcomes = backend.sample(first.tasks(angles), shots)  # the same shots for every variant
        for v, plan in plans.items():
            red = plan.reduce(outcomes, angles, shots)
            rec = per_variant[v]
            rec["blocks"][name] = [torch.as_tensor(red["blocks"][k]) for k in spec.orders]
            rec["err"] += [np.abs(red["blocks"][k] - exact[name][i].numpy()).ravel()
                           for i, k in enumerate(spec.orders)]
            if red["kept"].get(1) is not None:
                rec["kept"].append(np.asarray(red["kept"][1]).ravel())
            mag = red.get("details", {}).get("magnitude_1")
            if mag is not None and 1 in spec.orders:
                u = exact[name][spec.orders.index(1)].numpy()
                rec["mag"].append(np.abs(mag - np.abs(u)).ravel())
            rec["circuits"] += len(plan.circuits)
    secs = time.perf_counter() - t0
    out = []
    for v, rec in per_variant.items():
        err = np.concatenate(rec["err"])
        kept = float(np.mean(np.concatenate(rec["kept"]))) if rec["kept"] else None
        label = f"{backend.name}" + ("" if len(postselect_variants) == 1 else
                                     (", post-selected" if v else ", no post-selection"))
        mag = float(np.mean(np.concatenate(rec["mag"]))) if rec["mag"] else None
        out.append(Estimate(label, rec["blocks"], float(err.max()), float(err.mean()), mag, kept, secs,
                            rec["circuits"]))
    return out


def estimate_mitigated(model: Any, backend: Any, shots: int, exact: dict[str, list[torch.Tensor]],
                        options: dict[str, Any]) -> tuple[Estimate, dict[str, Any]]:
    """Every layer's blocks with ``options`` (:data:`NOISY_BLOCK_TOMOGRAPHY`) in one job, via the model bridge."""
    opts = dict(options)
    magnitudes = bool(opts.pop("magnitudes", True))
    t0 = time.perf_counter()
    bridge = ModelHardwareBridge(model, backend, gradient="surrogate", shots=shots, magnitudes=magnitudes,
                                 tomography=opts, attach=False)
    with torch.no_grad():
        bridge.refresh()
    secs = time.perf_counter() - t0
    blocks, err = {}, []
    for u in bridge.units:
        blocks[u.name] = [b.detach().double() for b in u.cache.outputs]
        err += [np.abs(b.numpy() - e.numpy()).ravel() for b, e in zip(blocks[u.name], exact[u.name])]
    e = np.concatenate(err)
    label = f"{backend.name}, mitigated ({'signed' if not magnitudes else 'derived'}"
    label += " + ZNE" if opts.get("zne") else ""
    label += " + M3" if opts.get("readout") else ""
    label += ")"
    first = next(iter(bridge.last_results.values()))
    info = {"options": {"magnitudes": magnitudes, **{k: v for k, v in opts.items()}}, "jobs": bridge.jobs,
            "mitigation": first.mitigation if first is not None else None}
    circuits = sum(len(u.plan.circuits) for u in bridge.units)
    return Estimate(label, blocks, float(e.max()), float(e.mean()), None, None, secs, circuits), info


def accuracy_with(model: Any, blocks: dict[str, list[torch.Tensor]] | None, x: torch.Tensor, y: torch.Tensor) -> float:
    layers = model.quicq_layers()
    for name, layer in layers.items():
        layer.set_block_source(None if blocks is None else [b.float() for b in blocks[name]])
    try:
        return accuracy(model, x, y)
    finally:
        for layer in layers.values():
            layer.set_block_source(None)
