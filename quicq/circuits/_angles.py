"""One angle vector, validated: shared by the compilers that bind numbers into a circuit."""

from __future__ import annotations

from typing import Any

import numpy as np

from quicq.circuits.ir import Circuit, CircuitError, check_angles


def angle_vector(circuit: Circuit, angles: Any) -> np.ndarray:
    """Validate one angle vector (numpy, torch or sequence) and return it as float64, shape (n_params,).

    Compiled programs (Qiskit circuits, OpenQASM text) hold one angle setting, so a batch is an
    error here rather than silently taking its first row.
    """
    check_angles(circuit, angles)
    if hasattr(angles, "detach"):  # torch tensor
        angles = angles.detach().cpu().numpy()
    arr = np.asarray(angles, dtype=np.float64)
    if arr.ndim != 1:
        raise CircuitError(
            f"angles: expected one angle vector of shape ({circuit.n_params},), got shape "
            f"{arr.shape}; compile one row at a time"
        )
    return arr
