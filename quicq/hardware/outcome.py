"""Measurement outcomes of one circuit over a batch of angle bindings, in quicq's qubit order.

Every backend returns one :class:`Outcome` per submitted circuit. It holds either exact
probabilities (``shots=None``, statevector/density-matrix mode) or the per-shot results, and
turns them into the statistics tomography needs: basis-state frequencies and parities
⟨∏_{i∈T} Z_i⟩ with their standard errors. Basis indices follow quicq (qubit 0 = most significant
bit); ``bits[..., q]`` is the value of qubit q. Every qubit ↔ index conversion goes through
:mod:`quicq.circuits.bitorder`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from quicq.circuits.bitorder import bits_to_index, qubit_mask

#: (..., n) 0/1 array (``bits[..., q]`` = qubit q) → basis indices; kept under its old name.
bits_to_indices = bits_to_index


def _masks(subsets: Sequence[Sequence[int]], n: int) -> np.ndarray:
    """Basis-index bit mask of each qubit subset."""
    out = np.zeros(len(subsets), dtype=np.int64)
    for m, T in enumerate(subsets):
        for q in T:
            if not 0 <= int(q) < n:
                raise ValueError(f"qubit {q} is out of range for {n} qubits")
            out[m] |= qubit_mask(int(q), n)
    return out


def _sign_table(n: int, subsets: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """(2^n, M) value ∏_{i∈T} Z_i (±1) of every basis state for each subset T.

    Tomography asks for the same subsets on every call: tables up to 2^20 entries (8 MB) are
    built once and kept (read-only); larger ones are rebuilt per call.
    """
    if (len(subsets) << n) <= 1 << 20:
        return _cached_sign_table(n, subsets)
    return _build_sign_table(n, subsets)


def _build_sign_table(n: int, subsets: tuple[tuple[int, ...], ...]) -> np.ndarray:
    masks = _masks(subsets, n)
    basis = np.arange(1 << n, dtype=np.int64)
    return 1.0 - 2.0 * _parity(basis[:, None] & masks[None, :])


@functools.lru_cache(maxsize=128)
def _cached_sign_table(n: int, subsets: tuple[tuple[int, ...], ...]) -> np.ndarray:
    signs = _build_sign_table(n, subsets)
    signs.setflags(write=False)
    return signs


def _parity(x: np.ndarray) -> np.ndarray:
    """Parity (0/1) of the set bits of each int64 entry."""
    x = x.copy()
    p = np.zeros(x.shape, dtype=np.int64)
    while np.any(x):
        p ^= x & 1
        x >>= 1
    return p


@dataclass(frozen=True)
class Outcome:
    """Results of one circuit at B angle bindings.

    Exactly one of ``probs`` / ``indices`` is set:

    * ``probs`` with ``shots=None``: (B, 2^n) exact outcome probabilities;
    * ``probs`` with ``shots`` set: (B, 2^n) *quasi-probabilities* estimated from that many
      shots (readout-mitigated by :mod:`quicq.hardware.mitigation`: entries may be slightly
      negative, rows sum to 1); statistics then carry shot-noise error bars;
    * ``indices``: (B, shots) measured basis index of every shot.

    ``physical_qubits``: the device qubit measured for each IR qubit (Qiskit backends), which
    readout calibrations are keyed by; ``None`` where the backend has no such notion.
    """

    n_qubits: int
    shots: int | None
    probs: np.ndarray | None = None
    indices: np.ndarray | None = None
    physical_qubits: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if (self.probs is None) == (self.indices is None):
            raise ValueError("an Outcome holds either exact probabilities or per-shot indices")
        if self.probs is not None:
            if self.probs.ndim != 2 or self.probs.shape[1] != 1 << self.n_qubits:
                raise ValueError(f"probs must have shape (B, {1 << self.n_qubits}), got {self.probs.shape}")
        else:
            if self.indices.ndim != 2 or self.indices.shape[1] != self.shots:
                raise ValueError(f"indices must have shape (B, {self.shots}), got {self.indices.shape}")

    @classmethod
    def from_bits(cls, bits: np.ndarray, physical_qubits: tuple[int, ...] | None = None) -> Outcome:
        """Build from a (B, shots, n) 0/1 array with ``bits[..., q]`` = qubit q."""
        bits = np.asarray(bits)
        if bits.ndim != 3:
            raise ValueError(f"bits must have shape (B, shots, n), got {bits.shape}")
        return cls(bits.shape[2], bits.shape[1], indices=bits_to_index(bits), physical_qubits=physical_qubits)

    @property
    def exact(self) -> bool:
        """True for exact probabilities (no shot noise)."""
        return self.probs is not None and self.shots is None

    @property
    def quasi(self) -> bool:
        """True for quasi-probabilities estimated from shots (readout-mitigated)."""
        return self.probs is not None and self.shots is not None

    @property
    def batch(self) -> int:
        """Number of angle bindings B."""
        return (self.probs if self.probs is not None else self.indices).shape[0]

    @property
    def bits(self) -> np.ndarray:
        """(B, shots, n) uint8 per-shot bits, ``bits[..., q]`` = qubit q (shot mode only)."""
        if self.indices is None:
            raise ValueError("exact outcomes have no per-shot bits")
        masks = np.array([qubit_mask(q, self.n_qubits) for q in range(self.n_qubits)], dtype=np.int64)
        return ((self.indices[..., None] & masks) != 0).astype(np.uint8)

    def counts(self) -> np.ndarray:
        """(B, 2^n) shot counts per basis index (shot mode only)."""
        if self.indices is None:
            raise ValueError("probability outcomes have no counts; use probabilities()")
        dim = 1 << self.n_qubits
        flat = self.indices + dim * np.arange(self.batch, dtype=np.int64)[:, None]
        return np.bincount(flat.ravel(), minlength=dim * self.batch).reshape(self.batch, dim)

    def probabilities(self, basis: Sequence[int] | None = None) -> np.ndarray:
        """(B, len(basis)) outcome probabilities (exact) or frequencies counts/shots."""
        full = self.probs if self.probs is not None else self.counts() / float(self.shots)
        return full if basis is None else full[:, np.asarray(list(basis), dtype=np.int64)]

    def parities(self, subsets: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """⟨∏_{i∈T} Z_i⟩ for each qubit subset T: (mean, standard error), each (B, len(subsets)).

        In shot mode the standard error is √((1 − mean²)/shots) (a ±1 variable); it is 0 for
        exact outcomes.
        """
        key = tuple(tuple(int(q) for q in T) for T in subsets)
        if self.probs is not None or (1 << self.n_qubits) <= self.shots:
            # per basis state: probabilities / frequencies (B, 2^n) @ signs (2^n, M)
            mean = self.probabilities() @ _sign_table(self.n_qubits, key)
            if self.shots is None:
                return mean, np.zeros_like(mean)
        else:  # fewer shots than basis states: per shot
            masks = _masks(key, self.n_qubits)
            mean = np.stack([(1.0 - 2.0 * _parity(self.indices & m)).mean(-1) for m in masks], -1)
        return mean, np.sqrt(np.clip(1.0 - mean**2, 0.0, None) / self.shots)

    def z_expectations(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-qubit ⟨Z_q⟩ and standard errors, each (B, n)."""
        return self.parities([(q,) for q in range(self.n_qubits)])
