"""A Pauli (RY + CZ) circuit as a flat program of row operations, for the compiled Givens kernels.

In the logical basis (:func:`quicq.circuits.pauli.pauli_structure`: an m-level register and p
qubits, position 0 the most significant digit of the row index) every gate of the circuit is
a set of row operations on the N×K matrix of columns:

* an RY(θ) on a qubit rotates each pair of rows that differ only in that qubit's digit (0 ↦ a,
  1 ↦ b) by the half angle: a ← c·a − s·b, b ← s·a + c·b with (c, s) = (cos θ/2, sin θ/2);
* the register's "RY" is its word of such rotations between adjacent levels (lv ↦ a, lv+1 ↦ b);
* the CZs of a sub-layer multiply rows by ±1: one sign flip per row whose net sign is −1.

That is exactly the program :mod:`._givens_jit` runs (kind 0 = rotation of rows (a, b) by
``th[slot]``, kind 1 = sign flip of row a), with ``th = θ/2`` and ∂L/∂θ = ½·∂L/∂th. Why: the
Kronecker/GEMM engine (:mod:`._pauli_gemm`) pays ~40 µs of dispatch per group and stage, so at
adapter sizes (N ≤ ~4096, K ≤ 64) it is bound by calls, not arithmetic; the compiled program is
one call per forward and one per backward, whatever N and L.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from quicq.circuits.ir import Circuit, CircuitError
from quicq.circuits.pauli import CZ, PauliStructure, pauli, pauli_structure

__all__ = ["circuit_program", "cz_diagonal", "pauli_program", "structure_of"]


def cz_diagonal(czs: tuple[CZ, ...], dims: tuple[int, ...]) -> np.ndarray:
    """(−1)^{Σ parity_i·parity_j} over the logical index (register parity = level mod 2), shaped
    ``dims``."""
    total = np.zeros([1] * len(dims), dtype=np.int64)
    for cz in czs:
        shape_i, shape_j = [1] * len(dims), [1] * len(dims)
        shape_i[cz.i], shape_j[cz.j] = dims[cz.i], dims[cz.j]
        total = total + (np.arange(dims[cz.i]) % 2).reshape(shape_i) * (np.arange(dims[cz.j]) % 2).reshape(shape_j)
    return (1 - 2 * (np.broadcast_to(total, dims) % 2)).astype(np.float64)


@lru_cache(maxsize=128)
def pauli_program(s: PauliStructure) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(kind, a, b, slot, length) int64 arrays of the circuit's row operations, in circuit order:
    per stage its CZ sign flips, then its rotations (distinct positions commute; a register's
    word in its own order), consecutive rows merged into runs."""
    idx = np.arange(s.N).reshape(s.dims)
    kind: list[np.ndarray] = []
    rows_a: list[np.ndarray] = []
    rows_b: list[np.ndarray] = []
    slots: list[np.ndarray] = []

    def emit(k: int, a: np.ndarray, b: np.ndarray, sl: int) -> None:
        kind.append(np.full(a.size, k, dtype=np.int64))
        rows_a.append(a.astype(np.int64))
        rows_b.append(b.astype(np.int64))
        slots.append(np.full(a.size, sl, dtype=np.int64))

    for st in s.stages:
        if st.czs:
            flips = np.flatnonzero(cz_diagonal(st.czs, s.dims).reshape(-1) < 0)
            emit(1, flips, np.zeros_like(flips), 0)
        for r in st.rotations:
            for lv, sl in zip(r.levels, r.slots):
                lo = np.take(idx, lv, axis=r.position).reshape(-1)
                hi = np.take(idx, lv + 1, axis=r.position).reshape(-1)
                emit(0, lo, hi, sl)
    return _runs(*(np.concatenate(x) for x in (kind, rows_a, rows_b, slots)))


def _runs(kind: np.ndarray, a: np.ndarray, b: np.ndarray, slot: np.ndarray) -> tuple[np.ndarray, ...]:
    """Merge consecutive operations on consecutive rows with the same kind and angle into runs
    (kind, a, b, slot, length): operation i + 1 continues a run when a and b both advance by one
    and the run would not reach into its partner run. A qubit rotation's row pairs come in blocks
    of 2^q consecutive rows, so the kernels get long contiguous loops instead of K-float ones."""
    if kind.size == 0:
        return tuple(np.zeros(0, dtype=np.int64) for _ in range(5))
    cont = (kind[1:] == kind[:-1]) & (slot[1:] == slot[:-1]) & (a[1:] == a[:-1] + 1)
    cont &= (kind[1:] == 1) | (b[1:] == b[:-1] + 1)
    starts = np.flatnonzero(np.concatenate(([True], ~cont)))
    length = np.diff(np.append(starts, kind.size))
    # a run of rotations must not overlap its partner: split where it would
    out_k, out_a, out_b, out_s, out_l = [], [], [], [], []
    for st, ln in zip(starts.tolist(), length.tolist()):
        k, ra, rb, sl = int(kind[st]), int(a[st]), int(b[st]), int(slot[st])
        step = ln if k == 1 else max(1, min(ln, abs(rb - ra)))
        for off in range(0, ln, step):
            out_k.append(k), out_a.append(ra + off), out_b.append(rb + off if k == 0 else 0)
            out_s.append(sl), out_l.append(min(step, ln - off))
    return tuple(np.ascontiguousarray(x, dtype=np.int64) for x in (out_k, out_a, out_b, out_s, out_l))


@lru_cache(maxsize=256)
def structure_of(circuit: Circuit) -> PauliStructure:
    """The logical structure of a circuit built by :func:`quicq.circuits.pauli.pauli`; refuses any
    other circuit (or one modified after it was built)."""
    meta = circuit.meta
    if meta.get("layout") != "pauli":
        raise CircuitError("pauli_columns needs a circuit built by quicq.circuits.pauli(N, L)")
    s = pauli_structure(int(meta["N"]), int(meta["n_layers"]), meta.get("register", "chain"))
    if circuit.gates != pauli(s.N, s.n_layers, s.register).gates:
        raise CircuitError("pauli_columns: the circuit's gates differ from quicq.circuits.pauli(N, L); "
                           "it was modified after it was built")
    return s


@lru_cache(maxsize=256)
def circuit_program(circuit: Circuit) -> tuple[np.ndarray, ...]:
    """The circuit's compiled row program, cached by circuit (whose hash is stored; the
    structure's nested dataclasses would be re-hashed on every call)."""
    return pauli_program(structure_of(circuit))
