"""Bit order: the one place that converts between qubits and basis-state indices.

quicq numbers qubits 0..n−1 and writes qubit 0 first, so qubit 0 is the *most* significant bit
of a basis index (PennyLane's order; the state with only qubit a set is e_a). Qiskit is
little-endian: its qubit 0 is the *least* significant bit of statevector and counts indices.
Every conversion between the two, and between indices and bit strings, goes through here.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = [
    "basis_index", "bits_of", "bits_to_index", "control_state_bits", "control_state_int", "qiskit_axis",
    "qiskit_index", "qiskit_permutation", "qubit_mask", "set_qubits",
]


def qubit_mask(q: int, n_qubits: int) -> int:
    """The bit of qubit ``q`` in a basis index of ``n_qubits`` qubits (qubit 0 = MSB)."""
    return 1 << (n_qubits - 1 - q)


def basis_index(set_qubits: Iterable[int], n_qubits: int) -> int:
    """Basis index of the state with exactly ``set_qubits`` set (qubit 0 = MSB)."""
    return sum(qubit_mask(q, n_qubits) for q in set_qubits)


def bits_of(index: int, n_qubits: int) -> tuple[int, ...]:
    """The value (0/1) of each qubit 0..n−1 in basis state ``index``."""
    return tuple((index >> (n_qubits - 1 - q)) & 1 for q in range(n_qubits))


def set_qubits(index: int, n_qubits: int) -> tuple[int, ...]:
    """The qubits that are set in basis state ``index``, in increasing order."""
    return tuple(q for q, b in enumerate(bits_of(index, n_qubits)) if b)


def bits_to_index(bits: np.ndarray) -> np.ndarray:
    """Basis indices of rows of qubit values, shape (..., n) → (...); column q is qubit q."""
    bits = np.asarray(bits)
    n = bits.shape[-1]
    weights = np.left_shift(1, np.arange(n - 1, -1, -1, dtype=np.int64))
    return (bits.astype(np.int64) * weights).sum(-1)


def qiskit_index(index: int, n_qubits: int) -> int:
    """quicq basis index → Qiskit's (little-endian) index of the same state; an involution."""
    out = 0
    for q in range(n_qubits):
        out |= ((index >> (n_qubits - 1 - q)) & 1) << q
    return out


def qiskit_permutation(n_qubits: int) -> np.ndarray:
    """Index map ``perm`` with ``probs_quicq = probs_qiskit[perm]`` (also its own inverse)."""
    idx = np.arange(1 << n_qubits, dtype=np.int64)
    rev = np.zeros_like(idx)
    for q in range(n_qubits):
        rev |= ((idx >> (n_qubits - 1 - q)) & 1) << q
    return rev


def qiskit_axis(q: int, n_qubits: int) -> int:
    """Axis of qubit ``q`` in a Qiskit-ordered state reshaped to ``(2,) * n_qubits`` (qubit 0 is last)."""
    return n_qubits - 1 - q


def control_state_int(bits: Iterable[int]) -> int:
    """Qiskit's integer control state of per-control values ``bits`` (control i at bit i, little-endian)."""
    return sum(int(v) << i for i, v in enumerate(bits))


def control_state_bits(value: int, n_controls: int) -> tuple[int, ...]:
    """Per-control values of Qiskit's integer control state ``value``; inverse of :func:`control_state_int`."""
    return tuple((int(value) >> i) & 1 for i in range(n_controls))
