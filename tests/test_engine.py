"""Exact engine: unary/compound/sector routes against each other, det-of-minors, autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from quicq.circuits import (
    Circuit, CircuitError, Gate, basis_index, brick, butterfly, pauli, pauli_param_count, pyramid,
    sector_indices, subsets, x_layout,
)
from quicq.circuits.gates import shift_rule
from quicq.engine import (
    compound, pauli_columns, sector_block, sector_blocks, simulate, statevector_block, unary_block,
)

torch.manual_seed(1234)
RNG = np.random.default_rng(1234)


def layouts(n: int) -> list[Circuit]:
    out = [pyramid(n), x_layout(n), brick(n, 3), pyramid(n, gate="fbs")]
    if n & (n - 1) == 0:
        out += [butterfly(n), butterfly(n, gate="rbs")]
    return out


def det_minors(U: torch.Tensor, k: int) -> torch.Tensor:
    """Reference compound: one det per minor (like the QuIC paper's code)."""
    S = subsets(U.shape[-1], k)
    idx = torch.tensor(S, dtype=torch.long).reshape(len(S), k)
    if k == 0:
        return torch.ones(1, 1, dtype=U.dtype)
    minors = U[idx[:, None, :, None], idx[None, :, None, :]]
    return torch.linalg.det(minors)


def rand_angles(c: Circuit, *batch: int, dtype=torch.float64) -> torch.Tensor:
    return torch.rand(*batch, c.n_params, dtype=dtype) * 4 * math.pi - 2 * math.pi


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7, 8])
def test_unary_matches_statevector_and_is_orthogonal(n):
    for c in layouts(n):
        th = rand_angles(c)
        U = unary_block(c, th)
        ui = [basis_index([a], n) for a in range(n)]
        assert torch.allclose(U, statevector_block(c, th, ui, ui), atol=1e-12), c
        assert torch.allclose(U @ U.T, torch.eye(n, dtype=U.dtype), atol=1e-12)
        assert abs(torch.linalg.det(U).item() - 1) < 1e-10


def test_single_rbs_is_the_design_givens_matrix():
    c = Circuit(3, (Gate("rbs", (0, 2), 0),), 1)
    t = 0.37
    U = unary_block(c, torch.tensor([t], dtype=torch.float64))
    G = torch.eye(3, dtype=torch.float64)
    G[0, 0] = G[2, 2] = math.cos(t)
    G[2, 0], G[0, 2] = math.sin(t), -math.sin(t)
    assert torch.allclose(U, G, atol=1e-15)


@pytest.mark.parametrize("n,k", [(4, 2), (5, 2), (5, 3), (6, 3), (7, 2), (8, 3), (8, 4)])
def test_sector_blocks_match_statevector_and_det_minors(n, k):
    for c in layouts(n):
        th = rand_angles(c)
        B = sector_block(c, th, k)
        si = sector_indices(n, k)
        assert torch.allclose(B, statevector_block(c, th, si, si), atol=1e-12), c.meta
        if c.compound_exact:
            assert torch.allclose(B, det_minors(unary_block(c, th), k), atol=1e-12)


def test_nonadjacent_rbs_is_not_a_compound_but_fbs_is():
    th = rand_angles(butterfly(8))
    rbs, fbs = butterfly(8, gate="rbs"), butterfly(8, gate="fbs")
    assert not rbs.compound_exact and fbs.compound_exact
    assert torch.allclose(unary_block(rbs, th), unary_block(fbs, th))
    gap = (sector_block(rbs, th, 2) - compound(unary_block(rbs, th), 2)).abs().max()
    assert gap > 0.1  # the docs/conventions.md trap: plain RBS at distance > 1 is no compound
    assert torch.allclose(sector_block(fbs, th, 2), compound(unary_block(fbs, th), 2), atol=1e-12)


@pytest.mark.parametrize("n,k", [(5, 2), (6, 3), (7, 1), (6, 0), (6, 6)])
def test_compound_cauchy_binet_and_orthogonality(n, k):
    A = torch.randn(n, n, dtype=torch.float64)
    B = torch.randn(n, n, dtype=torch.float64)
    assert torch.allclose(compound(A @ B, k), compound(A, k) @ compound(B, k), atol=1e-9)
    Q, _ = torch.linalg.qr(A)
    Ck = compound(Q, k)
    assert torch.allclose(Ck @ Ck.T, torch.eye(Ck.shape[0], dtype=Q.dtype), atol=1e-12)
    assert torch.allclose(Ck, det_minors(Q, k), atol=1e-12)


def test_batched_float32_and_shapes():
    c = pyramid(6)
    th = rand_angles(c, 3, 4, dtype=torch.float32)
    blocks = sector_blocks(c, th, [2, 1])
    assert [b.shape for b in blocks] == [(3, 4, 6, 6), (3, 4, 15, 15)]
    assert all(b.dtype == torch.float32 for b in blocks)
    ref = sector_blocks(c, th[1, 2].double(), [1, 2])
    for b, r in zip(blocks, ref):
        assert torch.allclose(b[1, 2].double(), r, atol=1e-5)
    # non-compound route batched too
    cb = butterfly(4, gate="rbs")
    tb = rand_angles(cb, 5)
    Bb = sector_block(cb, tb, 2)
    assert Bb.shape == (5, 6, 6)
    assert torch.allclose(Bb[3], sector_block(cb, tb[3], 2), atol=1e-12)
    # pauli batched
    cp = pauli(12, 2)
    tp = rand_angles(cp, 2)
    Q = pauli_columns(cp, tp, 5)
    assert Q.shape == (2, 12, 5)
    assert torch.allclose(Q[1], pauli_columns(cp, tp[1], 5), atol=1e-12)


@pytest.mark.parametrize("circ,orders", [(pyramid(5), [1, 2]), (butterfly(4, gate="rbs"), [2]),
                                         (butterfly(8), [3]), (brick(5, 2), [1, 2])])
def test_autograd_matches_finite_differences(circ, orders):
    th = rand_angles(circ).requires_grad_(True)
    weights = [torch.randn(math.comb(circ.n_qubits, k), math.comb(circ.n_qubits, k),
                           dtype=torch.float64) for k in sorted(orders)]

    def f(t):
        return sum((w * b).sum() for w, b in zip(weights, sector_blocks(circ, t, orders)))

    assert torch.autograd.gradcheck(f, (th,), eps=1e-6, atol=1e-6)


def test_pauli_autograd_matches_finite_differences():
    c = pauli(12, 1)
    th = rand_angles(c).requires_grad_(True)
    w = torch.randn(12, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: (w * pauli_columns(c, t, 4)).sum(), (th,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("circ,k", [(pyramid(5), 1), (pyramid(5), 2), (butterfly(8), 3),
                                    (butterfly(4, gate="rbs"), 2), (pauli(8, 2), None), (pauli(6, 1), None)])
def test_block_level_parameter_shift_is_exact(circ, k):
    """docs/design.md#gradients: ∂B/∂θ = c·[B(θ+s) − B(θ−s)] with (s, c) from the gate's frequency."""
    th = rand_angles(circ)

    def block(t):
        return pauli_columns(circ, t, 3) if k is None else sector_block(circ, t, k)

    # The shift rule as used in a backward pass: a VJP against a random cotangent W.
    W = torch.randn_like(block(th))
    th_req = th.clone().requires_grad_(True)
    (W * block(th_req)).sum().backward()
    for slot in range(circ.n_params):
        name = circ.gates[circ.param_gates()[slot][0]].name
        s, fac = shift_rule(name)
        e = torch.zeros_like(th)
        e[slot] = s
        shifted = fac * (W * (block(th + e) - block(th - e))).sum()
        assert abs(shifted - th_req.grad[slot]) < 1e-11, (slot, name)


def test_all_zero_angles_give_identity():
    for c in layouts(8):
        assert torch.equal(unary_block(c, torch.zeros(c.n_params)), torch.eye(8))
        assert torch.allclose(sector_block(c, torch.zeros(c.n_params), 2), torch.eye(28))
    Q = pauli_columns(pauli(24, 2), torch.zeros(pauli_param_count(24, 2)), 4)
    assert torch.allclose(Q, torch.eye(24)[:, :4])


@pytest.mark.parametrize("N", [2, 3, 4, 6, 8, 12, 20, 64, 96, 256])
def test_pauli_columns_orthonormal_for_every_N(N):
    for L in (0, 1, 2):
        c = pauli(N, L)
        assert c.n_params == pauli_param_count(N, L)
        Q = pauli_columns(c, rand_angles(c), N)
        assert Q.shape == (N, N)
        assert torch.allclose(Q.T @ Q, torch.eye(N, dtype=Q.dtype), atol=1e-6)


def test_pauli_param_formula_for_powers_of_two():
    for q in range(1, 13):
        for L in range(5):
            assert pauli_param_count(2 ** q, L) == (2 * L + 1) * q - 2 * L


def test_pauli_circuit_stays_in_code_space():
    c = pauli(12, 2)
    from quicq.circuits import code_indices
    code = code_indices(12)
    states = simulate(c, rand_angles(c), code)
    outside = [i for i in range(1 << c.n_qubits) if i not in code]
    assert states[:, outside].abs().max() < 1e-12


def test_bad_input_errors_name_the_problem():
    c = pyramid(4)
    with pytest.raises(CircuitError, match=r"expected shape \(\.\.\., 6\)"):
        unary_block(c, torch.zeros(5))
    bad = torch.zeros(6)
    bad[2] = float("nan")
    with pytest.raises(CircuitError, match="non-finite angle.*index \\(2,\\)"):
        unary_block(c, bad)
    with pytest.raises(CircuitError, match="non-finite"):
        sector_block(c, np.array([0, 0, np.inf, 0, 0, 0.0]), 2)
    with pytest.raises(CircuitError, match="k=5 is impossible for n=4"):
        sector_block(c, torch.zeros(6), 5)
    with pytest.raises(CircuitError, match="repeat"):
        sector_blocks(c, torch.zeros(6), [1, 1])
    with pytest.raises(CircuitError, match="Hamming-weight-preserving"):
        unary_block(pauli(4, 1), torch.zeros(4))
    with pytest.raises(CircuitError, match="rank K"):
        pauli_columns(pauli(8, 1), torch.zeros(7), 9)
    with pytest.raises(CircuitError, match="square"):
        compound(torch.zeros(3, 4), 2)


def test_torch_layer_loop_matches_numpy_loop(monkeypatch):
    """The unary loop runs in numpy on CPU and in torch elsewhere (GPU); both must agree."""
    from quicq.engine import unary as un

    c = brick(7, 5).compose(Circuit(7, (Gate("z", (3,)),), 0))
    th = rand_angles(c, 3)
    W = torch.randn(3, 7, 7, dtype=torch.float64)

    def run():
        x = th.clone().requires_grad_(True)
        U = unary_block(c, x)
        (W * U).sum().backward()
        return U.detach(), x.grad

    U_np, g_np = run()
    monkeypatch.setattr(un, "_cpu_numpy", lambda t: False)
    U_t, g_t = run()
    assert torch.allclose(U_np, U_t, atol=1e-14) and torch.allclose(g_np, g_t, atol=1e-13)
