"""PennyLane witness: circuit blocks computed by PennyLane statevector simulators.

An independent check of the exact engine: the circuit goes through
:func:`quicq.circuits.pennylane_io.to_pennylane` (PennyLane's own gate definitions) and is run
once per input basis state on a PennyLane device (``default.qubit`` or ``lightning.qubit``),
reading amplitudes from ``qml.state()``. Slow by design (one simulation per column, 2^n
amplitudes each): use it to cross-check, not to train.

Basis indices are quicq's (qubit 0 = most significant bit, which is also PennyLane's order):
see :func:`quicq.circuits.ir.basis_index` and :func:`quicq.circuits.ir.sector_indices`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from quicq.circuits._angles import angle_vector
from quicq.circuits.bitorder import bits_of
from quicq.circuits.ir import Circuit, CircuitError, sector_indices
from quicq.circuits.pennylane_io import _import_pennylane, to_pennylane
from quicq.witnesses import WitnessError

# quicq circuits have real gates only, so every amplitude is real; a larger imaginary part
# means a gate was mapped wrongly, and the witness says so instead of dropping it.
_IMAG_TOL = 1e-9


def _indices(name: str, values: Sequence[int], n: int) -> list[int]:
    try:
        out = [int(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise CircuitError(f"pennylane_block: {name} indices must be integers, got {values!r}") from exc
    for v, raw in zip(out, values):
        if v != raw or not 0 <= v < 2**n:
            raise CircuitError(f"pennylane_block: {name} index {raw!r} is not a basis index of {n} qubits")
    return out


def pennylane_block(
    circuit: Circuit,
    angles: Any,
    inputs: Sequence[int],
    outputs: Sequence[int],
    device: str | Any = "default.qubit",
) -> np.ndarray:
    """Exact amplitudes B[i, j] = ⟨outputs[i]| C(angles) |inputs[j]⟩ from a PennyLane simulator.

    Args:
        circuit: the quicq circuit.
        angles: one angle setting, shape (n_params,) (numpy, list or torch; no batch).
        inputs, outputs: basis indices (qubit 0 = most significant bit).
        device: a PennyLane device name (``"default.qubit"``, ``"lightning.qubit"``, …) or a
            device instance with exactly ``circuit.n_qubits`` wires (qubit i → its i-th wire).

    Returns:
        Real float64 array of shape (len(outputs), len(inputs)).
    """
    qml = _import_pennylane()
    n = circuit.n_qubits
    theta = angle_vector(circuit, angles)
    ins, outs = _indices("input", inputs, n), _indices("output", outputs, n)
    if isinstance(device, str):
        dev = qml.device(device, wires=n)
        wires = list(range(n))
    else:
        dev = device
        if dev.wires is None or len(dev.wires) != n:
            raise CircuitError(f"pennylane_block: device must have exactly {n} wires, got {dev.wires}")
        wires = list(dev.wires)
    qfunc = to_pennylane(circuit, wires=wires)

    @qml.qnode(dev)
    def run(bits: np.ndarray):
        qml.BasisState(bits, wires=wires)
        qfunc(theta)
        return qml.state()

    block = np.empty((len(outs), len(ins)))
    for j, idx in enumerate(ins):
        bits = np.array(bits_of(idx, n), dtype=int)
        psi = np.asarray(run(bits))
        col = psi[outs]
        imag = float(np.max(np.abs(col.imag))) if col.size else 0.0
        if imag > _IMAG_TOL:
            raise WitnessError(
                f"pennylane_block: input {idx} gave complex amplitudes (max |imag| = {imag:.2e}); "
                "quicq circuits are real, so a gate mapping is wrong"
            )
        block[:, j] = col.real
    return block


def pennylane_unary_block(circuit: Circuit, angles: Any, device: str | Any = "default.qubit") -> np.ndarray:
    """n×n unary block U[i, j] = ⟨e_i|C|e_j⟩ (e_a: only qubit a set), the engine's ``unary_block``."""
    idx = sector_indices(circuit.n_qubits, 1)
    return pennylane_block(circuit, angles, idx, idx, device)


def pennylane_sector_block(
    circuit: Circuit, angles: Any, k: int, device: str | Any = "default.qubit"
) -> np.ndarray:
    """Weight-k block on lexicographic k-subsets, the engine's ``sector_block(circuit, angles, k)``."""
    n = circuit.n_qubits
    if not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise CircuitError(f"pennylane_sector_block: order k={k!r} is impossible for {n} qubits")
    idx = sector_indices(n, int(k))
    return pennylane_block(circuit, angles, idx, idx, device)
