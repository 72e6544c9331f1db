"""QuIC numerics: exterior-power application equals the dense compounds, no subnormals ever,
and a forward that stays on the module's device (meta) without host syncs."""

from __future__ import annotations

import math

import pytest
import torch
from adapters_helpers import one_thread  # noqa: F401
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from quicq.adapters import QuICConfig, get_quicq_model


def _conv1d(d_in: int, d_out: int) -> nn.Module:
    from transformers.pytorch_utils import Conv1D

    return Conv1D(d_out, d_in)


def _module(kind: str, d: int) -> tuple[nn.Module, torch.Tensor]:
    if kind == "linear":
        return nn.Linear(d, d), torch.randn(3, 4, d)
    if kind == "conv1d":
        return _conv1d(d, d), torch.randn(3, 4, d)
    return nn.Conv2d(d, d, 3, padding=1), torch.randn(2, d, 4, 4)


@pytest.mark.parametrize("kind", ["linear", "conv1d", "conv2d"])
@pytest.mark.parametrize("rotate", ["output", "input"])
@pytest.mark.parametrize("orders", [(1,), (1, 2), (1, 2, 3), (3,)])
def test_exterior_matches_dense_compounds(kind, rotate, orders):
    """Outputs and every gradient of the exterior route equal the dense C_k route (float32)."""
    torch.manual_seed(0)
    d = 92 if orders != (3,) else 35  # n = 12 for {1,2}; n = 8 for {1,2,3}; n = 7 for (3,)
    results = []
    for mode in ("exterior", "dense"):
        torch.manual_seed(1)
        module, x = _module(kind, d)
        cfg = QuICConfig(target_modules=["0"], n_blocks=1, orders=orders, rotate=rotate, compound_mode=mode,
                         apply_mode="activations", init_weights=False)
        qm = get_quicq_model(nn.Sequential(module), cfg)
        y = qm(x)
        y.square().sum().backward()
        p = qm.quicq_layers()["0"].quic_params["default"]
        results.append((y.detach(), p.grad.clone()))
    (y1, g1), (y2, g2) = results
    torch.testing.assert_close(y1, y2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g1, g2, atol=1e-4, rtol=1e-4)


def _subnormal_count(t: torch.Tensor) -> int:
    if not t.is_floating_point() or t.numel() == 0:
        return 0
    tiny = torch.finfo(t.dtype).tiny
    return int(((t != 0) & (t.abs() < tiny)).sum())


#: Ops whose output is uninitialised memory (a kernel's output buffer), not a computed value.
_UNINITIALISED = {"empty", "new_empty", "empty_like", "empty_strided", "new_empty_strided",
                  # a tensor wrapped around memory made outside torch (the k = 2 kernel's np.empty
                  # buffers, filled by its compiled pack/unpack before any op reads them)
                  "lift_fresh"}


class _SubnormalCounter(TorchDispatchMode):
    """Counts subnormal entries in every floating tensor any op produces (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.__name__.split(".")[0] in _UNINITIALISED:  # garbage bits, overwritten before any read
            return out
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.count += _subnormal_count(t)
        return out


@pytest.mark.parametrize("start", ["sorting", "identity"])
def test_pyramid_training_at_width_384_never_makes_subnormals(start):
    """20 AdamW steps at lr 1e-2 on a width-384 pyramid (n = 27, orders {1,2}): no op in forward
    or backward produces a subnormal, and the flushing changes the outputs by < 1e-6.

    From the identity start (quicq 0.1's) far entries are products of up to n − 1 small sines
    and do underflow — without the flush this test fails there (6.9% of entries were subnormal
    after 3 steps). From the sorting-network start A(θ)·A₀ᵀ is a product of small rotations on
    distinct pairs, so every entry is O(angle change) and nothing underflows in the first place."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(384, 384), nn.Tanh(), nn.Linear(384, 8))
    qm = get_quicq_model(model, QuICConfig(target_modules=["0"], n_blocks=1, orders=(1, 2), start=start))
    layer = qm.quicq_layers()["0"]
    assert layer.quic_spec["default"].n == 27
    opt = torch.optim.AdamW([p for p in qm.parameters() if p.requires_grad], lr=1e-2)
    x, target = torch.randn(64, 384), torch.randn(64, 8)
    counter = _SubnormalCounter()
    with counter:
        for _ in range(20):
            opt.zero_grad()
            torch.nn.functional.mse_loss(qm(x), target).backward()
            opt.step()
    assert counter.count == 0
    rot = layer.applied_rotation()
    assert _subnormal_count(rot.A) == 0 and all(_subnormal_count(B) == 0 for B in layer.applied_blocks())
    # the same model with the unflushed float64 matrix gives the same output
    spec = layer.quic_spec["default"]
    with torch.no_grad():
        p = layer.quic_params["default"].double()
        ref = spec.param.reference()
        A = spec.param.circuit_matrix(p) @ (ref.t() if ref is not None else torch.eye(spec.n, dtype=p.dtype))
        from quicq.adapters.apply import Rotation, apply_rotation

        base = layer.get_base_layer()
        y_ref = apply_rotation((x.double() @ base.weight.double().t()), Rotation.from_matrix(A, spec.orders),
                               -1, 1, spec.block_size) + base.bias.double()
        torch.testing.assert_close(layer(x).double(), y_ref, atol=1e-6, rtol=1e-6)


def test_forward_on_meta_device_stays_there():
    """No host sync and no CPU fallback: on the meta device any .item()/bool() or CPU-only op raises."""
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
    qm = get_quicq_model(model, QuICConfig(target_modules=["0", "2"], n_blocks=2, orders=(1, 2)))
    y = qm(torch.randn(4, 64, device="meta"))
    assert y.device.type == "meta" and y.shape == (4, 64)


@pytest.mark.parametrize("blocks", [1, 3])
def test_k2_kernel_walks_ragged_token_chunks_exactly(blocks, monkeypatch):
    """Many tokens in chunks (the last one short) give the one-chunk result: output, ∂v and ∂U."""
    from quicq.engine import exterior

    assert exterior._token_chunk(38, 1024, 4) == 128 and exterior._token_chunk(27, 1024, 4) == 256  # ≲ 1 MiB
    n, tokens = 9, 203
    torch.manual_seed(0)
    U = torch.linalg.qr(torch.randn(blocks, n, n, dtype=torch.float64))[0]
    v = torch.randn(tokens, blocks, n * (n - 1) // 2, dtype=torch.float64)
    out = []
    for chunk in (10 ** 6, 32):  # one pass; seven passes, the last of 11 tokens
        monkeypatch.setattr(exterior, "_token_chunk", lambda n_, m, itemsize, c=chunk: min(m, c))
        Ui, vi = U.clone().requires_grad_(), v.clone().requires_grad_()
        y = exterior.exterior_apply(Ui, vi, 2)
        (y * torch.arange(y.numel(), dtype=y.dtype).view_as(y).sin()).sum().backward()
        out.append((y.detach(), vi.grad, Ui.grad))
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("blocks", [1, 3])
def test_k2_compiled_pack_equals_the_torch_path(dtype, blocks, monkeypatch):
    """The compiled pack/unpack (numba) and the torch scatter/gather path give the same output,
    ∂v and ∂U — on strided input (per-block U), ragged chunks and an expanded gradient (a sum)."""
    from quicq.engine import exterior

    if not exterior._jit.AVAILABLE:
        pytest.skip("numba not installed")
    monkeypatch.setattr(exterior, "_token_chunk", lambda n_, m, itemsize: min(m, 32))
    n, tokens = 11, 75
    torch.manual_seed(1)
    U = torch.linalg.qr(torch.randn(blocks, n, n, dtype=torch.float64))[0].to(dtype)
    v = torch.randn(tokens, blocks, n * (n - 1) // 2, dtype=dtype)
    res = []
    for compiled in (True, False):
        monkeypatch.setattr(exterior._jit, "AVAILABLE", compiled)
        for weighted in (True, False):  # a weighted loss, then a plain sum (expanded ones)
            Ui, vi = U.clone().requires_grad_(), v.clone().requires_grad_()
            y = exterior.exterior_apply(Ui, vi, 2)
            w = torch.arange(y.numel(), dtype=dtype).view_as(y).sin() if weighted else 1.0
            (y * w).sum().backward()
            res.append((y.detach(), vi.grad, Ui.grad))
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    for a, b in zip(res[:2], res[2:]):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, atol=tol, rtol=tol)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_empty_batches_pass_every_route(k):
    """Zero tokens (an empty batch) go through the exterior kernels and the layers without a
    zero-length chunk step: empty outputs, zero block gradients."""
    from quicq.engine.exterior import exterior_apply

    n, D = 6, math.comb(6, k)
    for blocks in (1, 2):
        U = torch.linalg.qr(torch.randn(blocks, n, n, dtype=torch.float64))[0].requires_grad_()
        v = torch.randn(0, blocks, D, dtype=torch.float64, requires_grad=True)
        y = exterior_apply(U, v, k)
        y.sum().backward()
        assert y.shape == (0, blocks, D) and U.grad is not None and not U.grad.any()
    for apply_mode in ("activations", "weight"):
        for compound_mode in ("exterior", "dense"):
            model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 4))
            qm = get_quicq_model(model, QuICConfig(target_modules=["0"], n_blocks=1, orders=(1, 2),
                                                   apply_mode=apply_mode, compound_mode=compound_mode))
            x = torch.randn(3, 0, 64, requires_grad=True)
            out = qm(x)
            out.sum().backward()
            assert out.shape == (3, 0, 4)
