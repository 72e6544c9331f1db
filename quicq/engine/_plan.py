"""Cached, device-independent execution plans for circuits (index arrays built once)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias

import numpy as np
import torch

from quicq.circuits.gates import GIVENS_GATES
from quicq.circuits.ir import Circuit, CircuitError, check_angles

Angles: TypeAlias = torch.Tensor | np.ndarray | Sequence[float] | Sequence[Sequence[float]]
"""What the engine's ``angles`` accept: shape (..., n_params), real and finite (a tensor keeps its
dtype, device and autograd graph; anything else becomes float64)."""


def as_angles(circuit: Circuit, angles: Angles, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Validate ``angles`` (shape (..., n_params), finite) and return a real float tensor.

    Python floats / numpy arrays become float64 tensors; tensors keep their dtype and device
    (integer tensors become float64) so gradients flow through unchanged.
    """
    check_angles(circuit, angles)
    if not isinstance(angles, torch.Tensor):
        angles = torch.as_tensor(np.asarray(angles, dtype=float), dtype=dtype or torch.float64)
    elif not angles.is_floating_point():
        angles = angles.to(dtype or torch.float64)
    elif dtype is not None:
        angles = angles.to(dtype)
    return angles


@dataclass(frozen=True)
class UnaryStep:
    """One layer of the unary action.

    kind "givens": rbs/fbs gates on disjoint pairs (a[i], b[i]) with angle slots[i];
    ``perm`` swaps each a[i] with b[i] (identity elsewhere), so a whole layer is
    U ← C⊙U + S⊙U[perm] with C = cos on touched rows (1 elsewhere), S = −sin on rows a, +sin
    on rows b (0 elsewhere). kind "sign": z gates negate rows a.
    """

    kind: str
    a: np.ndarray
    b: np.ndarray
    slots: np.ndarray
    perm: np.ndarray
    unique_slots: bool
    # Per-row gather indices into the extended tables [1, cos θ_0 … cos θ_{P−1}] (cidx) and
    # [0, −sin θ_0 …, +sin θ_0 …] (sidx): one gather each builds a layer's C and S.
    cidx: np.ndarray
    sidx: np.ndarray


@lru_cache(maxsize=256)
def unary_plan(circuit: Circuit) -> tuple[UnaryStep, ...]:
    """Layers of the circuit's action on the unary sector (CZ is the identity there)."""
    if not circuit.hw_preserving:
        raise CircuitError(
            f"the unary block needs a Hamming-weight-preserving circuit; this one has {circuit.non_hw_gates()} gates"
        )
    n = circuit.n_qubits
    steps = []
    for layer in circuit.layers(by_support=False):  # FBS = RBS on the unary sector
        a, b, slots, zs = [], [], [], []
        for i in layer:
            g = circuit.gates[i]
            if g.name in GIVENS_GATES:
                a.append(g.qubits[0])
                b.append(g.qubits[1])
                slots.append(g.param)
            elif g.name == "z":
                zs.append(g.qubits[0])
        if a:
            perm = np.arange(n)
            perm[a], perm[b] = b, a
            P = circuit.n_params
            cidx, sidx = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
            cidx[a] = cidx[b] = np.array(slots) + 1
            sidx[a], sidx[b] = np.array(slots) + 1, np.array(slots) + 1 + P
            steps.append(UnaryStep("givens", np.array(a), np.array(b), np.array(slots), perm,
                                   len(set(slots)) == len(slots), cidx, sidx))
        if zs:
            empty = np.zeros(0, dtype=np.int64)
            steps.append(UnaryStep("sign", np.array(zs), empty, empty, np.arange(n), True, empty, empty))
    return tuple(steps)


@lru_cache(maxsize=256)
def unary_program(circuit: Circuit) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The unary plan as a flat gate program for the compiled kernels (:mod:`._givens_jit`):
    int64 arrays (kind, a, b, slot, length) in layer order, kind 0 = Givens rotation of rows
    (a, b) by θ[slot], 1 = sign flip of row a (b, slot unused); length 1 (one row pair each)."""
    kind, a, b, slot = [], [], [], []
    for step in unary_plan(circuit):
        if step.kind == "sign":
            kind += [1] * len(step.a)
            a += step.a.tolist()
            b += [0] * len(step.a)
            slot += [0] * len(step.a)
        else:
            kind += [0] * len(step.a)
            a += step.a.tolist()
            b += step.b.tolist()
            slot += step.slots.tolist()
    length = [1] * len(kind)  # one row pair per operation (the kernels' run length)
    return tuple(np.ascontiguousarray(x, dtype=np.int64) for x in (kind, a, b, slot, length))  # type: ignore[return-value]
