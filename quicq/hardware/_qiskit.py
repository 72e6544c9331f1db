"""Qiskit plumbing shared by the Aer and IBM Runtime backends.

* Compile once per circuit *structure*: :class:`CompileCache` maps an IR circuit (hashable,
  angles excluded) to its transpiled, parametrised Qiskit circuit plus the slot index of each
  remaining parameter; later calls only bind angles.
* Build sampler PUBs ``(circuit, values (B, P'))`` and read ``BitArray`` results back into
  quicq's qubit order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from quicq._optional import require

require("qiskit", "qiskit")  # first: without the extra, name the pip line
from qiskit import QuantumCircuit

from quicq.circuits.ir import Circuit
from quicq.circuits.qiskit_io import to_qiskit


@dataclass(frozen=True)
class Compiled:
    """A transpiled circuit and, per remaining parameter (Qiskit order), its IR slot."""

    circuit: QuantumCircuit
    slots: tuple[int, ...]
    #: physical qubit of each IR qubit at the end of the circuit (for save instructions)
    final_qubits: tuple[int, ...]

    def values(self, angles: np.ndarray) -> np.ndarray:
        """(B, P) IR bindings → (B, P') values in the order of ``circuit.parameters``."""
        return angles[:, list(self.slots)]


class CompileCache:
    """LRU cache of compiled circuits keyed by (IR circuit, variant).

    ``transpile(qc)`` is the backend-specific transpiler (fixed seed and optimisation level),
    so a given structure is transpiled exactly once per backend.
    """

    def __init__(self, transpile: Callable[[QuantumCircuit], QuantumCircuit], maxsize: int = 512) -> None:
        self._transpile = transpile
        self._maxsize = maxsize
        self._store: OrderedDict[tuple[Circuit, str], Compiled] = OrderedDict()
        self.misses = 0

    def get(self, circuit: Circuit, variant: str) -> Compiled:
        """Compiled form of ``circuit``; variant "measure" (measure_all) or "probs" (no measurement)."""
        key = (circuit, variant)
        hit = self._store.get(key)
        if hit is not None:
            self._store.move_to_end(key)
            return hit
        self.misses += 1
        qc = to_qiskit(circuit)
        if variant == "measure":
            qc.measure_all()
        elif variant != "probs":
            raise ValueError(f"unknown compile variant {variant!r}")
        tqc = self._transpile(qc)
        slots = []
        for p in tqc.parameters:
            index = getattr(p, "index", None)
            if index is None or getattr(p.vector, "name", None) != "θ":
                raise RuntimeError(f"transpiled circuit has a foreign parameter {p}")
            slots.append(int(index))
        n = circuit.n_qubits
        if tqc.layout is not None:
            final = tuple(int(q) for q in tqc.layout.final_index_layout()[:n])
        else:
            final = tuple(range(n))
        compiled = Compiled(tqc, tuple(slots), final)
        self._store[key] = compiled
        if len(self._store) > self._maxsize:
            self._store.popitem(last=False)
        return compiled

    def __len__(self) -> int:
        return len(self._store)


def sampler_pubs(compiled: list[Compiled], angles: list[np.ndarray]) -> tuple[list[tuple], list[int]]:
    """PUBs for a sampler, and for each task how many PUBs it used (1, or B when unparametrised).

    A circuit with no parameters left is submitted once per binding: Aer's SamplerV2 mis-samples
    a parameter-free circuit given a (B, 0) value array (every binding after the first comes
    back all-zero; checked with qiskit-aer 0.18).
    """
    pubs: list[tuple] = []
    used: list[int] = []
    for comp, th in zip(compiled, angles):
        if comp.slots:
            pubs.append((comp.circuit, comp.values(th)))
            used.append(1)
        else:
            pubs.extend((comp.circuit,) for _ in range(th.shape[0]))
            used.append(th.shape[0])
    return pubs, used


def bitarray_bits(bit_array: Any, n: int) -> np.ndarray:
    """A sampler ``BitArray`` of shape (B,) or () → (B, shots, n) bits, ``[..., q]`` = qubit q.

    ``BitArray.array`` packs each shot big-endian with classical bit 0 as the lowest bit of
    the last byte; ``measure_all`` maps qubit q to classical bit q.
    """
    packed = np.asarray(bit_array.array)
    if packed.ndim == 2:  # shape () pub: (shots, bytes)
        packed = packed[None]
    unpacked = np.unpackbits(packed, axis=-1, bitorder="big")
    return unpacked[..., -n:][..., ::-1]


def pub_bits(result: Any, used: list[int], n_qubits: list[int]) -> list[np.ndarray]:
    """Per task (B, shots, n) bits from a sampler ``PrimitiveResult`` built by :func:`sampler_pubs`."""
    out = []
    pos = 0
    for count, n in zip(used, n_qubits):
        parts = [bitarray_bits(result[pos + i].join_data(), n) for i in range(count)]
        out.append(parts[0] if count == 1 else np.concatenate(parts, axis=0))
        pos += count
    return out


def little_to_quicq(n: int) -> np.ndarray:
    """Index map: ``probs_quicq = probs_qiskit[perm]`` (Qiskit: qubit 0 least significant)."""
    idx = np.arange(1 << n, dtype=np.int64)
    rev = np.zeros_like(idx)
    for q in range(n):
        rev |= ((idx >> (n - 1 - q)) & 1) << q
    return rev
