"""A model forward computes every adapted layer's QuIC blocks / Pauli columns in one engine call
per parameterization or circuit (quicq.adapters.forward_batch), with exactly the per-layer
results and gradients."""

from __future__ import annotations

import torch
from torch import nn

import quicq.engine.pauli as pauli_engine
import quicq.adapters.parameterizations as charts
from quicq import QuantumPEFTConfig, QuICConfig, get_quicq_model


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 8),
                         nn.Tanh(), nn.Linear(8, 8))


def _adapted() -> nn.Module:
    qm = get_quicq_model(_model(), QuantumPEFTConfig(target_modules=["0", "2", "4", "6"], rank=2))
    with torch.no_grad():
        for name, p in qm.named_parameters():
            if "qpeft" in name:
                p.add_(0.3 * torch.randn_like(p))  # λ ≠ 0, so every angle gets a gradient
    return qm


def _count_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = pauli_engine._PauliColumns.apply

    def counting(th, circuit, K):
        calls.append(th.shape[0] if th.ndim > 1 else 1)
        return real(th, circuit, K)

    monkeypatch.setattr(pauli_engine._PauliColumns, "apply", counting)
    return calls


def test_model_forward_batches_columns_and_matches_per_layer(monkeypatch):
    x = torch.randn(5, 16)
    qm = _adapted()
    calls = _count_calls(monkeypatch)
    y = qm(x)
    # circuits: pauli(16) for U,V of "0","2" and V of "4" (5 angle sets); pauli(8) for U of "4", U,V of "6" (3)
    assert sorted(calls) == [3, 5]
    y.square().sum().backward()
    batched = {n: p.grad.clone() for n, p in qm.named_parameters() if p.grad is not None}

    calls.clear()
    qm.zero_grad()
    y2 = qm.base_model(x)  # the base model on its own: one engine call per circuit per layer
    assert len(calls) == 8 and all(c == 1 for c in calls)
    torch.testing.assert_close(y2, y, rtol=0, atol=1e-6)
    y2.square().sum().backward()
    for n, p in qm.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(p.grad, batched[n], rtol=1e-5, atol=1e-6)


def test_batch_is_cleared_after_forward_and_skips_sourced_adapters():
    qm = _adapted()
    qm(torch.randn(2, 16))
    layers = [m for m in qm.modules() if hasattr(m, "qpeft_spec")]
    assert layers and all(m.forward_batch is None for m in layers)
    # a layer with its own column source keeps using it inside a model forward
    first = layers[0]
    U, lam, V = first.factors()
    fixed = (torch.linalg.qr(torch.randn_like(U))[0], torch.linalg.qr(torch.randn_like(V))[0])
    first.set_block_source(fixed)
    with torch.no_grad():
        out = qm(torch.randn(2, 16))
    assert torch.isfinite(out).all()
    got = first.factors()
    torch.testing.assert_close(got[0], fixed[0])


def test_quic_blocks_batched_per_parameterization(monkeypatch):
    """Four QuIC layers, two widths: one matrix() call per parameterization object."""
    qm = get_quicq_model(_model(), QuICConfig(target_modules=["0", "2", "4", "6"], orders=(1, 2), n_blocks=1))
    with torch.no_grad():
        for name, p in qm.named_parameters():
            if "quic" in name:
                p.add_(0.3 * torch.randn_like(p))
    calls: list[int] = []
    real = charts.Parameterization.matrix

    def counting(self, params):
        calls.append(params.shape[0])
        return real(self, params)

    monkeypatch.setattr(charts.Parameterization, "matrix", counting)
    x = torch.randn(3, 16)
    y = qm(x)
    # widths 16, 16, 8, 8 → n = 5, 5, 3, 3: two parameterizations, two blocks each
    assert sorted(calls) == [2, 2]
    y.square().sum().backward()
    batched = {n: p.grad.clone() for n, p in qm.named_parameters() if p.grad is not None}
    calls.clear()
    qm.zero_grad()
    y2 = qm.base_model(x)
    assert calls == [1, 1, 1, 1]
    torch.testing.assert_close(y2, y, rtol=0, atol=1e-6)
    y2.square().sum().backward()
    for n, p in qm.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(p.grad, batched[n], rtol=1e-5, atol=1e-6)
