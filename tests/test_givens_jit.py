"""The compiled unary kernel (numba) equals the engine's numpy layer loop and its torch path —
values and angle gradients, float32 and float64, batched angles, Z gates, shared angle slots,
gates on distant rows — and lets NaN in an upstream gradient through."""

from __future__ import annotations

import pytest
import torch

from quicq.circuits import Circuit, Gate, brick, butterfly, pyramid
from quicq.engine import _givens_jit as jit
from quicq.engine import unary

_ON_CPU = unary._cpu_numpy  # the engine's own CPU test, before any monkeypatching
pytestmark = pytest.mark.skipif(not jit.AVAILABLE, reason="numba is not installed")


def _run(circ: Circuit, th: torch.Tensor, path: str, monkeypatch) -> tuple[torch.Tensor, torch.Tensor]:
    monkeypatch.setattr(jit, "AVAILABLE", path == "jit")
    monkeypatch.setattr(unary, "_cpu_numpy", (lambda t: False) if path == "torch" else _ON_CPU)
    t = th.clone().requires_grad_()
    U = unary.unary_block(circ, t)
    probe = torch.randn(U.shape, generator=torch.Generator().manual_seed(1), dtype=U.dtype)
    (U * probe).sum().backward()
    return U.detach(), t.grad


def _odd_circuit() -> Circuit:
    # a Z between layers, a reused slot (tied angles) and a long-range pair (FBS acts as RBS here)
    base = brick(6, 3)
    extra = (Gate("z", (2,)), Gate("fbs", (0, 5), 0), Gate("rbs", (1, 2), 3), Gate("z", (5,)))
    return Circuit(6, base.gates + extra, base.n_params)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("make", [lambda: pyramid(9), lambda: butterfly(8), _odd_circuit, lambda: pyramid(38)],
                         ids=["pyramid9", "butterfly8", "z+shared+far", "pyramid38"])
def test_jit_equals_numpy_and_torch_paths(make, dtype, monkeypatch) -> None:
    circ = make()
    th = torch.randn(2, 3, circ.n_params, dtype=dtype, generator=torch.Generator().manual_seed(0)) * 2
    got = {p: _run(circ, th, p, monkeypatch) for p in ("jit", "numpy", "torch")}
    tol = {"atol": 1e-12, "rtol": 1e-12} if dtype == torch.float64 else {"atol": 2e-5, "rtol": 1e-4}
    for other in ("numpy", "torch"):
        torch.testing.assert_close(got["jit"][0], got[other][0], **tol)
        torch.testing.assert_close(got["jit"][1], got[other][1], **tol)
    U = got["jit"][0].double()
    eye = torch.eye(circ.n_qubits, dtype=torch.float64).expand_as(U)
    torch.testing.assert_close(U @ U.transpose(-1, -2), eye, atol=1e-5, rtol=0)  # orthogonal


def test_nan_in_the_upstream_gradient_reaches_the_angles() -> None:
    circ = pyramid(5)
    th = torch.zeros(circ.n_params, requires_grad=True)
    U = unary.unary_block(circ, th)
    g = torch.zeros_like(U)
    g[0, 0] = float("nan")
    U.backward(g)
    assert torch.isnan(th.grad).any()
