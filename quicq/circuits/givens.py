"""Givens compiler: a real orthogonal matrix → an RBS circuit whose unary block equals it.

Why: an adapter block trained (or estimated by tomography) as a matrix can be loaded into a
circuit layout, and any O(n) matrix gets an explicit circuit for hardware runs.

Conventions (docs/conventions.md). Gates are applied in order, so the unary block of a circuit is
U = G_last ··· G_first, U[i, j] = ⟨e_i|C|e_j⟩. The Givens matrix of ``rbs(a, b)(θ)`` on the
unary sector has G[a,a] = G[b,b] = cos θ, G[b,a] = sin θ, G[a,b] = −sin θ.

Method. Both layouts are eliminations by orthogonal rotations, O(n) work per rotation and
n(n−1)/2 rotations, so O(n³) overall:

* ``pyramid``: the pyramid is a product of diagonals M = D_{n−2} ··· D_0, where diagonal j
  is G(0,1)·G(1,2)···G(j,j+1) and acts on coordinates 0..j+1 only. Hence column n−1 of M is
  D_{n−2} e_{n−1}: left-rotating rows (0,1), (1,2), … (n−2,n−1) zeroes that column down to
  e_{n−1} and gives the angles of the last diagonal; recurse on the leading block.
* ``brick``: Clements-style elimination (Clements et al., Optica 3, 1460 (2016)) with real
  rotations. The lower triangle is zeroed anti-diagonal by anti-diagonal, alternately by
  column rotations (these become the first gates of the circuit, the upper-left triangle
  of the brick wall) and row rotations (the last gates, lower-right triangle). Together they
  fill exactly the n(n−1)/2 slots of ``brick(n, n)``: n layers suffice for all of SO(n)
  (checked in tests/test_givens.py on random SO(n) and O(n), n = 2..12).

Each rotation angle comes from ``np.arctan2`` and leaves the receiving entry ≥ 0. What
remains after elimination is a diagonal ±1 matrix D (det D = det M). D is moved to the input
side of the circuit using D_a·G(θ) = G(−θ)·D_a (a sign passes through a gate, flipping its
angle) and D_b·G(θ) = D_a·G(θ+π) (a sign hops from b to a): walking the gates from the output
end back to the input, every sign hops towards qubit 0 and pairs of signs annihilate. In
both layouts every qubit has a path to qubit 0, so at most one sign survives, on qubit 0.

Determinant −1: the circuit is the layout with a ``z`` gate on qubit 0 *prepended* (applied
first). In the unary sector Z on qubit 0 is diag(−1, 1, …, 1), a reflection; it preserves
Hamming weight and acts on weight k as the compound C_k(diag(−1, 1, …)), so the circuit stays
compound-consistent. The parameter slots are those of the plain layout.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from quicq.circuits.ir import Circuit, CircuitError, Gate
from quicq.circuits.layouts import brick, pyramid

GIVENS_LAYOUTS = ("pyramid", "brick")

# One elimination step: (side, a, b, null_a, line, slot).
#   side "L": remove the *last* remaining gate on (a, b): M ← G(θ)ᵀ·M (rows a, b), acting on
#             column ``line``; side "R": remove the *first* remaining gate: M ← M·G(θ)ᵀ
#             (columns a, b), acting on row ``line``.
#   null_a: the entry zeroed is the one at a (else at b); the other receives the norm (≥ 0).
_Step = tuple[str, int, int, bool, int, int]


def _as_orthogonal(matrix: Any, atol: float) -> np.ndarray:
    """Validate ``matrix`` as a finite, square, real orthogonal (within atol) float64 array."""
    if hasattr(matrix, "detach"):  # torch tensor, possibly with grad or on a device
        matrix = matrix.detach().cpu().numpy()
    arr = np.asarray(matrix)
    if np.iscomplexobj(arr):
        raise CircuitError("givens_decompose: the matrix must be real (got complex entries)")
    try:
        M = np.array(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CircuitError(f"givens_decompose: cannot read the matrix as real numbers: {exc}") from exc
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise CircuitError(f"givens_decompose: expected a square n×n matrix, got shape {M.shape}")
    n = M.shape[0]
    if n < 2:
        raise CircuitError(f"givens_decompose: need n ≥ 2 (a circuit of two-qubit gates), got n={n}")
    if not np.all(np.isfinite(M)):
        i, j = (int(v) for v in np.argwhere(~np.isfinite(M))[0])
        raise CircuitError(f"givens_decompose: non-finite entry (NaN or inf) at ({i}, {j})")
    if not (isinstance(atol, (int, float)) and math.isfinite(atol) and atol >= 0):
        raise CircuitError(f"givens_decompose: atol must be a finite number ≥ 0, got {atol!r}")
    dev = float(np.max(np.abs(M.T @ M - np.eye(n))))
    if dev > atol:
        raise CircuitError(
            f"givens_decompose: matrix is not orthogonal: max |MᵀM − I| = {dev:.3e} > atol = {atol:.1e} "
            "(project it onto O(n) first, e.g. with the polar decomposition, or raise atol)"
        )
    return M


def _rotate(M: np.ndarray, side: str, a: int, b: int, null_a: bool, line: int) -> float:
    """Apply the rotation of one step to M in place; return the gate angle θ.

    ``+ 0.0`` turns −0.0 into +0.0 so that exact zeros give θ = 0 (not ±π) in arctan2.
    """
    if side == "L":  # rows: new_a = c·M_a + s·M_b, new_b = −s·M_a + c·M_b
        x, y = M[a, line] + 0.0, M[b, line] + 0.0
        theta = math.atan2(-x + 0.0, y) if null_a else math.atan2(y, x)
        c, s = math.cos(theta), math.sin(theta)
        ra, rb = M[a].copy(), M[b]
        M[a] = c * ra + s * rb
        M[b] = c * rb - s * ra
    else:  # columns: new_a = c·M[:,a] − s·M[:,b], new_b = s·M[:,a] + c·M[:,b]
        x, y = M[line, a] + 0.0, M[line, b] + 0.0
        theta = math.atan2(x, y) if null_a else math.atan2(-y + 0.0, x)
        c, s = math.cos(theta), math.sin(theta)
        ca, cb = M[:, a].copy(), M[:, b]
        M[:, a] = c * ca - s * cb
        M[:, b] = s * ca + c * cb
    return theta


def _pyramid_steps(n: int) -> list[_Step]:
    """Peel diagonals j = n−2 … 0 of :func:`~quicq.circuits.layouts.pyramid` from the left.

    Pyramid slots: diagonal j starts at slot j(j+1)/2 and holds pairs (j, j+1), …, (0, 1);
    the gate on (i, i+1) is slot j(j+1)/2 + (j − i). Removing G(0,1) first (the last gate
    applied) zeroes row 0 of column j+1, then G(1,2) row 1, and so on down to e_{j+1}.
    """
    steps: list[_Step] = []
    for j in range(n - 2, -1, -1):
        base = j * (j + 1) // 2
        steps.extend(("L", i, i + 1, True, j + 1, base + j - i) for i in range(j + 1))
    return steps


def _brick_slots(n: int, n_layers: int) -> dict[tuple[int, int], int]:
    """(layer, first qubit of the pair) → slot, in the gate order of ``brick(n, n_layers)``."""
    slots: dict[tuple[int, int], int] = {}
    for layer in range(n_layers):
        for p in range(layer % 2, n - 1, 2):
            slots[(layer, p)] = len(slots)
    return slots


def _brick_steps(n: int) -> list[_Step]:
    """Clements' nulling order mapped onto ``brick(n, n)``.

    Anti-diagonal i = 1..n−1 of the lower triangle. Odd i: column rotations on (c, c+1),
    c = i−1−j for j = 0..i−1, zero entry (n−1−j, c); that gate sits in layer j (gates found
    from the right are the earliest ones). Even i: row rotations on (r−1, r), r = n−1+j−i for
    j = 1..i, zero entry (r, j−1); that gate sits in layer n−j. Each (layer, pair) is hit once.
    """
    slots = _brick_slots(n, n)
    steps: list[_Step] = []
    for i in range(1, n):
        if i % 2:
            for j in range(i):
                c = i - 1 - j
                steps.append(("R", c, c + 1, True, n - 1 - j, slots[(j, c)]))
        else:
            for j in range(1, i + 1):
                r = n - 1 + j - i
                steps.append(("L", r - 1, r, False, j - 1, slots[(n - j, r - 1)]))
    return steps


def _wrap(theta: float) -> float:
    """Map an angle to (−π, π]."""
    return math.pi - (math.pi - theta) % (2 * math.pi)


def givens_decompose(
    matrix: Any, layout: str = "pyramid", *, atol: float = 1e-8
) -> tuple[Circuit, np.ndarray]:
    """Compile a real orthogonal n×n matrix into an RBS circuit and its angles.

    Args:
        matrix: real n×n array (numpy, torch or nested lists), n ≥ 2, with max |MᵀM − I| ≤ atol.
            It is used as given (not re-orthogonalised): the circuit's unary block matches M
            to about the larger of 1e-15·n and M's own deviation from orthogonality.
        layout: ``"pyramid"`` (returns exactly ``pyramid(n)``, n(n−1)/2 gates, depth 2n−3) or
            ``"brick"`` (returns ``brick(n, n)``: n alternating layers, also n(n−1)/2 gates).
        atol: tolerance on the orthogonality check.

    Returns:
        (circuit, angles): ``angles`` has shape (circuit.n_params,), values in (−π, π], and the
        unary block of ``circuit`` at ``angles`` equals ``matrix``. For det M = +1 the circuit
        equals the plain layout, so the angles load directly into an adapter of that layout;
        for det M = −1 it is the layout with ``z`` on qubit 0 prepended (see module docstring).

    Raises:
        CircuitError: non-square, n < 2, complex, non-finite or non-orthogonal input, or an
            unknown layout; the message says which and by how much.
    """
    if layout not in GIVENS_LAYOUTS:
        raise CircuitError(f"givens_decompose: unknown layout {layout!r}; choose one of {GIVENS_LAYOUTS}")
    M = _as_orthogonal(matrix, atol)
    n = M.shape[0]
    base = pyramid(n) if layout == "pyramid" else brick(n, n)
    steps = _pyramid_steps(n) if layout == "pyramid" else _brick_steps(n)
    if len(steps) != base.n_params:  # structural invariant of the two schedules
        raise AssertionError(f"{layout} schedule has {len(steps)} steps for {base.n_params} slots")

    R = M.copy()
    theta = np.zeros(base.n_params)
    for side, a, b, null_a, line, slot in steps:
        theta[slot] = _rotate(R, side, a, b, null_a, line)

    # Now M = (L-gates) · D · (R-gates) with D = diag(±1). Move D to the output end (a sign
    # pair d_a·d_b = −1 flips the angle of each L-gate it crosses) ...
    d = np.where(np.diag(R) < 0, -1.0, 1.0)
    for side, a, b, _, _, slot in steps:
        if side == "L":
            theta[slot] *= d[a] * d[b]
    # ... then walk every gate from the last to the first, hopping signs towards qubit 0.
    for g in reversed(base.gates):
        a, b = g.qubits
        if d[b] < 0:  # D_b·G(θ) = D_a·G(θ+π)
            d[b] = 1.0
            d[a] = -d[a]
            theta[g.param] += math.pi
        if d[a] < 0:  # D_a·G(θ) = G(−θ)·D_a
            theta[g.param] = -theta[g.param]
    if np.any(d[1:] < 0):  # cannot happen for these layouts; guard the derivation
        raise AssertionError(f"sign migration left signs on qubits {np.flatnonzero(d < 0).tolist()}")
    angles = np.array([_wrap(t) for t in theta])

    if d[0] > 0:
        return base, angles
    meta = {**base.meta, "reflection": "z on qubit 0 prepended (det = -1)"}
    circuit = Circuit(n, (Gate("z", (0,)),) + base.gates, base.n_params, meta)
    return circuit, angles
