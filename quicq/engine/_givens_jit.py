"""Compiled CPU kernels of the unary engine: a Givens network applied gate by gate.

Why compiled: a pyramid on n qubits has n(n−1)/2 gates in 2n−3 layers, each layer O(n²) work.
In numpy or torch every layer costs a handful of calls of a few µs each, so the engine is
dispatch-bound (n = 38: ~2.5 ms forward + backward for ~1 MFLOP). numba (a well-kept LLVM JIT
for numpy code, chosen over a C++ extension because it needs no compiler on the user's machine)
turns the whole loop into one call; the arithmetic is the same rotation of two rows per gate.

Gates come as a flat program in circuit order (any topological order of the circuit gives the
same product): ``kind[i]`` 0 = Givens rotation of rows (a, b) by ``th[slot]``
(U[a] ← c·U[a] − s·U[b], U[b] ← s·U[a] + c·U[b], the engine's RBS convention), 1 = sign flip
of row a (a Z gate on the unary sector). Angles and matrices are batched over a leading axis.

If numba is not importable (an exotic platform), :data:`AVAILABLE` is False and the engine uses
its numpy layer loop instead.
"""

from __future__ import annotations

import numpy as np

try:  # pragma: no cover - exercised whenever numba is installed (it is a core dependency)
    import numba

    AVAILABLE = True
except ImportError:  # pragma: no cover
    numba = None
    AVAILABLE = False

__all__ = ["AVAILABLE", "givens_backward", "givens_forward"]


def _forward(U: np.ndarray, th: np.ndarray, kind: np.ndarray, a: np.ndarray, b: np.ndarray,
             slot: np.ndarray) -> None:  # pragma: no cover - compiled
    """U (B, n, n) ← G_m ⋯ G_1 · U in place; th (B, P)."""
    nb, n = U.shape[0], U.shape[2]
    for t in range(nb):
        for i in range(kind.shape[0]):
            ra, rb = a[i], b[i]
            if kind[i] == 1:
                for j in range(n):
                    U[t, ra, j] = -U[t, ra, j]
                continue
            c, s = np.cos(th[t, slot[i]]), np.sin(th[t, slot[i]])
            for j in range(n):
                ua, ub = U[t, ra, j], U[t, rb, j]
                U[t, ra, j] = c * ua - s * ub
                U[t, rb, j] = s * ua + c * ub


def _backward(U: np.ndarray, A: np.ndarray, th: np.ndarray, grad: np.ndarray, kind: np.ndarray,
              a: np.ndarray, b: np.ndarray, slot: np.ndarray) -> None:  # pragma: no cover - compiled
    """Gates reversed, in place: grad[slot] += ⟨A_b, U_a⟩ − ⟨A_a, U_b⟩ (U after the gate, A = ∂L/∂U
    there), then U ← GᵀU and A ← GᵀA (the pre-gate state, recovered exactly: G is orthogonal)."""
    nb, n = U.shape[0], U.shape[2]
    for t in range(nb):
        for i in range(kind.shape[0] - 1, -1, -1):
            ra, rb = a[i], b[i]
            if kind[i] == 1:
                for j in range(n):
                    U[t, ra, j] = -U[t, ra, j]
                    A[t, ra, j] = -A[t, ra, j]
                continue
            c, s = np.cos(th[t, slot[i]]), np.sin(th[t, slot[i]])
            g = 0.0
            for j in range(n):
                ua, ub = U[t, ra, j], U[t, rb, j]
                xa, xb = A[t, ra, j], A[t, rb, j]
                g += xb * ua - xa * ub
                U[t, ra, j] = c * ua + s * ub
                U[t, rb, j] = c * ub - s * ua
                A[t, ra, j] = c * xa + s * xb
                A[t, rb, j] = c * xb - s * xa
            grad[t, slot[i]] += g


if AVAILABLE:
    # cache=True keeps the machine code next to this file: later processes skip the ~1 s compile.
    # Only the reassociation / fused-multiply-add fast-math flags (they let LLVM vectorise the
    # row loops and the gradient's dot product); no finite-math assumptions, so NaN and inf in
    # an upstream gradient still propagate.
    _FLAGS = {"reassoc", "contract"}
    givens_forward = numba.njit(cache=True, nogil=True, fastmath=_FLAGS)(_forward)
    givens_backward = numba.njit(cache=True, nogil=True, fastmath=_FLAGS)(_backward)
else:  # pragma: no cover
    givens_forward = givens_backward = None
