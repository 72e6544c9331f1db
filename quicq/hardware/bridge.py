"""A per-layer adapter ↔ hardware bridge for QuIC layers: :class:`HardwareBlockSource`.

It costs one job per adapted layer per step direction. Training (``quicq train``, the demo)
uses :class:`~quicq.hardware.model_bridge.ModelHardwareBridge` instead — one job per step
direction for the whole model, Quantum-PEFT too; this class stays for code that sets a source
on a single layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from quicq.training.rng import find_generators

__all__ = ["HardwareBlockSource"]


class HardwareBlockSource:
    """A QuIC :data:`~quicq.adapters.layer.BlockSource` whose blocks come from a backend.

    One :class:`~quicq.hardware.hybrid.HardwareBlock` per distinct block circuit (layers with the
    same circuit share it): forward = one block estimate per layer call, backward = ``gradient``
    (parameter shift / SPSA / exact surrogate), every shifted binding of a backward pass in one
    backend call. :meth:`prepare` builds the bridges for a model up front, so their random
    generators exist before a checkpoint is restored (see :meth:`generators`).

    Args:
        backend: a quicq backend.
        gradient: ``"parameter_shift"``, ``"spsa"`` or ``"surrogate"``.
        magnitudes, postselect: tomography options (:class:`~quicq.hardware.tomography.BlockTomography`).
        spsa_eps: SPSA perturbation size.
        seed: seeds the SPSA directions (bridge i gets ``seed + i``).
        shots: shots per circuit (default: the backend's).
    """

    def __init__(self, backend: Any, gradient: str = "parameter_shift", *, magnitudes: bool = True,
                 postselect: bool = True, spsa_eps: float = 0.1, seed: int | None = None,
                 shots: Any = None) -> None:
        from quicq.hardware.backends import DEFAULT_SHOTS
        from quicq.hardware.hybrid import GRADIENTS

        if gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
        self.backend = backend
        self.gradient = gradient
        self.magnitudes = magnitudes
        self.postselect = postselect
        self.spsa_eps = spsa_eps
        self.seed = seed
        self.shots = DEFAULT_SHOTS if shots is None else shots
        self._blocks: dict[tuple[Any, tuple[int, ...]], Any] = {}
        self.calls = 0

    def bridge(self, circuit: Any, orders: Iterable[int]) -> Any:
        """The :class:`~quicq.hardware.hybrid.HardwareBlock` serving ``circuit`` at ``orders``."""
        key = (circuit, tuple(sorted(int(k) for k in orders)))
        hb = self._blocks.get(key)
        if hb is None:
            from quicq.hardware.hybrid import HardwareBlock
            from quicq.hardware.tomography import BlockTomography

            plan = BlockTomography(circuit, key[1], magnitudes=self.magnitudes, postselect=self.postselect)
            seed = None if self.seed is None else self.seed + len(self._blocks)
            hb = HardwareBlock(None, self.backend, tomography=plan, gradient=self.gradient, shots=self.shots,
                               spsa_eps=self.spsa_eps, seed=seed)
            self._blocks[key] = hb
        return hb

    def prepare(self, model: Any) -> HardwareBlockSource:
        """Build the bridges of every QuIC layer of ``model`` (a QuicqModel) now, in module order."""
        for layer in model.quicq_layers().values():
            for a in layer.adapter_names():
                self.bridge(layer.circuit(a), layer.quic_spec[a].orders)
        return self

    def generators(self) -> dict[str, np.random.Generator]:
        """Named random generators to checkpoint: the backend's sampler and each bridge's SPSA stream."""
        out = find_generators(self.backend, prefix="backend")
        for i, hb in enumerate(self._blocks.values()):
            g = hb.rng
            if isinstance(g, np.random.Generator):
                out[f"bridge{i}.rng"] = g
        return out

    @property
    def last_results(self) -> list[Any]:
        """The latest tomography result of each bridge (error bars, kept fractions)."""
        return [hb.last_result for hb in self._blocks.values()]

    def __call__(self, circuit: Any, angles: torch.Tensor, orders: Iterable[int]) -> list[torch.Tensor]:
        self.calls += 1
        return list(self.bridge(circuit, orders)(angles))
