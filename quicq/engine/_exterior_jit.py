"""Compiled CPU data movement of the k = 2 exterior kernel (C_2(U)·v as U·X·Uᵀ).

The two GEMMs of U·X·Uᵀ want the antisymmetric matrices X tokens-innermost, (n, n, tokens),
while a layer's activations are token-major, (tokens, C(n,2)). In torch the way in is a transpose
copy, a negation, a zero fill and two row scatters, and the way out a row gather and a transpose
copy: six passes over the data, measured at ~60% of the kernel's time at n = 38 (the GEMMs were
the other 40%). Here each direction is one pass: :func:`pack` writes X straight from the
token-major coordinates (+v above the diagonal, −v below, 0 on it) and :func:`unpack` reads the
upper triangle of a result straight into token-major rows. numba for the same reason as the
Givens loop (``quicq.engine._givens_jit``): no compiler needed on the user's machine.

Arrays are numpy views of the tensors (any strides in, contiguous out); float32 or float64.
If numba is missing, :data:`AVAILABLE` is False and the kernel keeps its torch path.
"""

from __future__ import annotations

import numpy as np

from quicq.engine._givens_jit import AVAILABLE, numba

__all__ = ["AVAILABLE", "pack", "unpack"]


def _pack(v: np.ndarray, start: int, ia: np.ndarray, ib: np.ndarray, X: np.ndarray) -> None:  # pragma: no cover
    """X[b, i·n + j, t] = v[b, start + t, p] for the p-th pair (i, j), −v for (j, i), 0 on i = j;
    v (B, M, D) token-major, X (B, n·n, m) with m tokens from ``start``."""
    nb, nn, m = X.shape
    n = int(np.sqrt(nn) + 0.5)
    for b in range(nb):
        for i in range(n):
            for t in range(m):
                X[b, i * n + i, t] = 0.0
        for p in range(ia.shape[0]):
            up, low = ia[p] * n + ib[p], ib[p] * n + ia[p]
            for t in range(m):
                x = v[b, start + t, p]
                X[b, up, t] = x
                X[b, low, t] = -x


def _unpack(Z: np.ndarray, up: np.ndarray, out: np.ndarray, start: int) -> None:  # pragma: no cover
    """out[b, start + t, p] = Z[b, up[p], t]: the upper triangle, back to token-major rows."""
    nb, _, m = Z.shape
    for b in range(nb):
        for t in range(m):
            for p in range(up.shape[0]):
                out[b, start + t, p] = Z[b, up[p], t]


if AVAILABLE:
    pack = numba.njit(cache=True, nogil=True)(_pack)
    unpack = numba.njit(cache=True, nogil=True)(_unpack)
else:  # pragma: no cover
    pack = unpack = None
