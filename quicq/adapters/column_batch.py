"""One forward's Pauli columns for every Quantum-PEFT layer of a model, in one call per circuit.

:func:`quicq.engine.pauli_columns` is dispatch-bound at adapter sizes: the U and V circuits of
MiniLM's 12 q/v layers (24 circuits, N = 384, K = 8) take 21.8 ms forward + backward as 24 calls
and 5.5 ms as one batched call (one thread). So while a :class:`~quicq.adapters.QuicqModel`
runs its forward, the first Quantum-PEFT layer that needs its columns computes those of every
layer and adapter with the same circuit, rank, dtype and device in one call; the others take
their slice. Autograd sees one batched node, so the backward is batched too.

Outside a model forward (a layer called on its own, a reentrant activation-checkpoint
recomputation, an adapter with a column source) each layer computes its own columns as before:
the batch is an optimisation, never a change of results (tested to match exactly).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from quicq.adapters.quantum_peft import QuantumPEFTLayer

__all__ = ["ColumnBatch", "column_batch"]

_Key = tuple[int, str]  # (id(layer), adapter name)


class ColumnBatch:
    """Lazily computed (U, V) columns of the active adapters of ``layers``."""

    def __init__(self, layers: list[QuantumPEFTLayer]) -> None:
        self.layers = layers
        self._columns: dict[_Key, tuple[torch.Tensor, torch.Tensor]] | None = None

    def lookup(self, layer: QuantumPEFTLayer, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(U, V) of ``layer``'s adapter ``name``, or None if it is not part of the batch."""
        if self._columns is None:
            self._columns = self._compute()
        return self._columns.get((id(layer), name))

    def _compute(self) -> dict[_Key, tuple[torch.Tensor, torch.Tensor]]:
        from quicq.engine import pauli_columns

        groups: dict[tuple, list[tuple[_Key, str, torch.Tensor]]] = {}
        for layer in self.layers:
            for name in layer._chain():
                if name in layer.qpeft_block_source or name in layer.merged_adapters:
                    continue
                spec = layer.qpeft_spec[name]
                for which, circuit, theta in (("u", spec.circuit_u, layer.qpeft_theta_u[name]),
                                              ("v", spec.circuit_v, layer.qpeft_theta_v[name])):
                    key = (circuit, spec.rank, theta.dtype, theta.device)
                    groups.setdefault(key, []).append(((id(layer), name), which, theta))
        found: dict[_Key, dict[str, torch.Tensor]] = {}
        for (circuit, rank, _, _), members in groups.items():
            cols = pauli_columns(circuit, torch.stack([t for _, _, t in members]), rank)
            for (key, which, _), c in zip(members, cols.unbind(0)):
                found.setdefault(key, {})[which] = c
        return {k: (d["u"], d["v"]) for k, d in found.items()}


@contextmanager
def column_batch(model: nn.Module) -> Iterator[None]:
    """Within this block, the Quantum-PEFT layers of ``model`` share one :class:`ColumnBatch`."""
    from quicq.adapters.quantum_peft import QuantumPEFTLayer

    layers = [m for m in model.modules() if isinstance(m, QuantumPEFTLayer)]
    if not layers:
        yield
        return
    batch = ColumnBatch(layers)
    previous = [layer.column_batch for layer in layers]
    for layer in layers:
        layer.column_batch = batch
    try:
        yield
    finally:
        for layer, prev in zip(layers, previous):
            layer.column_batch = prev
