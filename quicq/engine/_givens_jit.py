"""Compiled CPU kernels of the unary engine: a Givens network applied gate by gate.

Why compiled: a pyramid on n qubits has n(n−1)/2 gates in 2n−3 layers, each layer O(n²) work.
In numpy or torch every layer costs a handful of calls of a few µs each, so the engine is
dispatch-bound (n = 38: ~2.5 ms forward + backward for ~1 MFLOP). numba (a well-kept LLVM JIT
for numpy code, chosen over a C++ extension because it needs no compiler on the user's machine)
turns the whole loop into one call; the arithmetic is the same rotation of two rows per gate.

Gates come as a flat program in circuit order (any topological order of the circuit gives the
same product): ``kind[i]`` 0 = Givens rotation of rows (a, b) by ``th[slot]``
(U[a] ← c·U[a] − s·U[b], U[b] ← s·U[a] + c·U[b], the engine's RBS convention), 1 = sign flip
of row a (a Z gate on the unary sector); ``length[i]`` consecutive row pairs (a + r, b + r) at
once, the same angle (1 for a unary circuit; long runs for the Pauli engine's qubit rotations,
whose row pairs come in contiguous blocks). Runs never overlap their partner run. Angles and
matrices are batched over a leading axis. The matrices may be rectangular (B, rows, columns): the Pauli engine runs its first K columns
through the same kernels (:mod:`._pauli_program`), where one angle drives many row pairs.

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
             slot: np.ndarray, length: np.ndarray) -> None:  # pragma: no cover - compiled
    """U (B, R, n), C-contiguous, ← G_m ⋯ G_1 · U in place; th (B, P). Operation i acts on the
    ``length[i]`` consecutive rows from a[i] (and from b[i]): one contiguous run of floats."""
    nb, n = U.shape[0], U.shape[2]
    for t in range(nb):
        cs, sn = np.cos(th[t]), np.sin(th[t])  # once per angle: a slot may serve many gates
        V = U[t].reshape(U.shape[1] * n)
        for i in range(kind.shape[0]):
            oa, ob, w = a[i] * n, b[i] * n, length[i] * n
            # slices, not V[oa + j]: with offset indexing into one array LLVM cannot vectorise
            # (measured 6× slower); slice views it can
            Va = V[oa:oa + w]
            if kind[i] == 1:
                for j in range(w):
                    Va[j] = -Va[j]
                continue
            Vb = V[ob:ob + w]
            c, s = cs[slot[i]], sn[slot[i]]
            for j in range(w):
                ua, ub = Va[j], Vb[j]
                Va[j] = c * ua - s * ub
                Vb[j] = s * ua + c * ub


def _backward(U: np.ndarray, A: np.ndarray, th: np.ndarray, grad: np.ndarray, kind: np.ndarray,
              a: np.ndarray, b: np.ndarray, slot: np.ndarray, length: np.ndarray) -> None:  # pragma: no cover
    """Gates reversed, in place: grad[slot] += ⟨A_b, U_a⟩ − ⟨A_a, U_b⟩ (U after the gate, A = ∂L/∂U
    there), then U ← GᵀU and A ← GᵀA (the pre-gate state, recovered exactly: G is orthogonal)."""
    nb, n = U.shape[0], U.shape[2]
    for t in range(nb):
        cs, sn = np.cos(th[t]), np.sin(th[t])
        V = U[t].reshape(U.shape[1] * n)
        X = A[t].reshape(A.shape[1] * n)
        for i in range(kind.shape[0] - 1, -1, -1):
            oa, ob, w = a[i] * n, b[i] * n, length[i] * n
            Va, Xa = V[oa:oa + w], X[oa:oa + w]
            if kind[i] == 1:
                for j in range(w):
                    Va[j] = -Va[j]
                    Xa[j] = -Xa[j]
                continue
            Vb, Xb = V[ob:ob + w], X[ob:ob + w]
            c, s = cs[slot[i]], sn[slot[i]]
            g = 0.0
            for j in range(w):
                ua, ub = Va[j], Vb[j]
                xa, xb = Xa[j], Xb[j]
                g += xb * ua - xa * ub
                Va[j] = c * ua + s * ub
                Vb[j] = c * ub - s * ua
                Xa[j] = c * xa + s * xb
                Xb[j] = c * xb - s * xa
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
