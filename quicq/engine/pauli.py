"""Columns of Pauli (RY + CZ) circuits: the orthonormal factors of Quantum-PEFT (docs/design.md#adapters)."""

from __future__ import annotations

import torch

from quicq.circuits.ir import Circuit, CircuitError
from quicq.circuits.pauli import code_indices
from quicq.engine.statevector import statevector_block


def pauli_columns(circuit: Circuit, angles, K: int, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """First K columns of Q(θ) ∈ SO(N) for a circuit from :func:`quicq.circuits.pauli.pauli`.

    Returns a (..., N, K) tensor with orthonormal columns. Rows and columns are logical
    indices; for N not a power of two the circuit's register is Gray-coded and only code
    words are read (the circuit never leaves the code space).
    """
    if circuit.meta.get("layout") != "pauli":
        raise CircuitError("pauli_columns needs a circuit built by quicq.circuits.pauli(N, L)")
    N = int(circuit.meta["N"])
    if not isinstance(K, int) or not 1 <= K <= N:
        raise CircuitError(f"rank K must be an integer in [1, {N}] for N={N}, got {K!r}")
    code = code_indices(N)
    return statevector_block(circuit, angles, code[:K], code, dtype=dtype)
