"""Both sides of one layer, y = R_out·W·R_in·x + b, as two chained QuIC adapters.

The accuracy harness's ``quic-pyramid-both`` method is exactly this recipe; these tests pin what
docs/design.md promises of it: identity at the start, the dense two-sided product, gradients to
both circuits, merge/unmerge and a save/load round trip.
"""

from __future__ import annotations

import torch
from adapters_helpers import mlp

from quicq.adapters import QuICConfig, QuicqModel, get_quicq_model


def two_sided(seed: int = 0) -> QuicqModel:
    cfg = dict(target_modules=["2"], n_blocks=1, orders=(1, 2))
    qm = get_quicq_model(mlp(seed), QuICConfig(**cfg, rotate="output"))
    qm.add_adapter("input", QuICConfig(**cfg, rotate="input"))
    qm.set_adapter(["default", "input"])
    return qm


def perturb(qm: QuicqModel, scale: float = 0.3) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in qm.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def test_starts_at_the_base_model_and_trains_both_circuits():
    x = torch.randn(5, 16)
    qm = two_sided()
    with qm.disable_adapter():
        base = qm(x)
    assert torch.allclose(qm(x), base, atol=1e-6)
    trainable = {n for n, p in qm.named_parameters() if p.requires_grad}
    assert any(".default" in n for n in trainable) and any(".input" in n for n in trainable)
    qm(x).square().sum().backward()
    grads = {n: p.grad for n, p in qm.named_parameters() if p.requires_grad}
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values())


def test_equals_the_dense_two_sided_product_and_merges():
    qm = two_sided()
    perturb(qm)
    layer = qm.quicq_layers()["2"]
    lin = layer.get_base_layer()
    R_out, R_in = layer.rotation("default"), layer.rotation("input")
    h = torch.relu(torch.nn.functional.linear(torch.randn(7, 16), qm.base_model[0].weight, qm.base_model[0].bias))
    want = h @ (R_out @ lin.weight @ R_in).t() + lin.bias
    got = layer(h)
    assert torch.allclose(got, want, atol=1e-5)
    w0 = lin.weight.detach().clone()
    layer.merge()
    assert torch.allclose(lin.weight, R_out @ w0 @ R_in, atol=1e-5)
    layer.unmerge()
    assert torch.allclose(lin.weight, w0, atol=1e-5)


def test_round_trips_through_save_and_load(tmp_path):
    x = torch.randn(4, 16)
    qm = two_sided()
    perturb(qm)
    want = qm(x)
    qm.save_pretrained(tmp_path)
    fresh = QuicqModel.from_pretrained(mlp(), tmp_path)
    fresh.load_adapter(tmp_path / "input", "input")
    fresh.set_adapter(["default", "input"])
    assert torch.equal(fresh(x), want)
