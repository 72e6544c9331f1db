"""k-th compound matrices C_k(A)[S, T] = det A[S, T] over lexicographic k-subsets.

Computed by Laplace expansion along the first row of each minor, reusing C_{k−1}:
C_k[S, T] = Σ_j (−1)^j · A[s_0, t_j] · C_{k−1}[S∖s_0, T∖t_j]. That is k gathered
elementwise products per order — no determinant calls, no loop over entries — so it is
batched and differentiable, and far cheaper than one ``det`` per minor.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations

import torch

from quicq.circuits.ir import CircuitError


@lru_cache(maxsize=64)
def _laplace_index(n: int, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Index tensors for the Laplace step from order k−1 to k.

    Returns (first, drop, rank): ``first[S]`` = s_0; ``drop[S, j]`` = the element at position j
    of S; ``rank[S, j]`` = index of S without its j-th element among the (k−1)-subsets.
    """
    prev = {s: i for i, s in enumerate(combinations(range(n), k - 1))}
    subs = list(combinations(range(n), k))
    elem = torch.tensor(subs, dtype=torch.long).reshape(len(subs), k)
    rank = torch.tensor(
        [[prev[s[:j] + s[j + 1:]] for j in range(k)] for s in subs], dtype=torch.long
    ).reshape(len(subs), k)
    return elem[:, 0].contiguous(), elem, rank


def compound(A: torch.Tensor, k: int) -> torch.Tensor:
    """Return the k-th compound of a (..., n, n) matrix: shape (..., C(n,k), C(n,k)).

    Cauchy–Binet makes it multiplicative (C_k(AB) = C_k(A)C_k(B)) and it maps orthogonal
    matrices to orthogonal ones; both are tested.
    """
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise CircuitError(f"compound needs square (..., n, n) matrices, got shape {tuple(A.shape)}")
    n = A.shape[-1]
    if not isinstance(k, int) or not 0 <= k <= n:
        raise CircuitError(f"compound order k={k!r} is impossible for n={n}")
    if k == 0:
        return torch.ones(*A.shape[:-2], 1, 1, dtype=A.dtype, device=A.device)
    C = A
    for order in range(2, k + 1):
        first, elem, rank = (t.to(A.device) for t in _laplace_index(n, order))
        rows_a = A.index_select(-2, first)  # (..., D, n): row s_0 of A for every S
        out = None
        for j in range(order):
            a = rows_a.index_select(-1, elem[:, j])  # (..., D_S, D_T): A[s_0(S), t_j(T)]
            minor = C.index_select(-2, rank[:, 0]).index_select(-1, rank[:, j])
            term = a * minor
            out = term if out is None else (out - term if j % 2 else out + term)
        C = out
    return C
