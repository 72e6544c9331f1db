"""Unary (Hamming-weight-1) block of an RBS/FBS circuit: a product of Givens rotations.

The block U has U[i, j] = ⟨e_i| C(θ) |e_j⟩. Gates on disjoint pairs commute, so each ASAP
layer is applied as one vectorised row update (gather two row sets, mix, scatter back) —
O(depth) tensor operations, no Python loop over entries, batched over any leading angle
dimensions and differentiable by autograd.
"""

from __future__ import annotations

import torch

from quicq.circuits.ir import Circuit
from quicq.engine._plan import as_angles, unary_plan


def unary_block(circuit: Circuit, angles, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return the (..., n, n) unary block of ``circuit`` at ``angles`` (shape (..., n_params)).

    RBS and FBS act identically on the unary sector (no qubit between a and b is set), Z
    negates e_a, CZ is the identity there. Other gates (ry, h, x, mcry) raise CircuitError.
    """
    th = as_angles(circuit, angles, dtype=dtype)
    n = circuit.n_qubits
    batch = th.shape[:-1]
    U = torch.eye(n, dtype=th.dtype, device=th.device).expand(*batch, n, n)
    for kind, rows_a, rows_b, slots in unary_plan(circuit):
        rows_a = rows_a.to(th.device)
        if kind == "sign":
            sign = torch.ones(n, dtype=th.dtype, device=th.device)
            sign = sign.index_fill(0, rows_a, -1.0)
            U = U * sign[:, None]
            continue
        rows_b, slots = rows_b.to(th.device), slots.to(th.device)
        t = th.index_select(-1, slots)
        c, s = torch.cos(t)[..., None], torch.sin(t)[..., None]
        ua, ub = U.index_select(-2, rows_a), U.index_select(-2, rows_b)
        # Givens on (a, b): new e_a row = c·row_a − s·row_b, new row_b = s·row_a + c·row_b.
        U = U.index_copy(-2, rows_a, c * ua - s * ub).index_copy(-2, rows_b, s * ua + c * ub)
    return U
