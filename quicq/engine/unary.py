"""Unary (Hamming-weight-1) block of an RBS/FBS circuit: a product of Givens rotations.

The block U has U[i, j] = ⟨e_i| C(θ) |e_j⟩. Gates on disjoint pairs commute, so each ASAP
layer is one vectorised update U ← C⊙U + S⊙U[perm] (see :class:`quicq.engine._plan.UnaryStep`):
O(depth) array operations, no loop over entries, batched over leading angle dimensions.

Gradients come from a hand-written reverse pass (:class:`_GivensProduct`) instead of autograd
tracing every layer: walking the layers backwards, the pre-layer state is recovered exactly by
applying Gᵀ (the gates are orthogonal), so nothing per layer is stored, and the angle gradient
of a gate on rows (a, b) is Σ_cols(Ū_b·U_a − Ū_a·U_b) with Ū the adjoint after the layer.
On CPU (float32/float64) the whole gate loop is one compiled call (:mod:`._givens_jit`, numba);
without numba it runs layer by layer in numpy on the tensors' shared memory (dispatch-bound, but
numpy's per-call overhead is several times lower than torch's). Other devices use torch ops.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from quicq.circuits.ir import Circuit
from quicq.engine import _givens_jit as jit
from quicq.engine._plan import Angles, UnaryStep, as_angles, unary_plan, unary_program


class _Xp:
    """The few array operations the layer loop needs, for numpy or torch (on any device)."""

    def __init__(self, like):
        self.torch = isinstance(like, torch.Tensor)
        self.like = like
        self._idx: dict[int, object] = {}

    def idx(self, arr: np.ndarray):
        if not self.torch:
            return arr
        key = id(arr)
        if key not in self._idx:
            self._idx[key] = torch.as_tensor(arr, device=self.like.device)
        return self._idx[key]

    def tables(self, th, sign: float = 1.0):
        """Extended coefficient tables (see UnaryStep.cidx/sidx); sign=−1 gives Gᵀ."""
        if self.torch:
            c, s = torch.cos(th), torch.sin(th) * sign
            one = torch.ones(th.shape[:-1] + (1,), dtype=th.dtype, device=th.device)
            return torch.cat([one, c], -1), torch.cat([one * 0, -s, s], -1)
        c, s = np.cos(th), np.sin(th) * sign
        one = np.ones(th.shape[:-1] + (1,), dtype=th.dtype)
        return np.concatenate([one, c], -1), np.concatenate([one * 0, -s, s], -1)

    def coefficients(self, tables, step: UnaryStep):
        """Per-row (C, S) of one Givens layer, shapes (..., n, 1)."""
        ct, st = tables
        return ct[..., self.idx(step.cidx)][..., None], st[..., self.idx(step.sidx)][..., None]


def _forward(U, th, steps, n: int):
    """Return G_m ⋯ G_1 U (U is consumed)."""
    xp = _Xp(U)
    tables = xp.tables(th)
    for step in steps:
        if step.kind == "sign":
            U[..., xp.idx(step.a), :] *= -1
            continue
        C, S = xp.coefficients(tables, step)
        U = C * U + S * U[..., xp.idx(step.perm), :]
    return U


def _backward(U, A, th, grad, steps, n: int) -> None:
    """Layers reversed: U ← GᵀU, A ← GᵀA, grad += ∂L/∂θ (A = ∂L/∂U after each layer)."""
    xp = _Xp(U)
    tables = xp.tables(th, sign=-1.0)  # Gᵀ
    for step in reversed(steps):
        a = xp.idx(step.a)
        if step.kind == "sign":
            U[..., a, :] *= -1
            A[..., a, :] *= -1
            continue
        perm = xp.idx(step.perm)
        Up = U[..., perm, :]
        # row-wise ⟨A_r, U_partner(r)⟩: the gate gradient is D[b] − D[a]
        D = (A * Up).sum(-1)
        g = D[..., xp.idx(step.b)] - D[..., a]
        slots = xp.idx(step.slots)
        if step.unique_slots:
            grad[..., slots] += g
        elif xp.torch:
            grad.index_add_(-1, slots, g)
        else:
            np.add.at(grad, (..., slots), g)
        C, S = xp.coefficients(tables, step)
        U[...] = C * U + S * Up
        A[...] = C * A + S * A[..., perm, :]


def _cpu_numpy(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)


def _flat_angles(th: torch.Tensor) -> np.ndarray:
    """Angles as a contiguous (batch, P) numpy array (batch 1 without leading dimensions)."""
    return np.ascontiguousarray(th.detach().reshape(-1, th.shape[-1]).numpy())


class _GivensProduct(torch.autograd.Function):
    """U(θ) = G_m ⋯ G_1 with an exact, storage-free reverse pass."""

    @staticmethod
    def forward(ctx, th: torch.Tensor, circuit: Circuit) -> torch.Tensor:  # type: ignore[override]
        n = circuit.n_qubits
        steps = unary_plan(circuit)
        I = torch.eye(n, dtype=th.dtype, device=th.device).expand(*th.shape[:-1], n, n).clone()
        if _cpu_numpy(th) and jit.AVAILABLE:
            U = I
            jit.givens_forward(U.view(-1, n, n).numpy(), _flat_angles(th), *unary_program(circuit))
        elif _cpu_numpy(th):
            U = torch.from_numpy(np.ascontiguousarray(_forward(I.numpy(), th.detach().numpy(), steps, n)))
        else:
            U = _forward(I, th.detach(), steps, n)
        ctx.circuit = circuit
        ctx.save_for_backward(th, U)
        return U

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_U: torch.Tensor):  # type: ignore[override]
        th, U_final = ctx.saved_tensors
        n = ctx.circuit.n_qubits
        steps = unary_plan(ctx.circuit)
        U = U_final.clone()
        A = grad_U.to(th.dtype).expand_as(U).clone()
        grad = torch.zeros_like(th)
        if _cpu_numpy(th) and jit.AVAILABLE:
            P = th.shape[-1]
            jit.givens_backward(U.view(-1, n, n).numpy(), A.view(-1, n, n).numpy(), _flat_angles(th),
                                grad.view(-1, P).numpy(), *unary_program(ctx.circuit))
        elif _cpu_numpy(th):
            _backward(U.numpy(), A.numpy(), th.numpy(), grad.numpy(), steps, n)
        else:
            _backward(U, A, th, grad, steps, n)
        return grad, None


def unary_block(circuit: Circuit, angles: Angles, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return the (..., n, n) unary block of ``circuit`` at ``angles`` (shape (..., n_params)).

    RBS and FBS act identically on the unary sector (no qubit between a and b is set), Z
    negates e_a, CZ is the identity there. Other gates (ry, h, x, mcry) raise CircuitError.
    Differentiable once (first-order gradients) with respect to ``angles``.
    """
    th = as_angles(circuit, angles, dtype=dtype)
    unary_plan(circuit)  # validates the gate set before any work
    return _GivensProduct.apply(th, circuit)
