"""One model forward's adapter matrices, computed together: one engine call per circuit.

The engines are dispatch-bound at adapter sizes. MiniLM's 12 q/v layers: 24 Pauli circuits
(N = 384, K = 8) take 21.8 ms forward + backward as 24 calls and 5.5 ms as one; 12 pyramid
blocks (n = 27) 42 ms as 12 calls and 8.7 ms as one (one thread). So while a
:class:`~quicq.adapters.QuicqModel` runs its forward, the first adapted layer that needs its
matrices computes those of every layer and adapter of the same kind — QuIC blocks of one
parameterization object, or Quantum-PEFT columns of one circuit and rank — with the same dtype
and device in one call; the others take their slice. Autograd sees one batched node, so the
backward is batched too.

Outside a model forward (a layer called on its own, a reentrant activation-checkpoint
recomputation) and for adapters whose blocks come from a block source (hardware), each layer
computes its own as before: the batch is an optimisation, never a change of results (tested).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

__all__ = ["ForwardBatch", "forward_batch"]

_Key = tuple[int, str]  # (id(layer), adapter name)


class ForwardBatch:
    """Lazily computed QuIC block matrices and Quantum-PEFT columns of a model's active adapters."""

    def __init__(self, quic: list[Any], qpeft: list[Any]) -> None:
        self.quic, self.qpeft = quic, qpeft
        self._matrices: dict[_Key, torch.Tensor] | None = None
        self._columns: dict[_Key, tuple[torch.Tensor, torch.Tensor]] | None = None

    @staticmethod
    def _live(layer: Any, sources: dict) -> list[str]:
        return [a for a in layer._chain() if a not in sources and a not in layer.merged_adapters]

    def matrix(self, layer: Any, name: str) -> torch.Tensor | None:
        """A = A(θ)·A₀ᵀ (N', n, n) of a QuIC layer's adapter, or None if not in the batch."""
        if self._matrices is None:
            groups: dict[tuple, list[tuple[_Key, torch.Tensor]]] = {}
            for lay in self.quic:
                for a in self._live(lay, lay.quic_block_source):
                    p = lay.quic_params[a]
                    groups.setdefault((lay.quic_spec[a].param, p.dtype, p.device), []).append(((id(lay), a), p))
            self._matrices = {}
            for (param, _, _), members in groups.items():
                A = param.matrix(torch.cat([p for _, p in members]))
                for (key, _), block in zip(members, A.split([p.shape[0] for _, p in members])):
                    self._matrices[key] = block
        return self._matrices.get((id(layer), name))

    def columns(self, layer: Any, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(U, V) of a Quantum-PEFT layer's adapter, or None if it is not part of the batch."""
        if self._columns is None:
            from quicq.engine import pauli_columns

            groups: dict[tuple, list[tuple[_Key, str, torch.Tensor]]] = {}
            for lay in self.qpeft:
                for a in self._live(lay, lay.qpeft_block_source):
                    spec = lay.qpeft_spec[a]
                    for which, circuit, theta in (("u", spec.circuit_u, lay.qpeft_theta_u[a]),
                                                  ("v", spec.circuit_v, lay.qpeft_theta_v[a])):
                        key = (circuit, spec.rank, theta.dtype, theta.device)
                        groups.setdefault(key, []).append(((id(lay), a), which, theta))
            found: dict[_Key, dict[str, torch.Tensor]] = {}
            for (circuit, rank, _, _), members in groups.items():
                cols = pauli_columns(circuit, torch.stack([t for _, _, t in members]), rank)
                for (key, which, _), c in zip(members, cols.unbind(0)):
                    found.setdefault(key, {})[which] = c
            self._columns = {k: (d["u"], d["v"]) for k, d in found.items()}
        return self._columns.get((id(layer), name))


@contextmanager
def forward_batch(model: nn.Module) -> Iterator[None]:
    """Within this block, the adapted layers of ``model`` share one :class:`ForwardBatch`."""
    from quicq.adapters.quantum_peft import QuantumPEFTLayer
    from quicq.adapters.quic import QuICLayer

    layers = [m for m in model.modules() if isinstance(m, (QuICLayer, QuantumPEFTLayer))]
    if not layers:
        yield
        return
    batch = ForwardBatch([m for m in layers if isinstance(m, QuICLayer)],
                         [m for m in layers if isinstance(m, QuantumPEFTLayer)])
    previous = [layer.forward_batch for layer in layers]
    for layer in layers:
        layer.forward_batch = batch
    try:
        yield
    finally:
        for layer, prev in zip(layers, previous):
            layer.forward_batch = prev
