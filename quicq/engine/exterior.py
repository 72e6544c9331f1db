"""Compounds applied as exterior powers: C_k(U)·v without forming the C(n,k)×C(n,k) matrix.

With weight-k coordinates v indexed by lexicographic k-subsets, put v into the antisymmetric
k-tensor X (X[σ(S)] = sign(σ)·v_S). Then C_k(U)·v is the antisymmetric tensor U^{⊗k}·X read
back on sorted index tuples. For k = 2 this is U·X·Uᵀ: 2n³ multiply-adds per vector instead of
C(n,2)² ≈ n⁴/4 (4.75× fewer at n = 38). General k: k mode products, k·n^(k+1) instead of C(n,k)².

k = 2 has a hand-written backward that saves only the input coordinates (C(n,2) per vector),
not the n×n intermediates autograd would keep: with G the antisymmetric matrix of the output
gradient, ∂L/∂v = upper(Uᵀ·G·U) (the same kernel with Uᵀ) and ∂L/∂U = −Σ_t G_t·U·X_t.
On CPU the moves between token-major coordinates and the antisymmetric matrices are one compiled
pass each (:mod:`._exterior_jit`); elsewhere torch scatters and gathers.
:func:`exterior_cost` / :func:`dense_cost` are the cost model the layers use to choose.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import combinations, permutations

import numpy as np
import torch

from quicq.engine import _exterior_jit as _jit

__all__ = ["dense_cost", "exterior_apply", "exterior_cheaper", "exterior_cost", "flush_tiny", "tiny_for"]

#: Entries smaller than this (in absolute value) are set to zero in blocks, per the dtype the
#: blocks are used in. Products of many small sines underflow into subnormals, which cost
#: microcode assists on x86 (one GEMM 90× slower). Applying C_3 multiplies three entries of A,
#: so the threshold t must keep t³ above the smallest normal: 2⁻⁴⁰ ≈ 9e-13 for 32-bit and
#: narrower types (t³ ≈ 7e-37 > 1.2e-38), 1e-100 for float64. Dropping entries below 2⁻⁴⁰ of
#: an orthogonal matrix changes a float32 result by far less than its rounding (6e-8).
TINY = {torch.float64: 1e-100}
TINY_DEFAULT = 2.0 ** -40


def tiny_for(dtype: torch.dtype) -> float:
    """The flush threshold for blocks used in ``dtype``."""
    return TINY.get(dtype, TINY_DEFAULT)


class _Flush(torch.autograd.Function):
    """x ↦ x with |x| < threshold set to 0. Backward passes the gradient straight through (the map
    moves no entry by more than the threshold, so its useful derivative is the identity; masking would
    kill the gradient of every entry that is exactly zero at the start, e.g. off-diagonals of
    the identity), with true subnormals in the gradient zeroed."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, threshold: float) -> torch.Tensor:  # type: ignore[override]
        return torch.where(x.abs() >= threshold, x, torch.zeros((), dtype=x.dtype, device=x.device))

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        tiny = torch.finfo(g.dtype).tiny
        return torch.where(g.abs() >= tiny, g, torch.zeros((), dtype=g.dtype, device=g.device)), None


def flush_tiny(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Zero the entries of ``x`` below the threshold for ``dtype`` (default: x's own dtype), and
    true subnormals in its gradient."""
    return _Flush.apply(x, tiny_for(dtype or x.dtype))


def dense_cost(n: int, k: int) -> int:
    """Multiply-adds per vector of applying a dense C_k(U)."""
    return math.comb(n, k) ** 2


def exterior_cost(n: int, k: int) -> int:
    """Multiply-adds per vector of the exterior route, plus a memory-traffic term for the
    scatter into / gather from the n^k tensor (measured: about 3 passes over it)."""
    if k == 1:
        return n * n
    return k * n ** (k + 1) + 3 * n ** k


def exterior_cheaper(n: int, k: int) -> bool:
    """True when applying C_k(U) as an exterior power beats forming and applying C_k(U).

    Multiply-adds only, which is not the whole story at small n. Measured on a QuIC {1,2} layer
    (1024 tokens, forward + backward, one thread, AMD EPYC): the dense route — one large GEMM at
    near-peak speed — was as fast or up to 1.2× faster up to n ≈ 29 (MiniLM's n = 27: 1.17×),
    the exterior route faster from n = 30 (n = 38: 1.9×). ``auto`` still takes the exterior
    route there because forming C_2(U) saves four C(n,2)² gathers for its backward (0.8 MB per
    block at n = 22: saved activations 2.35 MB vs LoRA's 1.28 MB in tests/test_saved_memory.py,
    against 1.28 with the exterior route); ``compound_mode="dense"`` trades that memory for the
    speed."""
    return k >= 2 and exterior_cost(n, k) < dense_cost(n, k)


@lru_cache(maxsize=64)
def _pair_arrays(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``a``, columns ``b`` of each pair a < b in lexicographic order (the weight-2 basis),
    and their flat upper indices a·n + b: the one definition both paths index by."""
    a, b = np.triu_indices(n, 1)  # row-major upper triangle = lexicographic pairs
    return a.astype(np.int64), b.astype(np.int64), (a * n + b).astype(np.int64)


@lru_cache(maxsize=64)
def _pair_index(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices a·n + b (``up``) and b·n + a (``low``) of each pair, as torch index tensors."""
    a, b, up = _pair_arrays(n)
    return torch.from_numpy(up.copy()), torch.from_numpy(b * n + a)


def _antisym(v: torch.Tensor, up: torch.Tensor, low: torch.Tensor, n: int) -> torch.Tensor:
    """Pair-major coordinates (B, D, M) → antisymmetric matrices (B, n, n, M), tokens last.

    Tokens are the innermost axis, so filling X copies whole contiguous rows (in-place
    ``index_copy_`` on rows: 10× faster here than a gather, and no autograd is involved — the
    caller is a custom Function)."""
    B, _, M = v.shape
    X = v.new_zeros(B, n * n, M)
    X.index_copy_(1, up, v)
    X.index_copy_(1, low, -v)
    return X.view(B, n, n, M)


#: Bytes of one n×n×tokens working tensor the k = 2 kernel aims to keep cache-resident.
_CHUNK_BYTES = 1 << 20


def _token_chunk(n: int, m: int, itemsize: int) -> int:
    """Tokens per pass of the k = 2 kernel: a power of two with n²·chunk·itemsize ≲ 1 MiB.

    Every intermediate (X, U·X, U·X·Uᵀ and the backward's G) is n² numbers per token; for the
    whole sequence at once they spill out of cache (n = 38, 4096 tokens: 24 MB each) and the
    kernel runs memory-bound — measured 2.9× slower than in chunks of 128 there, 1.3× at 1024
    tokens. Below 32 tokens the matmuls get too thin to pay for the loop."""
    c = 1 << max(5, (_CHUNK_BYTES // max(1, n * n * itemsize)).bit_length() - 1)
    return max(1, min(m, c))  # ≥ 1: an empty batch (m = 0) walks no chunk instead of a zero step


def _use_jit(t: torch.Tensor) -> bool:
    """The compiled pack/unpack applies: numba present, CPU, float32/float64."""
    return _jit.AVAILABLE and t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)


_NP_DTYPE = {torch.float32: np.float32, torch.float64: np.float64}


def _empty(like: torch.Tensor, *shape: int) -> tuple[torch.Tensor, np.ndarray | None]:
    """An uninitialised buffer the kernels fill completely, and (on the compiled path) its numpy
    array. The array is kept rather than asked for later: ``Tensor.numpy()`` is a ``detach`` op,
    which would hand the garbage bits to any dispatch mode watching as if they were a result."""
    if _use_jit(like):
        a = np.empty(shape, dtype=_NP_DTYPE[like.dtype])
        return torch.from_numpy(a), a
    return like.new_empty(*shape), None


def _pack(v: torch.Tensor, s: int, m: int, n: int, up: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """Tokens s … s+m of token-major v (B, M, D) as antisymmetric matrices (B, n·n, m), tokens last.

    One compiled pass on CPU (:mod:`._exterior_jit`); elsewhere a transpose copy and
    :func:`_antisym` (six passes over the data, ~60% of the kernel's time at n = 38)."""
    B = v.shape[0]
    if _use_jit(v):
        X, Xa = _empty(v, B, n * n, m)
        a, b, _ = _pair_arrays(n)
        _jit.pack(v.detach().numpy(), s, a, b, Xa)
        return X
    return _antisym(v[:, s:s + m].transpose(1, 2).contiguous(), up, low, n).view(B, n * n, m)


def _unpack(Z: torch.Tensor, n: int, up: torch.Tensor, out: tuple[torch.Tensor, np.ndarray | None],
            s: int) -> None:
    """out[:, s:s+m] = the upper triangles of Z (B, n·n, m), back to token-major rows; ``out`` as
    :func:`_empty` returns it."""
    out, arr = out
    if arr is not None and _use_jit(Z):
        _jit.unpack(Z.numpy(), _pair_arrays(n)[2], arr, s)
    else:
        out[:, s:s + Z.shape[-1]] = Z.index_select(1, up).transpose(1, 2)


def _sandwich_packed(U: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """U·X·Uᵀ per token for packed X (B, n·n, m) → (B, n·n, m).

    Two GEMMs with the tokens inside the wide dimension: Y = U·X as (n×n)·(n×n·m), then
    Z[c] = U·Y[c] batched over c, so Z[c, d] = (U X Uᵀ)[c, d]."""
    B, nn_, m = X.shape
    n = U.shape[-1]
    Y = torch.matmul(U, X.view(B, n, n * m)).view(B, n, n, m)  # (U X)[c, b, t]
    return torch.matmul(U.unsqueeze(1), Y).view(B, nn_, m)  # Σ_b U[d, b]·(U X)[c, b, t]


class _Exterior2(torch.autograd.Function):
    """C_2(U)·v for token-major v (B, M, D) → (B, M, D); saves only U and v.

    The kernels want antisymmetric (B, n·n, m) operands (tokens innermost). Both directions walk
    the tokens in cache-sized chunks (:func:`_token_chunk`): each chunk is packed, pushed through
    the two GEMMs and unpacked while it is still in cache, and the U gradient is accumulated
    chunk by chunk."""

    @staticmethod
    def forward(ctx, U: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        n = U.shape[-1]
        up, low = (t.to(v.device) for t in _pair_index(n))
        ctx.save_for_backward(U, v)
        ctx.idx = (up, low)
        B, M, D = v.shape
        out = _empty(v, B, M, D)
        Ud = U.detach()
        c = _token_chunk(n, M, v.element_size())
        for s in range(0, M, c):
            m = min(c, M - s)
            _unpack(_sandwich_packed(Ud, _pack(v, s, m, n, up, low)), n, up, out, s)
        return out[0]

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        U, v = ctx.saved_tensors
        up, low = ctx.idx
        B, M, D = v.shape
        n = U.shape[-1]
        want_v, want_U = ctx.needs_input_grad[1], ctx.needs_input_grad[0]
        gv = _empty(v, B, M, D) if want_v else None  # (tensor, array)
        gU = torch.zeros_like(U) if want_U else None
        U = U.detach()
        Ut = U.transpose(-1, -2).contiguous() if want_v else None
        if 0 in g.stride():  # an expanded gradient (e.g. of a sum): give the kernels real rows
            g = g.contiguous()
        c = _token_chunk(n, M, v.element_size())
        for s in range(0, M, c):
            m = min(c, M - s)
            G = _pack(g, s, m, n, up, low)  # (B, c·a, t), built once for both gradients
            if want_v:  # ∂L/∂v = upper(Uᵀ G U): the forward kernel with Uᵀ
                _unpack(_sandwich_packed(Ut, G), n, up, gv, s)
            if want_U:
                # L = ½Σ_t⟨G_t, U X_t Uᵀ⟩, so ∂L/∂U = ½Σ_t (G_t U X_tᵀ + G_tᵀ U X_t) = −Σ_t G_t·(U X_t)
                # (G, X antisymmetric). With Y[c] = (U X)[c, :, :] that is Σ_c G[c]·Y[c]ᵀ, since
                # G[c, a, t] = −G[a, c, t]: a bmm over c, tokens as the long inner dimension.
                X = _pack(v, s, m, n, up, low)
                Y = torch.matmul(U, X.view(B, n, n * m)).view(B, n, n, m)
                gU += torch.matmul(G.view(B, n, n, m), Y.transpose(-1, -2)).sum(1)
        return gU, (gv[0] if gv is not None else None)


def _perm_sign(p: tuple[int, ...]) -> int:
    s, seen = 1, list(p)
    for i in range(len(seen)):
        while seen[i] != i:
            j = seen[i]
            seen[i], seen[j] = seen[j], seen[i]
            s = -s
    return s


@lru_cache(maxsize=32)
def _tensor_index(n: int, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scatter (flat index, source subset, sign) of every permuted subset, and the gather index."""
    subs = list(combinations(range(n), k))
    perms = list(permutations(range(k)))
    flat, src, sign = [], [], []
    for i, s in enumerate(subs):
        for p in perms:
            idx = 0
            for j in p:
                idx = idx * n + s[j]
            flat.append(idx)
            src.append(i)
            sign.append(_perm_sign(p))
    gather = []
    for s in subs:
        idx = 0
        for q in s:
            idx = idx * n + q
        gather.append(idx)
    return (torch.tensor(flat), torch.tensor(src), torch.tensor(sign, dtype=torch.float64), torch.tensor(gather))


def _exterior_k(U: torch.Tensor, v: torch.Tensor, k: int) -> torch.Tensor:
    """General k by autograd: scatter to the n^k antisymmetric tensor, k mode products, gather."""
    B, M, _ = v.shape
    n = U.shape[-1]
    flat, src, sign, gather = (t.to(v.device) for t in _tensor_index(n, k))
    vals = v.index_select(-1, src) * sign.to(v.dtype)
    T = v.new_zeros(B, M, n ** k).index_copy(-1, flat, vals)
    T = T.view(B, M * n ** (k - 1), n)
    Ut = U.transpose(-1, -2)
    for _ in range(k):  # apply U on the last mode, then rotate that mode to the front
        T = torch.matmul(T, Ut).view(B, M, n ** (k - 1), n).transpose(-1, -2).reshape(B, M * n ** (k - 1), n)
    return T.view(B, M, n ** k).index_select(-1, gather)


def _compact(v: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``v``, copied when autograd would save it for B's gradient and it is a small view.

    A saved view keeps its whole base alive: the k = 1 slice (n of d columns) of a layer output
    would hold the full output (3 MB per layer at 1024 tokens × 768) where its own copy takes
    n/d of that."""
    if not (B.requires_grad and torch.is_grad_enabled()):
        return v
    held = v.untyped_storage().nbytes() // max(1, v.element_size())
    return v.clone(memory_format=torch.contiguous_format) if 2 * v.numel() <= held else v


def block_matmul(v: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """v (…, N, D) ↦ B_i·v_i per block i; ``B`` (N', D, D) with N' ∈ {1, N}.

    Blocks are the batch of one bmm over (N, tokens, D): broadcasting ``v.unsqueeze(-2) @ Bᵀ``
    instead would expand B to one copy per token (128 MB for 1024 tokens × 32 blocks of 32)."""
    N, D = v.shape[-2], v.shape[-1]
    v = _compact(v, B)
    if B.shape[0] == 1:
        return v @ B[0].t()
    lead = v.shape[:-2]
    vb = v.reshape(-1, N, D).transpose(0, 1)  # (N, tokens, D)
    out = torch.bmm(vb, B.transpose(-1, -2))
    return out.transpose(0, 1).reshape(*lead, N, D)


def exterior_apply(U: torch.Tensor, v: torch.Tensor, k: int, *, transpose: bool = False) -> torch.Tensor:
    """C_k(U)·v (or C_k(U)ᵀ·v) per block, never forming C_k(U).

    ``U``: (N', n, n) with N' ∈ {1, N}; ``v``: (…, N, C(n,k)) weight-k coordinates over
    lexicographic k-subsets. Returns the same shape as ``v``. Differentiable in both.
    """
    if transpose:
        U = U.transpose(-1, -2)
    N, D = v.shape[-2], v.shape[-1]
    n = U.shape[-1]
    if D != math.comb(n, k):
        raise ValueError(f"weight-{k} coordinates of n={n} have size {math.comb(n, k)}, got {D}")
    lead = v.shape[:-2]
    if k == 1:
        return block_matmul(v, U)
    M = math.prod(lead)
    U = U.contiguous()
    if k == 2:  # token-major (B, tokens, D) views; the Function transposes
        if U.shape[0] == 1:
            return _Exterior2.apply(U, v.reshape(1, M * N, D)).reshape(*lead, N, D)
        out = _Exterior2.apply(U, v.reshape(M, N, D).transpose(0, 1))
        return out.transpose(0, 1).reshape(*lead, N, D)
    if U.shape[0] == 1:  # one U for every block: all blocks are one batch
        vb = v.reshape(1, M * N, D)
    else:
        vb = v.reshape(M, N, D).transpose(0, 1)
    out = _exterior_k(U, vb.contiguous(), k)
    if U.shape[0] == 1:
        return out.reshape(*lead, N, D)
    return out.transpose(0, 1).reshape(*lead, N, D)
