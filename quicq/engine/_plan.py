"""Cached, device-independent execution plans for circuits (index tensors built once)."""

from __future__ import annotations

from functools import lru_cache

import torch

from quicq.circuits.ir import Circuit, CircuitError, check_angles


def as_angles(circuit: Circuit, angles, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Validate ``angles`` (shape (..., n_params), finite) and return a real float tensor.

    Python floats / numpy arrays become float64 tensors; tensors keep their dtype and device
    (integer tensors become float64) so gradients flow through unchanged.
    """
    check_angles(circuit, angles)
    if not isinstance(angles, torch.Tensor):
        angles = torch.as_tensor(angles, dtype=dtype or torch.float64)
    elif not angles.is_floating_point():
        angles = angles.to(dtype or torch.float64)
    elif dtype is not None:
        angles = angles.to(dtype)
    return angles


@lru_cache(maxsize=256)
def unary_plan(circuit: Circuit) -> tuple[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor], ...]:
    """Group the circuit's unary action into layers of row operations.

    Returns steps ``(kind, rows_a, rows_b, slots)``: kind "givens" (rbs/fbs on disjoint pairs,
    applied at once) or "sign" (z gates: rows_a get negated). CZ is the identity on the unary
    sector (|11⟩ has weight 2) and is dropped.
    """
    if not circuit.hw_preserving:
        bad = sorted({g.name for g in circuit.gates if g.name not in ("rbs", "fbs", "z", "cz")})
        raise CircuitError(
            f"the unary block needs a Hamming-weight-preserving circuit; this one has {bad} gates"
        )
    steps = []
    for layer in circuit.layers(by_support=False):  # FBS = RBS on the unary sector
        a, b, slots, zs = [], [], [], []
        for i in layer:
            g = circuit.gates[i]
            if g.name in ("rbs", "fbs"):  # identical on the unary sector
                a.append(g.qubits[0])
                b.append(g.qubits[1])
                slots.append(g.param)
            elif g.name == "z":
                zs.append(g.qubits[0])
        if a:
            steps.append(("givens", torch.tensor(a), torch.tensor(b), torch.tensor(slots)))
        if zs:
            steps.append(("sign", torch.tensor(zs), torch.tensor([], dtype=torch.long),
                          torch.tensor([], dtype=torch.long)))
    return tuple(steps)
