"""Generic real statevector simulation of any quicq circuit on a batch of basis inputs.

Used for circuits that are not Hamming-weight preserving (Pauli RY+CZ circuits, tomography
preparations with H/X) and as an in-engine cross-check of the fast unary/compound routes.
States are tensors of shape (..., M, 2, …, 2): M input columns, one axis per qubit, qubit 0
first (= most significant bit of the basis index). Every gate is real, so the state is too.
Cost O(gates · M · 2^n): fine to ~20 qubits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from quicq.circuits.ir import Circuit, CircuitError, Gate
from quicq.engine._plan import Angles, as_angles
from quicq.circuits.gates import GIVENS_GATES, SIGN_GATES

_SQRT1_2 = 0.7071067811865476


def _rot(x0: torch.Tensor, x1: torch.Tensor, c: torch.Tensor, s: torch.Tensor):
    """RY-type rotation of the amplitude pair (x0, x1): [[c, −s], [s, c]]."""
    return c * x0 - s * x1, s * x0 + c * x1


def _apply(psi: torch.Tensor, g: Gate, th: torch.Tensor, n: int) -> torch.Tensor:
    nb = th.ndim - 1  # number of leading batch dims of the angles
    off = nb + 1  # axis of qubit 0
    ax = [off + q for q in range(n)]

    def angle(scale: float, ref: torch.Tensor) -> torch.Tensor:
        """The gate's angle times ``scale``, shaped to broadcast against ``ref``."""
        t = th[..., g.param] * scale
        return t.reshape(t.shape + (1,) * (ref.ndim - nb))

    if g.name in ("ry", "mcry"):
        tq = ax[g.qubits[-1]]
        x = psi.movedim(tq, -1)
        t = angle(0.5, x[..., 0])
        c, s = torch.cos(t), torch.sin(t)
        y0, y1 = _rot(x[..., 0], x[..., 1], c, s)
        new = torch.stack([y0, y1], -1).movedim(-1, tq)
        if g.name == "ry" or not g.qubits[:-1]:
            return new
        mask = torch.ones([1] * psi.ndim, dtype=psi.dtype, device=psi.device)
        for q, v in zip(g.qubits[:-1], g.ctrl_state):
            shape = [1] * psi.ndim
            shape[ax[q]] = 2
            sel = torch.tensor([1.0 - v, float(v)], dtype=psi.dtype, device=psi.device)
            mask = mask * sel.reshape(shape)
        return psi + mask * (new - psi)
    if g.name in SIGN_GATES:
        return psi * (1 - 2 * _all_ones(psi, [ax[q] for q in g.qubits]))
    if g.name == "x":
        return psi.flip(ax[g.qubits[0]])
    if g.name == "h":
        x = psi.movedim(ax[g.qubits[0]], -1)
        y = torch.stack([(x[..., 0] + x[..., 1]) * _SQRT1_2, (x[..., 0] - x[..., 1]) * _SQRT1_2], -1)
        return y.movedim(-1, ax[g.qubits[0]])
    if g.name in GIVENS_GATES:
        a, b = g.qubits
        x = psi.movedim((ax[a], ax[b]), (-2, -1))
        t = angle(1.0, x[..., 0, 0])
        c, s = torch.cos(t), torch.sin(t)
        if g.name == "fbs" and b - a > 1:
            # parity sign of the qubits strictly between a and b, as a broadcast tensor
            par = _parity_sign(psi, [ax[q] for q in range(a + 1, b)])
            s = s * par.movedim((ax[a], ax[b]), (-2, -1))[..., 0, 0]
        x01, x10 = x[..., 0, 1], x[..., 1, 0]
        # on (|01⟩, |10⟩): [[c, s], [−s, c]]
        n01, n10 = c * x01 + s * x10, -s * x01 + c * x10
        row0 = torch.stack([x[..., 0, 0], n01], -1)
        row1 = torch.stack([n10, x[..., 1, 1]], -1)
        return torch.stack([row0, row1], -2).movedim((-2, -1), (ax[a], ax[b]))
    raise CircuitError(f"the statevector engine does not know gate {g.name!r}")  # pragma: no cover


def _all_ones(psi: torch.Tensor, axes: list[int]) -> torch.Tensor:
    """Broadcastable 0/1 tensor: 1 where every listed qubit axis is |1⟩."""
    out = torch.ones([1] * psi.ndim, dtype=psi.dtype, device=psi.device)
    for a in axes:
        shape = [1] * psi.ndim
        shape[a] = 2
        out = out * torch.tensor([0.0, 1.0], dtype=psi.dtype, device=psi.device).reshape(shape)
    return out


def _parity_sign(psi: torch.Tensor, axes: list[int]) -> torch.Tensor:
    """Broadcastable ±1 tensor: (−1)^(number of listed qubit axes in |1⟩)."""
    out = torch.ones([1] * psi.ndim, dtype=psi.dtype, device=psi.device)
    for a in axes:
        shape = [1] * psi.ndim
        shape[a] = 2
        out = out * torch.tensor([1.0, -1.0], dtype=psi.dtype, device=psi.device).reshape(shape)
    return out


def simulate(circuit: Circuit, angles: Angles, inputs: Sequence[int], *,
             dtype: torch.dtype | None = None) -> torch.Tensor:
    """Final states for each basis input: shape (..., len(inputs), 2^n), basis index qubit 0 = MSB."""
    th = as_angles(circuit, angles, dtype=dtype)
    n = circuit.n_qubits
    if n > 24:
        raise CircuitError(f"statevector simulation of {n} qubits would need 2^{n} amplitudes per input")
    dim = 1 << n
    idx = torch.as_tensor(list(inputs), dtype=torch.long)
    if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= dim:
        raise CircuitError(f"input basis indices must lie in [0, {dim}) for {n} qubits")
    psi0 = torch.zeros(len(inputs), dim, dtype=th.dtype, device=th.device)
    psi0[torch.arange(len(inputs)), idx.to(th.device)] = 1.0
    psi = psi0.expand(*th.shape[:-1], len(inputs), dim).reshape(*th.shape[:-1], len(inputs), *([2] * n))
    for g in circuit.gates:
        psi = _apply(psi, g, th, n)
    return psi.reshape(*th.shape[:-1], len(inputs), dim)


def statevector_block(circuit: Circuit, angles: Angles, inputs: Sequence[int], outputs: Sequence[int], *,
                      dtype: torch.dtype | None = None) -> torch.Tensor:
    """Amplitudes ⟨out_i| C |in_j⟩ as a (..., len(outputs), len(inputs)) tensor."""
    states = simulate(circuit, angles, inputs, dtype=dtype)
    out = torch.as_tensor(list(outputs), dtype=torch.long, device=states.device)
    return states.index_select(-1, out).transpose(-1, -2)
