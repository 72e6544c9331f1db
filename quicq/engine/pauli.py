"""Columns of Pauli (RY + CZ) circuits: the orthonormal factors of Quantum-PEFT.

:func:`pauli_columns` returns Q(θ)[:, :K] with an exact, storage-free reverse pass. Two engines
compute it, chosen per call:

* on CPU (float32/float64, numba present) the circuit runs as one compiled program of row
  operations each way (:mod:`._pauli_program`: every RY a set of Givens rotations of row pairs
  at the half angle, every CZ layer a set of sign flips, consecutive rows merged into runs);
* elsewhere the Kronecker/GEMM stage engine (:mod:`._pauli_gemm`), which the tests also use as
  the compiled path's witness.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from quicq.circuits.ir import Circuit, CircuitError
from quicq.engine import _givens_jit as jit
from quicq.engine._pauli_gemm import _backward, _bucket, _forward, _pauli_plan
from quicq.engine._pauli_program import circuit_program, structure_of
from quicq.engine._plan import Angles, as_angles

__all__ = ["pauli_columns"]


def _cpu_numpy(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)


class _PauliColumns(torch.autograd.Function):
    """Q(θ)[:, :K] of a Pauli circuit with an exact, storage-free reverse pass.

    On CPU (float32/64, numba present) the circuit runs as one compiled row-operation program
    each way (:mod:`._pauli_program`); elsewhere the Kronecker/GEMM stages, which stay the
    compiled path's witness in the tests. No angle sets in (an empty batch): empty columns out."""

    @staticmethod
    def forward(ctx, th: torch.Tensor, circuit: Circuit, K: int) -> torch.Tensor:  # type: ignore[override]
        lead = th.shape[:-1]
        flat = th.detach().reshape(-1, th.shape[-1])
        s = structure_of(circuit)
        if flat.shape[0] == 0:
            ctx.state = ("empty", th.shape)
            return th.new_zeros(*lead, s.N, K)
        if _cpu_numpy(th) and jit.AVAILABLE:
            half = np.ascontiguousarray(flat.numpy() * 0.5)  # RY(θ) rotates by θ/2
            U = np.zeros((half.shape[0], s.N, K), dtype=half.dtype)
            U[:, np.arange(K), np.arange(K)] = 1.0
            jit.givens_forward(U, half, *circuit_program(circuit))
            ctx.state = ("jit", s, half, U, lead, circuit)
            return torch.from_numpy(U.copy()).reshape(*lead, s.N, K)
        plan = _pauli_plan(circuit, _bucket(flat.shape[0]), _bucket(K))
        use_np = _cpu_numpy(th)
        arr = np.ascontiguousarray(flat.numpy()) if use_np else flat
        Y, mats = _forward(plan, arr, K)
        out = Y.swapaxes(-1, -2).reshape(-1, plan.N, K)
        out = torch.from_numpy(np.ascontiguousarray(out)) if use_np else out.contiguous()
        ctx.state = (plan, arr, Y, mats, use_np, lead)
        return out.reshape(*lead, plan.N, K)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        if ctx.state[0] == "empty":
            return grad_out.new_zeros(ctx.state[1]), None, None
        if ctx.state[0] == "jit":
            _, s, half, U, lead, circuit = ctx.state
            A = grad_out.detach().to(torch.float64 if half.dtype == np.float64 else torch.float32)
            A = np.array(A.reshape(U.shape).numpy(), dtype=half.dtype, order="C", copy=True)
            grad = np.zeros_like(half)
            jit.givens_backward(U.copy(), A, half, grad, *circuit_program(circuit))
            return torch.from_numpy(grad * 0.5).reshape(*lead, -1), None, None
        plan, arr, Y, mats, use_np, lead = ctx.state
        shape = Y.shape[:-2] + Y.shape[-1:] + Y.shape[-2:-1]  # (B, D…, D_last, K)
        if use_np:
            g = grad_out.detach().to(torch.float64 if arr.dtype == np.float64 else torch.float32)
            G = g.reshape(shape).numpy().swapaxes(-1, -2)
        else:
            G = grad_out.to(arr.dtype).reshape(shape).swapaxes(-1, -2)
        grad = _backward(plan, arr, Y, G, mats)
        grad = torch.from_numpy(grad) if use_np else grad
        return grad.reshape(*lead, -1), None, None


def pauli_columns(circuit: Circuit, angles: Angles, K: int, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """First K columns of Q(θ) ∈ SO(N) for a circuit from :func:`quicq.circuits.pauli.pauli`.

    ``angles`` has shape (..., n_params); returns a (..., N, K) tensor with orthonormal columns,
    differentiable (first order) with respect to ``angles``. Rows and columns are logical
    indices; for N not a power of two the circuit's register is Gray-coded on hardware and only
    code words are read (the circuit never leaves the code space). Many angle sets of one
    circuit (e.g. the U circuits of every module of one width) are one batched call.
    """
    if circuit.meta.get("layout") != "pauli":
        raise CircuitError("pauli_columns needs a circuit built by quicq.circuits.pauli(N, L)")
    N = int(circuit.meta["N"])
    if not isinstance(K, int) or isinstance(K, bool) or not 1 <= K <= N:
        raise CircuitError(f"rank K must be an integer in [1, {N}] for N={N}, got {K!r}")
    th = as_angles(circuit, angles, dtype=dtype)
    structure_of(circuit)  # validates the circuit before any work
    return _PauliColumns.apply(th, circuit, K)
