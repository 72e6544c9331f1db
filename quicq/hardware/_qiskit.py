"""Qiskit plumbing shared by the Aer and IBM Runtime backends.

* Compile once per circuit *structure*: :class:`CompileCache` maps an IR circuit (hashable,
  angles excluded) to its transpiled, parametrised Qiskit circuit plus the slot index of each
  remaining parameter; later calls only bind angles.
* Build sampler PUBs ``(circuit, values (B, P'))`` and read ``BitArray`` results back into
  quicq's qubit order.
"""

from __future__ import annotations

import functools
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from quicq._optional import require

require("qiskit", "qiskit")  # first: without the extra, name the pip line
from qiskit import QuantumCircuit

from quicq.circuits.bitorder import bits_to_index, qiskit_permutation
from quicq.circuits.ir import Circuit
from quicq.circuits.qiskit_io import to_qiskit


@dataclass(frozen=True)
class Compiled:
    """A transpiled circuit and, per remaining parameter (Qiskit order), its IR slot."""

    circuit: QuantumCircuit
    slots: tuple[int, ...]
    #: physical qubit of each IR qubit at the end of the circuit (for save instructions)
    final_qubits: tuple[int, ...]
    #: "measure" variant: the physical qubit measured into classical bit q (= IR qubit q), from
    #: ``mthree.utils.final_measurement_mapping`` — what readout calibrations are keyed by
    measured_qubits: tuple[int, ...] | None = None

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
        measured = measurement_mapping(tqc, n) if variant == "measure" else None
        compiled = Compiled(tqc, tuple(slots), final, measured)
        self._store[key] = compiled
        if len(self._store) > self._maxsize:
            self._store.popitem(last=False)
        return compiled

    def __len__(self) -> int:
        return len(self._store)


def check_layout(layout: Any, n_device: int | None, where: str) -> tuple[int, ...] | None:
    """Validate an ``initial_layout``: distinct physical qubits (ints) of the device."""
    if layout is None:
        return None
    try:
        qubits = tuple(int(q) for q in layout)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: initial_layout must be a sequence of physical qubit ints, got {layout!r}") from None
    if not qubits or len(set(qubits)) != len(qubits):
        raise ValueError(f"{where}: initial_layout must list distinct physical qubits, got {qubits}")
    if any(q < 0 or (n_device is not None and q >= n_device) for q in qubits):
        raise ValueError(f"{where}: initial_layout {qubits} is outside the device's qubits 0..{n_device}")
    return qubits


def layout_transpiler(make_pm: Callable[[Any], Any], layout: tuple[int, ...] | None
                      ) -> Callable[[QuantumCircuit], QuantumCircuit]:
    """``transpile(qc)`` with a preset pass manager per circuit width.

    With an ``initial_layout`` an n-qubit circuit is placed on its first n physical qubits (one
    pass manager per n, built once); without, one pass manager serves every circuit.
    """
    if layout is None:
        return make_pm(None).run
    pms: dict[int, Any] = {}

    def run(qc: QuantumCircuit) -> QuantumCircuit:
        n = qc.num_qubits
        if n > len(layout):
            raise ValueError(f"initial_layout {layout} has {len(layout)} qubits; the circuit needs {n}")
        if n not in pms:
            pms[n] = make_pm(list(layout[:n]))
        return pms[n].run(qc)

    return run


def measurement_mapping(tqc: QuantumCircuit, n: int) -> tuple[int, ...]:
    """Physical qubit measured into each classical bit 0..n−1 of a transpiled circuit.

    mthree's ``final_measurement_mapping`` when mthree is installed (the mapping its
    calibrations use); otherwise read from the final measurements directly.
    """
    try:
        from mthree.utils import final_measurement_mapping
    except ImportError:
        final_measurement_mapping = None
    if final_measurement_mapping is not None:
        with warnings.catch_warnings():
            # mthree 3.0 unpacks CircuitInstruction as a tuple (deprecated since Qiskit 1.2): a
            # warning about mthree's code, not the caller's, and nothing the caller can fix.
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*CircuitInstruction.*")
            mapping = final_measurement_mapping(tqc)
    else:
        mapping = {}
        for inst in tqc.data:
            if inst.operation.name == "measure":
                mapping[tqc.find_bit(inst.clbits[0]).index] = tqc.find_bit(inst.qubits[0]).index
    try:
        return tuple(int(mapping[c]) for c in range(n))
    except KeyError:
        raise RuntimeError(f"transpiled circuit does not measure every classical bit 0..{n - 1}") from None


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


#: Widest register whose Qiskit → quicq index map is a lookup table (2^20 int64 = 8 MB).
_LUT_MAX_QUBITS = 20


@functools.lru_cache(maxsize=32)
def quicq_index_table(n: int) -> np.ndarray:
    """quicq basis index of every Qiskit (little-endian) index of n qubits, read-only.

    :func:`~quicq.circuits.bitorder.qiskit_permutation` (an involution, so it also gives
    ``probs_quicq = probs_qiskit[table]``), computed once per n.
    """
    table = qiskit_permutation(n)
    table.setflags(write=False)
    return table


def little_endian_to_quicq(little: np.ndarray, n: int) -> np.ndarray:
    """Qiskit basis indices (qubit 0 = least significant bit) → quicq's (qubit 0 = MSB)."""
    if n <= _LUT_MAX_QUBITS:
        return quicq_index_table(n)[little]
    return bits_to_index((little[..., None] >> np.arange(n, dtype=np.int64)) & 1)


def packed_to_little(packed: np.ndarray, n: int) -> np.ndarray:
    """``BitArray.array`` bytes (..., n_bytes) → integers of the low ``n`` classical bits.

    ``BitArray.array`` packs each shot big-endian: classical bit 0 is the lowest bit of the
    last byte, so the bytes read as one big-endian integer are Qiskit's little-endian index.
    """
    n_bytes = (n + 7) // 8
    little = packed[..., -1].astype(np.int64)
    for j in range(2, n_bytes + 1):
        little |= packed[..., -j].astype(np.int64) << (8 * (j - 1))
    if n % 8:
        little &= (1 << n) - 1
    return little


def bitarray_indices(bit_array: Any, n: int) -> np.ndarray:
    """A sampler ``BitArray`` of shape (B,) or () → (B, shots) quicq basis indices.

    ``measure_all`` maps IR qubit q to classical bit q, so each shot's packed integer is the
    Qiskit index of the measured state; one table lookup gives quicq's index. No unpacking to
    bits (the cost of a (B, shots, n) bit array is most of the read-back time at n ≤ 8).
    """
    packed = np.asarray(bit_array.array)
    if packed.ndim == 2:  # shape () pub: (shots, bytes)
        packed = packed[None]
    return little_endian_to_quicq(packed_to_little(packed, n), n)


def unpacked_clbits(bit_array: Any) -> np.ndarray:
    """A sampler ``BitArray`` of shape (B,) or () → (B, shots, num_bits) 0/1, column c = classical bit c."""
    packed = np.asarray(bit_array.array)
    if packed.ndim == 2:
        packed = packed[None]
    # bytes reversed: little-endian, classical bit c is bit c % 8 of byte c // 8
    return np.unpackbits(packed[..., ::-1], axis=-1, bitorder="little")[..., : bit_array.num_bits]


def register_data(pub_result: Any) -> Any:
    """The ``BitArray`` of a PUB result's one classical register (``join_data`` if there are more).

    ``join_data`` re-packs the bits even for a single register (≈ 1 ms per PUB); quicq's
    circuits measure into one register, so this is nearly always a plain lookup.
    """
    data = pub_result.data
    names = list(data)
    return data[names[0]] if len(names) == 1 else pub_result.join_data()


def pub_indices(result: Any, used: list[int], n_qubits: list[int]) -> list[np.ndarray]:
    """Per task (B, shots) quicq basis indices from a ``PrimitiveResult`` built by :func:`sampler_pubs`."""
    out = []
    pos = 0
    for count, n in zip(used, n_qubits):
        parts = [bitarray_indices(register_data(result[pos + i]), n) for i in range(count)]
        out.append(parts[0] if count == 1 else np.concatenate(parts, axis=0))
        pos += count
    return out
