"""Activation memory: what autograd saves for a QuIC layer's backward, against LoRA r=8.

Counted exactly (unique storages passed to saved_tensors_hooks), not timed. Before the k = 1
slice was compacted, its view kept the whole layer output alive (11.0 MB vs LoRA's 8.3 MB here).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quicq import QuantumPEFTConfig, QuICConfig, get_quicq_model


def _saved_mb(model: nn.Module, x: torch.Tensor) -> float:
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(storages.values()) / 2**20


def _base(d: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, d), nn.GELU())


# the activations route (the auto choice rotates the weight at this width: see the next test)
@pytest.mark.parametrize("config", [
    QuICConfig(target_modules=["0"], orders=(1, 2), n_blocks=1, apply_mode="activations"),
    QuICConfig(target_modules=["0"], orders=(1, 2), n_blocks=1, rotate="input", apply_mode="activations"),
    QuICConfig(target_modules=["0"], orders=(1, 2), n_blocks=2, parameterization="butterfly",
               apply_mode="activations"),
    QuantumPEFTConfig(target_modules=["0"], rank=8),
], ids=["quic-k12", "quic-k12-input", "quic-butterfly-2blocks", "qpeft"])
def test_saved_activations_at_most_lora(config):
    peft = pytest.importorskip("peft")
    d = 256
    x = torch.randn(4, 128, d, requires_grad=True)
    lora = _saved_mb(peft.get_peft_model(_base(d), peft.LoraConfig(r=8, target_modules=["0"])), x)
    ours = _saved_mb(get_quicq_model(_base(d), config), x)
    assert ours <= 1.05 * lora, f"{ours:.2f} MB saved vs LoRA's {lora:.2f} MB"


@pytest.mark.parametrize("rotate", ["output", "input"])
def test_weight_route_saves_one_weight_copy_more_than_lora(rotate):
    # rotating the weight (auto's choice at d = 256 in training) saves x and W' = R·W for the
    # frozen matmul's backward: LoRA's saved tensors plus one out×in copy, nothing per token
    peft = pytest.importorskip("peft")
    d = 256
    x = torch.randn(4, 128, d, requires_grad=True)
    lora = _saved_mb(peft.get_peft_model(_base(d), peft.LoraConfig(r=8, target_modules=["0"])), x)
    qm = get_quicq_model(_base(d), QuICConfig(target_modules=["0"], orders=(1, 2), n_blocks=1, rotate=rotate))
    ours = _saved_mb(qm, x)
    modes = {m.last_apply_mode for m in qm.modules() if hasattr(m, "last_apply_mode")}
    assert modes == {"weight"}
    assert ours <= 1.05 * lora + d * d * 4 / 2**20, f"{ours:.2f} MB saved vs LoRA's {lora:.2f} MB"
