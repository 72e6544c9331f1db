"""The Pauli engines (compiled row program and Kronecker/GEMM stages) against the generic
statevector engine (the reference)."""

import numpy as np
import pytest
import torch

from quicq.circuits import CircuitError, code_indices, pauli
from quicq.circuits.pauli import pauli_param_count
from quicq.engine import pauli_columns, statevector_block
from quicq.engine._pauli_gemm import _pauli_plan
from quicq.engine.pauli_init import START_RULES, participation_ratio, pauli_start_angles


@pytest.fixture(params=["compiled", "gemm"])
def engine(request, monkeypatch):
    """Run the test on each engine: the compiled row program (CPU default) and the GEMM stages."""
    from quicq.engine import _givens_jit as jit

    if request.param == "compiled" and not jit.AVAILABLE:
        pytest.skip("numba not installed")
    monkeypatch.setattr(jit, "AVAILABLE", request.param == "compiled")
    return request.param


def _reference(c, th, K):
    code = code_indices(int(c.meta["N"]))
    return statevector_block(c, th, code[:K], code)


@pytest.mark.parametrize("register", ["chain", "full"])
@pytest.mark.parametrize("N", [2, 4, 8, 16, 64, 256, 6, 12, 24, 96, 384, 3, 5, 10])
def test_values_and_gradients_match_the_statevector_engine(N, register, engine):
    rng = np.random.default_rng(N)
    for L in (0, 1, 2, 3):
        c = pauli(N, L, register)
        for K in sorted({1, min(3, N), N}):
            th = torch.tensor(rng.uniform(-np.pi, np.pi, (2, c.n_params)), requires_grad=True)
            A, B = pauli_columns(c, th, K), _reference(c, th, K)
            assert A.shape == (2, N, K)
            assert torch.allclose(A, B, atol=1e-12, rtol=0)
            w = torch.randn_like(A)
            gA, = torch.autograd.grad((A * w).sum(), th)
            gB, = torch.autograd.grad((B * w).sum(), th)
            assert torch.allclose(gA, gB, atol=1e-12, rtol=0)


@pytest.mark.parametrize("N", [768, 1536])
def test_large_widths_match(N, engine):
    c = pauli(N, 1)
    th = torch.rand(c.n_params, dtype=torch.float64, requires_grad=True)
    A, B = pauli_columns(c, th, 8), _reference(c, th, 8)
    assert torch.allclose(A, B, atol=1e-12, rtol=0)
    w = torch.randn_like(A)
    assert torch.allclose(torch.autograd.grad((A * w).sum(), th)[0], torch.autograd.grad((B * w).sum(), th)[0],
                          atol=1e-12, rtol=0)


def test_gradcheck_and_every_grouping(engine):
    c = pauli(24, 2, "full")
    th = torch.rand(3, c.n_params, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: pauli_columns(c, t, 5), (th,), eps=1e-6, atol=1e-7)
    # batch 1 and batch 64 choose different groupings of the positions; both are exact
    big = torch.rand(64, pauli(768, 1).n_params, dtype=torch.float64)
    assert _pauli_plan(pauli(768, 1), 64, 8).dims != _pauli_plan(pauli(768, 1), 1, 8).dims
    ref = _reference(pauli(768, 1), big[:2], 8)
    assert torch.allclose(pauli_columns(pauli(768, 1), big, 8)[:2], ref, atol=1e-12)


def test_float32_batched_shapes_and_orthonormality():
    c = pauli(384, 1)
    th = torch.rand(2, 3, c.n_params, requires_grad=True)
    Q = pauli_columns(c, th, 8)
    assert Q.dtype == torch.float32 and Q.shape == (2, 3, 384, 8)
    eye = torch.eye(8).expand(2, 3, 8, 8)
    assert torch.allclose(Q.transpose(-1, -2) @ Q, eye, atol=1e-5)
    assert torch.allclose(Q, _reference(c, th.double(), 8).float(), atol=1e-5)
    Q.square().mul(torch.arange(384.0)[:, None]).sum().backward()
    assert th.grad.shape == th.shape and torch.isfinite(th.grad).all()
    assert torch.allclose(pauli_columns(c, th[1, 2], 8), Q[1, 2], atol=1e-6)


def test_full_register_parameter_count_and_code_space():
    assert pauli_param_count(256, 2, "full") == pauli_param_count(256, 2) == 5 * 8 - 4
    # N = 12 = 3·4: register rotated L+1 times, 3 angles instead of 2 each time
    assert pauli_param_count(12, 1, "full") - pauli_param_count(12, 1, "chain") == 2
    c = pauli(12, 1, "full")
    th = torch.rand(c.n_params, dtype=torch.float64)
    from quicq.engine import simulate
    states = simulate(c, th, code_indices(12)[:4])
    code = torch.tensor(code_indices(12))
    assert torch.allclose(states[:, code].square().sum(-1), torch.ones(4, dtype=torch.float64))
    with pytest.raises(CircuitError, match="register"):
        pauli(12, 1, "pyramid")


def test_start_rules():
    c = pauli(384, 1)
    for rule in START_RULES:
        th = pauli_start_angles(c, rule, torch.Generator().manual_seed(0))
        assert th.shape == (c.n_params,)
    U = pauli_columns(c, pauli_start_angles(c, "spread"), 8)
    assert torch.allclose(participation_ratio(U), torch.full((8,), 384.0), rtol=1e-4)
    assert torch.allclose(participation_ratio(pauli_columns(c, pauli_start_angles(c, "zero"), 8)), torch.ones(8))
    with pytest.raises(CircuitError, match="start rule"):
        pauli_start_angles(c, "xavier")


def test_param_groups():
    from quicq.engine.pauli_init import qpeft_param_groups
    a, b, c = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    groups = qpeft_param_groups([("x.qpeft_theta_u.default", a), ("x.qpeft_lambda.default", b), ("head", c)],
                                lr_theta=1e-2, lr_lambda=1e-1)
    assert groups[0]["params"] == [a] and groups[1]["params"] == [b] and groups[1]["lr"] == 1e-1
    with pytest.raises(CircuitError, match="no trainable"):
        qpeft_param_groups([("head", c)])


def test_pauli_benchmark_smoke():
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("bench_engine", Path(__file__).parent.parent / "benchmarks" / "engine.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.pauli_benchmark(quick=True)
    assert len(out["rows"]) == 2 and all(r["new_cpu_ms"] > 0 for r in out["rows"])


@pytest.mark.parametrize("N", [128, 144, 512])
def test_small_registers_are_not_one_dense_group(N):
    # one D×D group costs D² per entry to build and to project its gradient: at N = 128 the
    # single 128×128 group ran 2.8–5.8× slower than (8, 16), which the cost model must see
    for batch in (1, 2):
        assert max(_pauli_plan(pauli(N, 1), batch, 8).dims) < N


@pytest.mark.parametrize("N", [768, 96, 6])
def test_compiled_program_runs_are_exact_merges(N):
    """The row program's runs never reach into their partner run, and running the unmerged
    program (every run split into single rows) gives the same columns."""
    from quicq.circuits.pauli import pauli_structure
    from quicq.engine import _givens_jit as jit
    from quicq.engine._pauli_program import pauli_program

    if not jit.AVAILABLE:
        pytest.skip("numba not installed")
    kind, a, b, slot, length = pauli_program(pauli_structure(N, 2))
    rot = kind == 0
    assert (np.abs(b[rot] - a[rot]) >= length[rot]).all() and length.max() > 1
    single = [np.repeat(x, length) for x in (kind, a, b, slot)]
    offs = np.concatenate([np.arange(n) for n in length])
    single[1] = single[1] + offs
    single[2] = np.where(single[0] == 0, single[2] + offs, 0)
    single.append(np.ones_like(single[0]))
    th = np.random.default_rng(0).uniform(-3, 3, (2, pauli(N, 2).n_params))
    outs = []
    for prog in ((kind, a, b, slot, length), tuple(np.ascontiguousarray(x) for x in single)):
        U = np.zeros((2, N, 4))
        U[:, np.arange(4), np.arange(4)] = 1.0
        jit.givens_forward(U, th, *prog)
        outs.append(U)
    assert np.abs(outs[0] - outs[1]).max() < 1e-13


@pytest.mark.parametrize("lead", [(0,), (2, 0)])
def test_an_empty_batch_of_angles(lead, engine):
    """No angle sets in: empty columns out, an empty gradient back (no reshape ambiguity)."""
    c = pauli(12, 1)
    th = torch.randn(*lead, c.n_params, requires_grad=True)
    Q = pauli_columns(c, th, 3)
    Q.sum().backward()
    assert Q.shape == (*lead, 12, 3) and th.grad.shape == th.shape
