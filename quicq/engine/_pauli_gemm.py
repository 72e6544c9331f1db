"""The Kronecker/GEMM stage engine of Pauli circuits (:func:`quicq.engine.pauli_columns` off CPU,
and the compiled row program's witness in the tests).

The circuit is simulated in its *logical* basis (:func:`quicq.circuits.pauli.pauli_structure`):
an m-level register (one axis of size m, its "RY" a word of Givens rotations between adjacent
levels) and p qubits (axes of size 2). The chain positions are split into a front group (the
register and the first qubits, size D1) and a back group (size D2 = N/D1, D1 + D2 minimal), and
the K columns are held as a (B, D1, K, D2) array. A sub-layer of the circuit is then

* its CZs: one precomputed ±1 diagonal (a broadcast multiply), and
* its rotations: the Kronecker product of the front positions' small rotations (one D1×D1
  matrix) and of the back positions' (D2×D2), applied as two plain GEMMs — the front one on the
  left of the (D1, K·D2) view, the back one on the right of the (D1·K, D2) view.

So an L-layer circuit costs 2L+1 rotation stages of two GEMMs each (N·K·(D1+D2) multiply-adds
per stage), the first stage being an outer product (the input columns are unit vectors).

The reverse pass is hand-written and storage-free: walking the stages backwards, the state
before a stage is recovered from the state after it with the transposed matrices (and the
self-inverse diagonal), applied together with the adjoint to one stacked (B, 2, D1, K, D2)
array. The angle gradients of a stage come from the output side: with M = Ḡ·Yᵀ contracted over
everything but one group (a D×D matrix, Ḡ the adjoint and Y the state after the stage),
∂L/∂θ = ⟨(∂R/∂θ)·Rᵀ, M⟩; for a qubit (∂R/∂θ)·Rᵀ = ½J on its axis, a constant, so one small GEMM
gives every qubit angle of a group; the register's come from its reduced m×m matrix. On CPU the
loop runs in numpy on the tensors' shared memory (dispatch-bound sizes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from quicq.circuits.ir import Circuit
from quicq.circuits.pauli import PauliStructure
from quicq.engine._pauli_program import cz_diagonal, structure_of


@dataclass(frozen=True)
class _Group:
    """The rotations of one stage on one group of consecutive positions."""

    mats: tuple[tuple[str, int], ...]  # per position: ("q", slot) | ("reg", 0) | ("id", dim)
    q_slots: np.ndarray  # slots of the rotated qubits
    q_gen: np.ndarray  # (D·D, n_q): ½J on each rotated qubit's axis, embedded in the group
    reg: tuple[tuple[int, ...], tuple[int, ...]] | None  # (levels, slots) of the register's word


@dataclass(frozen=True)
class _Stage:
    diag: np.ndarray | None  # ±1 of the stage's CZs, shaped like the state without (B, 2)
    groups: tuple[_Group | None, ...]  # None: the group is untouched in this stage


class _Plan:
    """Stages of one circuit for one grouping of its positions; constants cached per dtype."""

    def __init__(self, s: PauliStructure, bounds: tuple[int, ...]) -> None:
        self.N, self.m = s.N, s.m
        self.dims = tuple(math.prod(s.dims[a:b]) for a, b in zip(bounds[:-1], bounds[1:]))
        P = len(s.dims)
        stages = []
        for st in s.stages:
            diag = None
            if st.czs:
                d = cz_diagonal(st.czs, s.dims).reshape(self.dims)
                diag = np.expand_dims(d, -2)  # the K axis sits before the last group
            stages.append(_Stage(diag, tuple(_group(st, range(a, b), s) for a, b in zip(bounds[:-1], bounds[1:]))))
        assert bounds[0] == 0 and bounds[-1] == P
        self.stages = tuple(stages)
        self._consts: dict = {}

    def consts(self, xp: "_Xp"):
        """dtype/device copies of the diagonals, generators and identities."""
        key = xp.key
        if key not in self._consts:
            self._consts[key] = (
                [None if st.diag is None else xp.asarray(st.diag) for st in self.stages],
                [[None if g is None else (xp.asarray(g.q_gen), xp.index(g.q_slots)) for g in st.groups]
                 for st in self.stages],
                {d: xp.asarray(np.eye(d))[None] for d in set(self.dims) | {self.m, 2}},
            )
        return self._consts[key]


def _half_j_embedded(dims: list[int], i: int) -> np.ndarray:
    out = np.ones((1, 1))
    for k, d in enumerate(dims):
        out = np.kron(out, np.array([[0.0, -0.5], [0.5, 0.0]]) if k == i else np.eye(d))
    return out.reshape(-1)


def _group(stage, positions: range, s: PauliStructure) -> _Group | None:
    rot = {r.position: r for r in stage.rotations if r.position in positions}
    if not rot:
        return None
    dims = [s.dims[j] for j in positions]
    mats, slots, gens, reg = [], [], [], None
    for i, j in enumerate(positions):
        r = rot.get(j)
        if r is None:
            mats.append(("id", dims[i]))
        elif s.m > 1 and j == 0:
            mats.append(("reg", 0))
            reg = (r.levels, r.slots)
        else:
            mats.append(("q", r.slots[0]))
            slots.append(r.slots[0])
            gens.append(_half_j_embedded(dims, i))
    D = math.prod(dims)
    gen = np.array(gens).reshape(len(gens), D * D).T.copy()
    return _Group(tuple(mats), np.array(slots, dtype=np.int64), gen, reg)


#: cost model of a grouping (forward + backward, per stage, µs), fitted on N = 768, K = 8,
#: B ∈ {1, 24}: dispatch per group, multiply-adds per µs, and per small GEMM of a middle group
#: (broadcast over the leading axes)
_GROUP_US = 42.0
_MAC_PER_US = 7600.0
_SMALL_GEMM_US = 0.8
#: per entry of a group's D×D matrix and batch element (building it as a Kronecker product, and
#: the D²-long generator projection of its gradient): without it one 128×128 group looked
#: cheapest at N = 128 and ran 2.8–5.8× slower than (8, 16) (fitted on N = 128–1536, B ≤ 3)
_ENTRY_US = 0.005


@lru_cache(maxsize=512)
def _pauli_plan(circuit: Circuit, batch: int = 1, K: int = 8) -> _Plan:
    """The plan whose contiguous grouping of positions minimises the cost model: per stage,
    B·K·N·Σ D_i multiply-adds, a dispatch cost per group, and one small GEMM per leading index
    of each middle group — so small batches want 2 groups and large ones 3 (smaller factors)."""
    s = structure_of(circuit)
    P = len(s.dims)
    best, best_cost = (0, P), math.inf
    for mask in range(1 << (P - 1)):
        bounds = (0,) + tuple(i + 1 for i in range(P - 1) if mask >> i & 1) + (P,)
        sizes = [math.prod(s.dims[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        lead = sum(math.prod(sizes[:i]) for i in range(1, len(sizes) - 1))
        cost = (_GROUP_US * len(sizes) + batch * K * s.N * sum(sizes) / _MAC_PER_US
                + _SMALL_GEMM_US * batch * lead + _ENTRY_US * batch * sum(d * d for d in sizes))
        if cost < best_cost - 1e-9:
            best, best_cost = bounds, cost
    return _Plan(s, best)


# ----------------------------------------------------------------------------- array backend


class _Xp:
    """numpy on CPU float32/64 (low dispatch cost), torch elsewhere; the same few operations."""

    def __init__(self, like) -> None:
        self.np = isinstance(like, np.ndarray)
        self.mod = np if self.np else torch
        self.like = like
        self.key = like.dtype if self.np else (like.dtype, like.device)

    def asarray(self, a: np.ndarray):
        if self.np:
            return np.ascontiguousarray(a, dtype=self.like.dtype)
        return torch.as_tensor(a, dtype=self.like.dtype, device=self.like.device)

    def index(self, a: np.ndarray):
        return a if self.np else torch.as_tensor(a, device=self.like.device)

    def empty(self, shape):
        if self.np:
            return np.empty(shape, dtype=self.like.dtype)
        return torch.empty(shape, dtype=self.like.dtype, device=self.like.device)


def _local_mats(xp: _Xp, th):
    """(B, n_params, 2, 2) RY matrices [[c, −s], [s, c]] at half angles, and (c, s)."""
    c, s = xp.mod.cos(th * 0.5), xp.mod.sin(th * 0.5)
    R = xp.empty(tuple(th.shape) + (2, 2))
    R[..., 0, 0] = c
    R[..., 0, 1] = -s
    R[..., 1, 0] = s
    R[..., 1, 1] = c
    return R, c, s


def _register(xp: _Xp, eye, levels, slots, c, s):
    """R = G_last ⋯ G_first for the register's Givens word, (B, m, m)."""
    m = eye.shape[-1]
    R = xp.empty((c.shape[0], m, m))
    R[...] = eye
    for lv, sl in zip(levels, slots):
        ci, si = c[:, sl, None], s[:, sl, None]
        r0, r1 = R[:, lv, :], R[:, lv + 1, :]
        R[:, lv, :], R[:, lv + 1, :] = ci * r0 - si * r1, si * r0 + ci * r1
    return R


def _kron(mats):
    out = mats[0]
    for M in mats[1:]:
        a, d = out.shape[1], M.shape[1]
        out = out[:, :, None, :, None] * M[:, None, :, None, :]
        out = out.reshape(out.shape[0], a * d, a * d)
    return out


def _group_matrix(xp: _Xp, g: _Group | None, Rq, c, s, eyes, m: int):
    if g is None:
        return None
    mats = []
    for kind, v in g.mats:
        if kind == "q":
            mats.append(Rq[:, v])
        elif kind == "reg":
            mats.append(_register(xp, eyes[m], g.reg[0], g.reg[1], c, s))
        else:
            mats.append(eyes[v])
    return _kron(mats)


def _views(dims: tuple[int, ...], K: int, i: int, lead: int = 1):
    """(A, D_i, C) of the state viewed around group i (i < last); lead multiplies A."""
    A = lead * math.prod(dims[:i])
    C = math.prod(dims[i + 1:-1]) * K * dims[-1]
    return A, dims[i], C


def _apply(W, R, dims, K, lead: int, transpose: bool):
    """Mode product of every group's matrix (R[i] None: identity) on W (B, lead·…, D…, K, D_last)."""
    B = W.shape[0]
    shape = W.shape
    g = len(dims)
    for i, Ri in enumerate(R):
        if Ri is None:
            continue
        if i < g - 1:
            A, D, C = _views(dims, K, i, lead)
            M = Ri.swapaxes(1, 2) if transpose else Ri
            W = (M[:, None] @ W.reshape(B, A, D, C)).reshape(shape)
        else:
            M = Ri if transpose else Ri.swapaxes(1, 2)
            W = (W.reshape(B, -1, dims[-1]) @ M).reshape(shape)
    return W


def _forward(plan: _Plan, th, K: int):
    """Final state (B, D_1, …, D_{g−1}, K, D_g) and every stage's group matrices."""
    xp = _Xp(th)
    B = th.shape[0]
    dims = plan.dims
    g = len(dims)
    diags, _, eyes = plan.consts(xp)
    Rq, c, s = _local_mats(xp, th)
    mats = [[_group_matrix(xp, gr, Rq, c, s, eyes, plan.m) for gr in st.groups] for st in plan.stages]
    # stage 0 on the unit input columns: X[…a_i…, k, a_g] = ∏_i R_i[a_i, digit_i(k)]
    k = np.arange(K)
    X = None
    for i, Ri in enumerate(mats[0]):
        stride = math.prod(dims[i + 1:])
        digit = xp.index((k // stride) % dims[i])
        Ri = eyes[dims[i]] if Ri is None else Ri
        cols = Ri[:, :, digit]  # (B or 1, D_i, K)
        shape = [cols.shape[0]] + [1] * (g - 1) + [K, 1]
        if i < g - 1:
            shape[1 + i] = dims[i]
            term = cols.reshape(shape)
        else:
            shape[-1] = dims[i]
            term = cols.swapaxes(1, 2).reshape(shape)
        X = term if X is None else X * term
    for t in range(1, len(plan.stages)):
        if diags[t] is not None:
            X = X * diags[t]
        X = _apply(X, mats[t], dims, K, 1, transpose=False)
    return X, mats


def _stage_grad(xp: _Xp, gr: _Group | None, consts, M, grad, c, s, m: int) -> None:
    """Add ⟨(∂R/∂θ)Rᵀ, M⟩ of the group's angles into grad (B, n_params); M is (B, D, D)."""
    if gr is None:
        return
    B, D = M.shape[0], M.shape[-1]
    gen, slots = consts
    if len(gr.q_slots):
        grad[:, slots] += M.reshape(B, D * D) @ gen
    if gr.reg is not None:
        r = D // m
        Mr = M.reshape(B, m, r, m, r)
        Mr = Mr.diagonal(0, 2, 4).sum(-1) if r > 1 else Mr.reshape(B, m, m)
        Ma = Mr - Mr.swapaxes(1, 2)
        levels, slots_r = gr.reg
        # (∂R/∂φ_i) Rᵀ = P_i (½J_{l_i}) P_iᵀ, P_i = G_last ⋯ G_{i+1}; ⟨·, M⟩ = ½ p_{l+1}ᵀ (M − Mᵀ) p_l
        Pm = xp.empty((B, m, m))
        Pm[...] = xp.asarray(np.eye(m))
        for lv, sl in reversed(list(zip(levels, slots_r))):
            p0, p1 = Pm[:, :, lv], Pm[:, :, lv + 1]
            grad[:, sl] += 0.5 * ((Ma @ p0[:, :, None])[:, :, 0] * p1).sum(1)
            ci, si = c[:, sl, None], s[:, sl, None]
            Pm[:, :, lv], Pm[:, :, lv + 1] = ci * p0 + si * p1, -si * p0 + ci * p1  # P ← P·G_i


def _backward(plan: _Plan, th, Y, G, mats):
    """∂L/∂θ (B, n_params) from the final state Y and the adjoint G (both in the state layout)."""
    xp = _Xp(th)
    B = Y.shape[0]
    K = Y.shape[-2]
    dims = plan.dims
    g = len(dims)
    diags, gconsts, _ = plan.consts(xp)
    _, c, s = _local_mats(xp, th)
    grad = xp.empty(tuple(th.shape))
    grad[...] = 0
    W = xp.empty((B, 2) + tuple(Y.shape[1:]))
    W[:, 0], W[:, 1] = Y, G
    for t in range(len(plan.stages) - 1, -1, -1):
        st = plan.stages[t]
        Yt, Gt = W[:, 0], W[:, 1]
        for i, gr in enumerate(st.groups):
            if gr is None:
                continue
            if i < g - 1:
                A, D, C = _views(dims, K, i)
                Gv, Yv = Gt.reshape(B, A, D, C), Yt.reshape(B, A, D, C)
                M = Gv @ Yv.swapaxes(2, 3)
                M = M[:, 0] if A == 1 else M.sum(1)
            else:
                Gv, Yv = Gt.reshape(B, -1, dims[-1]), Yt.reshape(B, -1, dims[-1])
                M = Gv.swapaxes(1, 2) @ Yv
            _stage_grad(xp, gr, gconsts[t][i], M, grad, c, s, plan.m)
        if t == 0:
            break
        W = _apply(W, mats[t], dims, K, 2, transpose=True)
        if diags[t] is not None:
            W = W * diags[t]
    return grad


def _bucket(n: int) -> int:
    """Round down to a power of two, so a few plans (groupings) serve every call."""
    return 1 << max(0, int(n).bit_length() - 1)
