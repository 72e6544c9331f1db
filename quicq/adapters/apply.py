"""Applying a QuIC rotation blockdiag(⊕_k C_k(A_i) ⊕ I) along one axis, never forming it.

A rotation is described by a :class:`Rotation`: per order k either the n×n matrices A (N', n, n),
applied as the k-th exterior power (:func:`quicq.engine.exterior.exterior_apply`; k = 1 is a
plain matmul), or dense (N', C(n,k), C(n,k)) blocks (what a hardware block source hands over,
or what the cost model picks for small n). The same code rotates activations (tokens along the
other axes) and weights (the weight's other axis as tokens).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from quicq.engine import compound
from quicq.engine.exterior import block_matmul, dense_cost, exterior_apply, exterior_cheaper, exterior_cost, flush_tiny

__all__ = ["EXTERIOR_MAC_WEIGHT", "Rotation", "apply_blocks", "apply_rotation", "rotation_cost", "rotation_time"]


@dataclass
class Rotation:
    """One adapter's rotation of every block: sectors in ``orders``, each as ``A`` or dense.

    ``A``: (N', n, n) or None; ``dense[i]``: (N', D_i, D_i) or None for order ``orders[i]``.
    Exactly one of ``A`` / ``dense[i]`` is used per order: dense when given.
    """

    orders: tuple[int, ...]
    n: int
    A: torch.Tensor | None = None
    dense: list[torch.Tensor | None] | None = None

    @classmethod
    def from_matrix(cls, A: torch.Tensor, orders: Sequence[int], *, mode: str = "auto") -> Rotation:
        """Sectors of A; ``mode`` "auto" forms C_k(A) only where that is cheaper per vector."""
        n = A.shape[-1]
        dense: list[torch.Tensor | None] = []
        for k in orders:
            use_dense = k >= 2 and (mode == "dense" or (mode == "auto" and not exterior_cheaper(n, k)))
            dense.append(flush_tiny(compound(A, k)) if use_dense else None)  # cancellations can underflow
        return cls(tuple(orders), n, A, dense)

    @classmethod
    def from_blocks(cls, blocks: Sequence[torch.Tensor], orders: Sequence[int], n: int) -> Rotation:
        return cls(tuple(orders), n, None, list(blocks))

    def blocks(self) -> list[torch.Tensor]:
        """Dense per-order blocks (forms the compounds: for merging, inspection and export)."""
        out = []
        for i, k in enumerate(self.orders):
            B = self.dense[i] if self.dense and self.dense[i] is not None else None
            if B is None:
                assert self.A is not None
                B = self.A if k == 1 else flush_tiny(compound(self.A, k))
            out.append(B)
        return out

    def to(self, dtype: torch.dtype) -> Rotation:
        return Rotation(self.orders, self.n, None if self.A is None else self.A.to(dtype),
                        None if self.dense is None else [None if B is None else B.to(dtype) for B in self.dense])


#: Relative cost of one multiply-add of the k ≥ 2 exterior kernel against one of a large GEMM.
#: The exterior route runs as n-wide batched matmuls plus scatter/gather copies: measured about
#: 10 GMAC/s against 29–35 GMAC/s for the frozen layer's own 1024 × d × d matmul (n = 27–44,
#: d = 384–1024, one thread, AMD EPYC). Dense C_k blocks and k = 1 are GEMMs (weight 1).
EXTERIOR_MAC_WEIGHT = 3.0


def rotation_time(n: int, orders: Sequence[int], mode: str = "auto",
                  exterior_weight: float = EXTERIOR_MAC_WEIGHT) -> float:
    """Multiply-adds per rotated vector per block in GEMM-equivalents: the exterior terms weighted by
    ``exterior_weight``. What the layers compare when they choose between rotating the activations
    and rotating the weight (the latter adds one full-size GEMM, dL/dW')."""
    total = 0.0
    for k in orders:
        if k == 1:
            total += n * n
        elif mode == "dense" or (mode == "auto" and not exterior_cheaper(n, k)):
            total += dense_cost(n, k)
        else:
            total += exterior_weight * exterior_cost(n, k)
    return total


def rotation_cost(n: int, orders: Sequence[int], mode: str = "auto") -> int:
    """Plain multiply-adds per rotated vector per block (the cost model of :meth:`Rotation.from_matrix`)."""
    return int(rotation_time(n, orders, mode, exterior_weight=1.0))


def _dense_apply(v: torch.Tensor, B: torch.Tensor, transpose: bool) -> torch.Tensor:
    """v (…, N, D) ↦ B_i v_i per block (Bᵀ with ``transpose``); B (N', D, D)."""
    return block_matmul(v, B.transpose(-1, -2) if transpose else B)


def apply_rotation(t: torch.Tensor, rot: Rotation, axis: int, n_blocks: int, block_size: int,
                   *, transpose: bool = False) -> torch.Tensor:
    """Rotate ``t`` along ``axis`` (size d ≥ n_blocks·block_size) by the rotation (or its inverse).

    The axis is viewed as (N, b) blocks plus an untouched tail; within each block the first
    Σ C(n,k) coordinates are rotated sector by sector, the rest is identity.
    """
    t = t.movedim(axis, -1)
    lead, d = t.shape[:-1], t.shape[-1]
    used = n_blocks * block_size
    head, *tail = t.split([used, d - used], dim=-1) if used < d else (t,)
    head = head.reshape(*lead, n_blocks, block_size)
    dims = [B.shape[-1] if B is not None else math.comb(rot.n, k)
            for k, B in zip(rot.orders, rot.dense or [None] * len(rot.orders))]
    rest = block_size - sum(dims)
    # split, not slicing: its backward is one cat, where each slice's backward would be a
    # zero-filled copy of the whole head
    pieces = head.split(dims + ([rest] if rest else []), dim=-1)
    parts = []
    for i, (k, v) in enumerate(zip(rot.orders, pieces)):
        B = rot.dense[i] if rot.dense else None
        if B is not None:
            parts.append(_dense_apply(v, B, transpose))
        else:
            assert rot.A is not None
            parts.append(exterior_apply(rot.A, v, k, transpose=transpose))
    if rest:
        parts.append(pieces[-1])
    out = (parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)).reshape(*lead, used)
    if tail:
        out = torch.cat([out, tail[0]], dim=-1)
    return out.movedim(-1, axis)


def apply_blocks(t: torch.Tensor, blocks: Sequence[torch.Tensor], axis: int, n_blocks: int, block_size: int,
                 *, transpose: bool = False) -> torch.Tensor:
    """Rotate ``t`` along ``axis`` by dense per-order blocks (N', D_k, D_k), in sorted order."""
    rot = Rotation(tuple(range(len(blocks))), 0, None, list(blocks))  # orders unused when dense
    return apply_rotation(t, rot, axis, n_blocks, block_size, transpose=transpose)
