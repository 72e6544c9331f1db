"""Device and dtype agnosticism: adapters follow the module's device and dtype.

* meta device: forward + backward run without data, so nothing in them reads a value on the
  host (``.item()``, ``bool(tensor)``, numpy) — the CPU-only stand-in for a CUDA sync detector;
* bf16 / fp16 activations: the output keeps the activation dtype, adapter parameters and block
  math stay float32, and the result matches a float32 run within the low precision's rounding;
* CUDA, when present: the same forward on the GPU matches the CPU (skipped without a GPU).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quicq import QuantumPEFTConfig, QuICConfig, get_quicq_model

CONFIGS = {
    "quic-k12-exterior": QuICConfig(target_modules=["0", "2"], orders=(1, 2), n_blocks=1),
    "quic-k12-dense": QuICConfig(target_modules=["0", "2"], orders=(1, 2), n_blocks=1, compound_mode="dense"),
    "quic-k1-blocks": QuICConfig(target_modules=["0", "2"], orders=(1,), block_size=8),
    "quic-input-share": QuICConfig(target_modules=["0", "2"], orders=(1, 2), n_blocks=2, rotate="input",
                                   block_share=True),
    "quic-cayley": QuICConfig(target_modules=["0", "2"], orders=(1, 2), n_blocks=1, parameterization="cayley"),
    "qpeft": QuantumPEFTConfig(target_modules=["0", "2"], rank=3),
}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(24, 32), nn.Tanh(), nn.Linear(32, 24))


def _perturb(qm: nn.Module) -> None:
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for _, p in qm.named_parameters():
            if p.requires_grad:
                p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_meta_forward_backward_reads_nothing_on_host(name):
    qm = get_quicq_model(_model().to("meta"), CONFIGS[name])
    y = qm(torch.randn(4, 24, device="meta"))
    assert y.device.type == "meta" and y.shape == (4, 24)
    y.sum().backward()
    grads = [p.grad for p in qm.parameters() if p.requires_grad]
    assert grads and all(g is not None and g.device.type == "meta" for g in grads)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_low_precision_activations(name, dtype):
    ref = get_quicq_model(_model(), CONFIGS[name])
    _perturb(ref)
    low = get_quicq_model(_model().to(dtype), CONFIGS[name])
    low.load_state_dict({k: v.to(low.state_dict()[k].dtype) for k, v in ref.state_dict().items()})
    trainable = [p for p in low.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)  # adapter math in fp32

    x = torch.randn(6, 24)
    y_ref = ref(x)
    y = low(x.to(dtype))
    assert y.dtype == dtype
    err = float((y.float() - y_ref).abs().max().detach() / y_ref.abs().max().detach())
    assert err < 3e-2, f"{name} in {dtype}: relative error {err:.3g}"
    y.float().square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_cuda_matches_cpu(name):  # pragma: no cover - no GPU in CI
    cpu = get_quicq_model(_model(), CONFIGS[name])
    _perturb(cpu)
    gpu = get_quicq_model(_model(), CONFIGS[name])
    gpu.load_state_dict(cpu.state_dict())
    gpu.to("cuda")
    x = torch.randn(5, 24)
    torch.testing.assert_close(gpu(x.cuda()).cpu(), cpu(x), rtol=1e-4, atol=1e-5)
