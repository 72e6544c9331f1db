"""Hybrid autograd bridge: parameter shift, SPSA and surrogate gradients through backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quicq.circuits import Circuit, Gate, pauli, pyramid
from quicq.circuits.ir import CircuitError
from quicq.engine import pauli_columns, sector_blocks
from quicq.hardware import (
    AerBackend,
    BlockTomography,
    ExactBackend,
    HardwareBlock,
    PauliTomography,
    shift_table,
)

torch.manual_seed(3)


class CountingExact(ExactBackend):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.jobs = 0

    def _run(self, tasks, shots):
        self.jobs += 1
        return super()._run(tasks, shots)


def _loss_fn(shapes, batch=(), quadratic=True):
    """A fixed random loss of the blocks (linear + quadratic terms)."""
    W = [torch.randn(*batch, *s, dtype=torch.float64) for s in shapes]
    V = [torch.randn(*batch, *s, dtype=torch.float64) for s in shapes]

    def loss(blocks):
        out = sum((w * b).sum() for w, b in zip(W, blocks))
        if quadratic:
            out = out + sum((v * b**2).sum() for v, b in zip(V, blocks))
        return out

    return loss


def _engine_grad(fn, th, loss):
    x = th.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(fn(x)), x)
    return g


@pytest.mark.parametrize("method", ["derived", "direct"])
def test_parameter_shift_through_aer_statevector_equals_autograd(method):
    c = pyramid(4)
    th = torch.randn(2, c.n_params, dtype=torch.float64, requires_grad=True)
    loss = _loss_fn([(4, 4), (6, 6)], (2,))
    hb = HardwareBlock(c, AerBackend(None), (1, 2), method=method)
    blocks = hb(th)
    ref = sector_blocks(c, th.detach(), (1, 2))
    for b, r in zip(blocks, ref):
        assert torch.allclose(b, r, atol=1e-10, rtol=0)
    (g,) = torch.autograd.grad(loss(blocks), th)
    g_ref = _engine_grad(lambda x: sector_blocks(c, x, (1, 2)), th, loss)
    assert torch.allclose(g, g_ref, atol=1e-8, rtol=0)


def test_pauli_parameter_shift_uses_the_ry_rule():
    c = pauli(8, 1)
    assert set(shift_table(c)) == {(np.pi, 0.25)}
    th = torch.randn(c.n_params, dtype=torch.float64, requires_grad=True)
    loss = _loss_fn([(8, 3)])
    hb = HardwareBlock(c, ExactBackend(), columns=3)
    (g,) = torch.autograd.grad(loss(hb(th)), th)
    g_ref = _engine_grad(lambda x: (pauli_columns(c, x, 3),), th, loss)
    assert torch.allclose(g, g_ref, atol=1e-8, rtol=0)


def test_one_backend_call_per_forward_and_per_backward():
    c = pyramid(4)
    be = CountingExact()
    hb = HardwareBlock(c, be, (1, 2), method="direct")
    th = torch.randn(3, c.n_params, dtype=torch.float64, requires_grad=True)
    blocks = hb(th)
    assert be.jobs == 1
    _loss_fn([(4, 4), (6, 6)], (3,))(blocks).backward()
    assert be.jobs == 2  # 2·P·B shifted bindings of every tomography circuit in one job
    assert hb.last_result.circuit_labels == hb.gradient_tomography.labels
    assert len(hb.gradient_tomography.circuits) == len(hb.tomography.circuits) - 4 - 6  # no Z circuits


def test_surrogate_gradient_equals_engine_gradient_exactly():
    c = pyramid(4)
    th = torch.randn(c.n_params, dtype=torch.float64, requires_grad=True)
    loss = _loss_fn([(4, 4), (6, 6)], quadratic=False)  # dL/dB does not depend on B
    hb = HardwareBlock(c, AerBackend(200, seed=1), (1, 2), gradient="surrogate")
    blocks = hb(th)
    assert not torch.allclose(blocks[0], sector_blocks(c, th.detach(), (1,))[0], atol=1e-3)  # shot noise
    (g,) = torch.autograd.grad(loss(blocks), th)
    g_ref = _engine_grad(lambda x: sector_blocks(c, x, (1, 2)), th, loss)
    assert torch.equal(g, g_ref) or torch.allclose(g, g_ref, atol=1e-13, rtol=0)


def test_parameter_shift_with_shots_is_unbiased():
    """R repeats as R identical bindings in one call: the mean gradient is within 4.5 SE of exact."""
    c = pyramid(4)
    R = 200
    th0 = torch.randn(c.n_params, dtype=torch.float64)
    th = th0.repeat(R, 1).requires_grad_(True)
    W = [torch.randn(4, 4, dtype=torch.float64), torch.randn(6, 6, dtype=torch.float64)]

    def loss(blocks):  # the same linear loss for every repeat
        return sum((w * b).sum() for w, b in zip(W, blocks))

    g_ref = _engine_grad(lambda x: sector_blocks(c, x, (1, 2)), th0, loss)
    # the signed X-basis estimator without projection: linear in the frequencies, exactly unbiased
    plan = BlockTomography(c, (1, 2), magnitudes=False, project=False)
    hb = HardwareBlock(None, ExactBackend(seed=4), tomography=plan, shots=500)
    (G,) = torch.autograd.grad(loss(hb(th)), th)
    bias, sd = G.mean(0) - g_ref, G.std(0)
    assert torch.all(bias.abs() < 4.5 * sd / np.sqrt(R)), bias / (sd / np.sqrt(R))
    # the default: forward X+Z combined; gradients from the signed estimate, projected
    hb = HardwareBlock(c, ExactBackend(seed=4), (1, 2), shots=500)
    assert not hb.gradient_tomography.magnitudes and hb.gradient_tomography.project
    (G,) = torch.autograd.grad(loss(hb(th)), th)
    bias_p, sd_p = G.mean(0) - g_ref, G.std(0)
    assert torch.all(bias_p.abs() < 0.3 * sd_p), bias_p / sd_p  # O(1/shots) projection bias
    assert sd_p.mean() < 0.8 * sd.mean()  # the projection lowers the spread


def test_forward_default_with_unbiased_gradient_plan():
    c = pyramid(3)
    th = torch.randn(c.n_params, dtype=torch.float64, requires_grad=True)
    hb = HardwareBlock(c, ExactBackend(), (1,),
                       gradient_tomography=BlockTomography(c, (1,), magnitudes=False, project=False))
    loss = _loss_fn([(3, 3)])
    (g,) = torch.autograd.grad(loss(hb(th)), th)
    assert torch.allclose(g, _engine_grad(lambda x: sector_blocks(c, x, (1,)), th, loss), atol=1e-8)
    with pytest.raises(ValueError, match="same circuit and keys"):
        HardwareBlock(c, ExactBackend(), (1,), gradient_tomography=BlockTomography(c, (1, 2)))


def test_spsa_aligns_with_the_true_gradient():
    c = pyramid(4)
    R = 64
    th0 = torch.randn(c.n_params, dtype=torch.float64)
    th = th0.repeat(R, 1).requires_grad_(True)
    W = [torch.randn(4, 4, dtype=torch.float64), torch.randn(6, 6, dtype=torch.float64)]

    def loss(blocks):
        return sum((w * b).sum() for w, b in zip(W, blocks))

    g_ref = _engine_grad(lambda x: sector_blocks(c, x, (1, 2)), th0, loss)
    hb = HardwareBlock(c, ExactBackend(2000, seed=1), (1, 2), gradient="spsa", seed=5, spsa_eps=0.15)
    (G,) = torch.autograd.grad(loss(hb(th)), th)
    cos = torch.nn.functional.cosine_similarity(G, g_ref.expand_as(G), dim=-1)
    assert cos.mean() > 0.2  # each single estimate is a noisy projection …
    mean_cos = torch.nn.functional.cosine_similarity(G.mean(0), g_ref, dim=0)
    assert mean_cos > 0.8  # … and their expectation points along the true gradient
    # seeded: the same seed gives the same directions
    hb2 = HardwareBlock(c, ExactBackend(2000, seed=1), (1, 2), gradient="spsa", seed=5, spsa_eps=0.15)
    (G2,) = torch.autograd.grad(loss(hb2(th)), th)
    assert torch.equal(G, G2)


def test_shapes_dtypes_and_errors():
    c = pyramid(3)
    hb = HardwareBlock(c, ExactBackend(), (1, 2))
    th = torch.randn(2, 3, c.n_params, dtype=torch.float32, requires_grad=True)
    b1, b2 = hb(th)
    assert b1.shape == (2, 3, 3, 3) and b2.shape == (2, 3, 3, 3) and b1.dtype == torch.float32
    (b1.sum() + b2.sum()).backward()
    assert th.grad.shape == th.shape and th.grad.dtype == torch.float32
    shared = Circuit(3, (Gate("rbs", (0, 1), 0), Gate("rbs", (1, 2), 0)), 1)
    with pytest.raises(CircuitError, match="slot 0 is read by gates"):
        HardwareBlock(shared, ExactBackend(), (1,))
    HardwareBlock(shared, ExactBackend(), (1,), gradient="spsa")  # fine without the shift rule
    with pytest.raises(ValueError, match="columns=K"):
        HardwareBlock(pauli(8, 1), ExactBackend())
    with pytest.raises(ValueError, match="gradient must be"):
        HardwareBlock(c, ExactBackend(), gradient="finite_difference")
    with pytest.raises(CircuitError, match="shape"):
        hb(torch.zeros(4))
    assert isinstance(HardwareBlock(None, ExactBackend(), tomography=PauliTomography(pauli(8, 1), 2)).keys, tuple)
