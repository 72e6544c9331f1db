"""Aer witness: circuit blocks computed by Qiskit Aer's statevector simulator.

An independent check of the exact engine: the circuit goes through
:func:`quicq.circuits.qiskit_io.to_qiskit` (RBS/FBS spelled in h, cz, ry; mcry from Qiskit's
own controlled-RY synthesis), is transpiled once for Aer (Aer rejects the named rbs/fbs gates
and ``xx_plus_yy`` until they are lowered), and every (angle row, input state) pair runs in
*one* ``AerSimulator.run`` call, each circuit preparing its input basis state with X gates
and ending in ``save_statevector``.

Basis indices are quicq's (qubit 0 = most significant bit; see
:func:`quicq.circuits.ir.basis_index`, :func:`quicq.circuits.ir.sector_indices`). Aer's
statevectors are little-endian (qubit 0 = least significant bit), so indices are bit-reversed
on the way in and out. Slow by design (2^n amplitudes per column): cross-check, don't train.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from quicq._optional import require
from quicq.circuits.bitorder import bits_of, qiskit_index
from quicq.circuits.ir import Circuit, CircuitError, check_angles, sector_indices
from quicq.witnesses import WitnessError

__all__ = ["aer_block", "aer_sector_block", "aer_unary_block"]

# quicq circuits have real gates only, so every amplitude is real; a larger imaginary part
# means a gate was mapped wrongly, and the witness says so instead of dropping it.
_IMAG_TOL = 1e-9


# A plain gate set Aer runs natively; transpiling to an explicit list is ~5x faster than
# transpiling against the simulator's full target, and covers Qiskit's mcry synthesis.
_AER_BASIS = ["cx", "cz", "ry", "rz", "h", "x", "z", "sx", "p", "u"]


def _default_simulator():
    AerSimulator = require("qiskit_aer", "qiskit").AerSimulator

    # One thread: Aer's OpenMP threading gains < 2x on small machines but loses ~10x when the
    # cores are shared (measured: n=16 pyramid, 16 columns, 3.0 s vs 28 s under load).
    return AerSimulator(method="statevector", precision="double", max_parallel_threads=1)


@lru_cache(maxsize=64)
def _transpiled(circuit: Circuit):
    """The parametrised circuit lowered to ``_AER_BASIS``, cached per circuit (transpile once)."""
    return _transpile(circuit, None)


def _transpile(circuit: Circuit, simulator: Any):
    transpile = require("qiskit", "qiskit").transpile

    from quicq.circuits.qiskit_io import to_qiskit

    if simulator is None:
        tqc = transpile(to_qiskit(circuit), basis_gates=_AER_BASIS, optimization_level=1)
    else:
        tqc = transpile(to_qiskit(circuit), backend=simulator, optimization_level=1)
    layout = tqc.layout
    if layout is not None and layout.final_index_layout() != list(range(circuit.n_qubits)):
        raise WitnessError(f"aer witness: transpiling permuted the qubits ({layout.final_index_layout()})")
    return tqc


_reverse_bits = qiskit_index  # quicq basis index (qubit 0 = MSB) → Qiskit's (qubit 0 = LSB)


def _indices(name: str, values: Sequence[int], n: int) -> list[int]:
    try:
        out = [int(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise CircuitError(f"aer_block: {name} indices must be integers, got {values!r}") from exc
    for v, raw in zip(out, values):
        if v != raw or not 0 <= v < 1 << n:
            raise CircuitError(f"aer_block: {name} index {raw!r} is not a basis index of {n} qubits")
    return out


def aer_block(
    circuit: Circuit,
    angles: Any,
    inputs: Sequence[int],
    outputs: Sequence[int],
    *,
    simulator: Any = None,
) -> np.ndarray:
    """Exact amplitudes B[i, j] = ⟨outputs[i]| C(angles) |inputs[j]⟩ from Aer statevectors.

    Args:
        circuit: the quicq circuit.
        angles: shape (n_params,) or a batch (B, n_params) (numpy, list or torch).
        inputs, outputs: basis indices in quicq's order (qubit 0 = most significant bit).
        simulator: an Aer backend to use instead of the default single-threaded,
            double-precision ``AerSimulator(method="statevector")`` (must support
            ``save_statevector``; the circuit is then transpiled for it on every call).

    Returns:
        Real float64 array of shape (len(outputs), len(inputs)), or (B, len(outputs),
        len(inputs)) for batched angles. Raises ``WitnessError`` (a RuntimeError) if Aer returns amplitudes with
        an imaginary part above 1e-9 (quicq circuits are real, so that means a mapping bug).
    """
    QuantumCircuit = require("qiskit", "qiskit").QuantumCircuit

    if not isinstance(circuit, Circuit):
        raise CircuitError(f"aer_block expects a quicq Circuit, got {type(circuit).__name__}")
    if hasattr(angles, "detach"):  # torch tensor
        angles = angles.detach().cpu().numpy()
    check_angles(circuit, angles)
    theta = np.asarray(angles, dtype=np.float64)
    if theta.ndim > 2:
        raise CircuitError(f"aer_block: angles must have shape (n_params,) or (B, n_params), got {theta.shape}")
    rows = theta[None, :] if theta.ndim == 1 else theta
    n = circuit.n_qubits
    ins, outs = _indices("input", inputs, n), _indices("output", outputs, n)
    if not ins or not outs:
        shape = (len(outs), len(ins))
        return np.zeros(shape if theta.ndim == 1 else (rows.shape[0],) + shape)

    if simulator is None:
        simulator, body = _default_simulator(), _transpiled(circuit)
    else:
        body = _transpile(circuit, simulator)

    circuits = []
    for row in rows:
        bound = body.assign_parameters({p: float(row[p.index]) for p in body.parameters})
        for idx in ins:
            qc = QuantumCircuit(n)
            for q, bit in enumerate(bits_of(idx, n)):
                if bit:
                    qc.x(q)
            qc.compose(bound, inplace=True)
            qc.save_statevector()
            circuits.append(qc)
    result = simulator.run(circuits).result()
    if not result.success:
        raise WitnessError(f"aer witness: the simulation failed: {result.status}")

    out_q = [qiskit_index(i, n) for i in outs]
    block = np.empty((rows.shape[0], len(outs), len(ins)))
    for c in range(len(circuits)):
        b, j = divmod(c, len(ins))
        col = np.asarray(result.data(c)["statevector"])[out_q]
        imag = float(np.max(np.abs(col.imag)))
        if imag > _IMAG_TOL:
            raise WitnessError(
                f"aer witness: input {ins[j]} gave complex amplitudes (max |imag| = {imag:.2e}); "
                "quicq circuits are real, so a gate mapping is wrong"
            )
        block[b, :, j] = col.real
    return block if theta.ndim == 2 else block[0]


def aer_unary_block(circuit: Circuit, angles: Any, **kwargs: Any) -> np.ndarray:
    """n×n unary block U[i, j] = ⟨e_i|C|e_j⟩ (e_a: only qubit a set), the engine's ``unary_block``."""
    idx = sector_indices(circuit.n_qubits, 1)
    return aer_block(circuit, angles, idx, idx, **kwargs)


def aer_sector_block(circuit: Circuit, angles: Any, k: int, **kwargs: Any) -> np.ndarray:
    """Weight-k block on lexicographic k-subsets, the engine's ``sector_block(circuit, angles, k)``."""
    n = circuit.n_qubits
    if not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise CircuitError(f"aer_sector_block: order k={k!r} is impossible for {n} qubits")
    idx = sector_indices(n, int(k))
    return aer_block(circuit, angles, idx, idx, **kwargs)
