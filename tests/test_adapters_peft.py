"""peft interop: QUIC / QUANTUM_PEFT as registered peft methods, and OFT adapters imported as circuits."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from adapters_helpers import (  # noqa: F401
    bert_cls,
    mlp,
    one_thread,
    randomize_adapters,
    same_state,
    snapshot,
)
from torch import nn

peft = pytest.importorskip("peft")

from peft import OFTConfig, PeftModel, get_peft_model
from peft.utils import PeftType

import quicq.adapters.peft_interop as interop
from quicq.adapters import AdapterError, QuICLayer
from quicq.circuits import pyramid
from quicq.engine import unary_block


def test_peft_type_members_behave_like_native_ones():
    for name in ("QUIC", "QUANTUM_PEFT"):
        m = PeftType[name]
        assert m is PeftType(name) is getattr(PeftType, name) and m == name and m.value == name
        assert m in list(PeftType) and isinstance(m, PeftType) and isinstance(m, str)
        assert pickle.loads(pickle.dumps(m)) is m and json.dumps({"t": m}) == f'{{"t": "{name}"}}'
    n = len(PeftType)
    interop.register_with_peft()  # idempotent
    interop.add_peft_type("QUIC")
    assert len(PeftType) == n and PeftType.LORA == "LORA" and PeftType("OFT") is PeftType.OFT
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING

    assert PEFT_TYPE_TO_CONFIG_MAPPING[PeftType.QUIC] is interop.QuICPeftConfig
    assert PEFT_TYPE_TO_TUNER_MAPPING[PeftType.QUANTUM_PEFT] is interop.QuantumPEFTPeftModel


@pytest.mark.parametrize("config", [
    interop.QuICPeftConfig(target_modules=["0", "2"], n_blocks=2, parameterization="butterfly"),
    interop.QuICPeftConfig(target_modules=["2"], block_size=8, rotate="input", orders=[1]),
    interop.QuantumPEFTPeftConfig(target_modules=["0", "2", "4"], rank=2, n_layers=2),
], ids=["quic", "quic-input", "qpeft"])
def test_peft_model_save_load_merge_roundtrip(tmp_path, config):
    x = torch.randn(6, 16)
    ref = mlp()(x)
    pm = get_peft_model(mlp(), config)
    assert isinstance(pm, PeftModel) and (pm(x) - ref).abs().max() <= 1e-6
    trainable = {n for n, p in pm.named_parameters() if p.requires_grad}
    assert trainable and all(("quic_params" in n or "qpeft_" in n) and n.endswith(".default") for n in trainable)
    opt = torch.optim.Adam([p for p in pm.parameters() if p.requires_grad], lr=5e-2)
    for _ in range(5):  # train a little through the PeftModel
        loss = (pm(x) - 1.0).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    y = pm(x).detach()
    assert (y - ref).abs().max() > 1e-3
    pm.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["peft_type"] == config.peft_type.value
    loaded = PeftModel.from_pretrained(mlp(), tmp_path)
    assert type(loaded.base_model) is type(pm.base_model)
    assert torch.equal(loaded(x), y)
    with loaded.disable_adapter():
        assert (loaded(x) - ref).abs().max() <= 1e-6
    merged = loaded.merge_and_unload()
    assert all(type(m) is nn.Linear for m in (merged[0], merged[2], merged[4]))
    assert (merged(x) - y).abs().max() <= 1e-5


def test_peft_bert_all_linear_and_config_validation():
    pm = get_peft_model(bert_cls(), interop.QuICPeftConfig(target_modules="all-linear", n_blocks=2,
                                                          task_type="SEQ_CLS"))
    adapted = [n for n, m in pm.named_modules() if isinstance(m, QuICLayer)]
    assert len(adapted) == 13 and not any("classifier" in n for n in adapted)
    with pytest.raises(ValueError, match="unknown parameterization 'qft'"):
        interop.QuICPeftConfig(target_modules=["query"], parameterization="qft")


def oft_model(use_cayley_neumann: bool, block_share: bool = False, coft: bool = False):
    torch.manual_seed(3)
    cfg = OFTConfig(target_modules=["0", "2"], oft_block_size=4, r=0, init_weights=False,
                    use_cayley_neumann=use_cayley_neumann, block_share=block_share, coft=coft, eps=0.5)
    return get_peft_model(mlp(), cfg).eval()


@pytest.mark.parametrize("neumann", [False, True])
@pytest.mark.parametrize("block_share,coft", [(False, False), (True, False), (False, True)])
def test_oft_rotations_match_peft(neumann, block_share, coft):
    pm = oft_model(neumann, block_share, coft)
    for name in ("0", "2"):
        layer = pm.base_model.model.get_submodule(name)
        rot = layer.oft_R["default"]
        R = interop.oft_rotations(rot.weight, 4, use_cayley_neumann=neumann, coft=coft, eps=rot.eps)
        n_blocks = layer.in_features // 4
        full = torch.block_diag(*(R.expand(n_blocks, 4, 4) if block_share else R))
        torch.testing.assert_close(full.float(), rot.get_weight().detach(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("block_share", [False, True])
def test_oft_import_live_and_saved(tmp_path, block_share):
    x = torch.randn(7, 16)
    pm = oft_model(False, block_share)
    with torch.no_grad():
        want = pm(x)
    assert (want - mlp()(x)).abs().max() > 1e-3  # the OFT adapter does something
    pm.save_pretrained(tmp_path)
    from_dir = interop.load_oft_adapter(mlp(), tmp_path)
    live = interop.quic_from_peft_oft(pm)
    for qm in (from_dir, live):
        cfg = qm.peft_config["default"]
        assert (cfg.orders, cfg.block_size, cfg.rotate, cfg.parameterization, cfg.block_share) == (
            (1,), 4, "input", "pyramid", block_share)
        with torch.no_grad():
            assert (qm(x) - want).abs().max() <= 1e-5
        layer = qm.quicq_layers()["0"]
        assert layer.circuit() == pyramid(4) and layer.quic_spec["default"].n_blocks == 4
    # the imported circuits reproduce OFT's blocks: unary(pyramid, θ_i) = R_iᵀ
    R = interop.oft_rotations(oft_model(False, block_share).base_model.model[0].oft_R["default"].weight, 4,
                              use_cayley_neumann=False)
    U = unary_block(pyramid(4), from_dir.quicq_layers()["0"].quic_params["default"].detach().double())
    A0 = unary_block(pyramid(4), from_dir.quicq_layers()["0"].parameterization().start_params()).round()
    torch.testing.assert_close(U @ A0.T, R.transpose(-1, -2), atol=1e-6, rtol=0)  # applied = A(θ)·A₀ᵀ


def test_oft_neumann_needs_projection(tmp_path):
    pm = oft_model(True)
    pm.save_pretrained(tmp_path)
    model = mlp()
    before = snapshot(model)
    with pytest.raises(AdapterError, match="deviate from orthogonal.*project=True"):
        interop.load_oft_adapter(model, tmp_path)
    assert same_state(model, before) and isinstance(model[0], nn.Linear)
    qm = interop.load_oft_adapter(model, tmp_path, project=True)
    for B in qm.quicq_layers()["0"].blocks():
        assert (B.transpose(-1, -2) @ B - torch.eye(4)).abs().max() <= 1e-6
    with pytest.raises(AdapterError, match="holds a 'QUIC' adapter, not OFT"):
        d = tmp_path / "quic"
        get_peft_model(mlp(), interop.QuICPeftConfig(target_modules=["0"])).save_pretrained(d)
        interop.load_oft_adapter(mlp(), d)
