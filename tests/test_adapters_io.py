"""Save / load: bit-exact round trips, versioned config, and checks that run before any change."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from adapters_helpers import (  # noqa: F401
    bert_cls,
    convnet,
    mlp,
    one_thread,
    randomize_adapters,
    same_state,
    snapshot,
)
from safetensors.torch import load_file, save_file
from torch import nn

import quicq
from quicq.adapters import (
    AdapterLoadError,
    QuantumPEFTConfig,
    QuICConfig,
    QuicqModel,
    get_quicq_model,
)
from quicq.adapters.io import CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME

IDS = torch.randint(0, 100, (2, 5), generator=torch.Generator().manual_seed(0))
CASES = {
    "mlp-quic-brick": (mlp, torch.randn(3, 16),
                       QuICConfig(target_modules=["0", "2"], n_blocks=2, parameterization="brick", n_layers=3,
                                  block_share=True)),
    "mlp-qpeft": (mlp, torch.randn(3, 16), QuantumPEFTConfig(target_modules=r"[024]", rank=2, scale=0.5)),
    "mlp-quic-auto-side": (mlp, torch.randn(3, 16),
                           QuICConfig(target_modules=["0", "2"], n_blocks=1, rotate="auto")),
    "conv-quic-input": (convnet, torch.randn(2, 3, 6, 6),
                        QuICConfig(target_modules=["2"], n_blocks=2, rotate="input")),
    "bert-cayley-saved": (bert_cls, {"input_ids": IDS},
                          QuICConfig(target_modules=["query", "value"], block_size=16, parameterization="cayley",
                                     modules_to_save=["classifier"])),
}


def out(model, inp):
    return model(**inp).logits if isinstance(inp, dict) else model(inp)


def adapter_state(qm):
    return {n: p.detach().clone() for n, p in qm.named_parameters()
            if any(a in n for a in ("quic_params", "qpeft_", "modules_to_save"))}


@pytest.mark.parametrize("name", sorted(CASES))
def test_save_load_is_bit_exact(tmp_path, name):
    build, inp, config = CASES[name]
    qm = get_quicq_model(build(), config)
    randomize_adapters(qm, std=0.2)
    with torch.no_grad():
        want = out(qm, inp)
    qm.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert meta["quicq_version"] == quicq.__version__ and meta["format_version"] == FORMAT_VERSION
    assert meta["method"] == config.method and meta["config"] == config.to_dict()
    assert set(meta["modules"]) == set(qm.quicq_layers())

    loaded = QuicqModel.from_pretrained(build(), tmp_path)
    with torch.no_grad():
        assert torch.equal(out(loaded, inp), want)
    a, b = adapter_state(qm), adapter_state(loaded)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not any(p.requires_grad for p in loaded.parameters())  # is_trainable=False: inference
    with loaded.disable_adapter():
        pass
    assert not any(p.requires_grad for p in loaded.parameters())  # and stays frozen after disabling
    trainable = QuicqModel.from_pretrained(build(), tmp_path, is_trainable=True)
    assert {n for n, p in trainable.named_parameters() if p.requires_grad} == set(a)


def test_several_adapters_use_peft_layout(tmp_path):
    x = torch.randn(3, 16)
    qm = get_quicq_model(mlp(), QuICConfig(target_modules=["0"], n_blocks=2, init_weights=False))
    qm.add_adapter("other", QuantumPEFTConfig(target_modules=["4"], rank=2, init_weights=False))
    qm.set_adapter(["default", "other"])
    both = qm(x)
    qm.save_pretrained(tmp_path)
    assert (tmp_path / WEIGHTS_NAME).is_file() and (tmp_path / "other" / WEIGHTS_NAME).is_file()
    fresh = QuicqModel.from_pretrained(mlp(), tmp_path)
    fresh.load_adapter(tmp_path / "other", "other")
    fresh.set_adapter(["default", "other"])
    assert torch.equal(fresh(x), both)


def corrupt_truncate(d):
    raw = (d / WEIGHTS_NAME).read_bytes()
    (d / WEIGHTS_NAME).write_bytes(raw[: len(raw) // 2])


def corrupt_garbage(d):
    (d / WEIGHTS_NAME).write_bytes(b"\x00\x01not a safetensors file at all" * 10)


def edit_json(**changes):
    def apply(d):
        meta = json.loads((d / CONFIG_NAME).read_text())
        for k, v in changes.items():
            if k == "config_extra":
                meta["config"].update(v)
            else:
                meta[k] = v
        (d / CONFIG_NAME).write_text(json.dumps(meta))
    return apply


def _reseal(d):
    """Record the tensor file's new SHA-256, as if a consistent (but wrong) file had been saved,
    so the checks behind the checksum are exercised."""
    meta = json.loads((d / CONFIG_NAME).read_text())
    meta["weights_sha256"] = hashlib.sha256((d / WEIGHTS_NAME).read_bytes()).hexdigest()
    (d / CONFIG_NAME).write_text(json.dumps(meta))


def resealed(damage):
    def apply(d):
        damage(d)
        _reseal(d)
    return apply


def edit_tensors(fn):
    def apply(d):
        t = load_file(str(d / WEIGHTS_NAME))
        fn(t)
        save_file(t, str(d / WEIGHTS_NAME))
        _reseal(d)
    return apply


def flip_tensor_byte(d):
    raw = bytearray((d / WEIGHTS_NAME).read_bytes())
    raw[-3] ^= 0x10  # inside the tensor data: still a readable safetensors file
    (d / WEIGHTS_NAME).write_bytes(bytes(raw))


def _drop_one(t):
    t.pop(min(t))


def _rename_one(t):
    k = min(t)
    t[k.replace("quic_params", "quic_weights")] = t.pop(k)


def _reshape_one(t):
    k = min(t)
    t[k] = torch.zeros(t[k].shape[0] + 1, *t[k].shape[1:])


def _nan_one(t):
    k = min(t)
    t[k] = torch.full_like(t[k], float("nan"))


def _int_one(t):
    k = min(t)
    t[k] = torch.zeros(t[k].shape, dtype=torch.int32)


BAD = {
    "truncated safetensors": (resealed(corrupt_truncate), AdapterLoadError, "not a readable safetensors file"),
    "garbage safetensors": (resealed(corrupt_garbage), AdapterLoadError, "not a readable safetensors file"),
    "flipped tensor byte": (flip_tensor_byte, AdapterLoadError, "does not match the SHA-256"),
    "truncated, checksum": (corrupt_truncate, AdapterLoadError, "does not match the SHA-256"),
    "nan in config": (lambda d: (d / CONFIG_NAME).write_text((d / CONFIG_NAME).read_text().replace(
        '"init_weights": false', '"init_weights": NaN')), AdapterLoadError, "non-finite"),
    "deeply nested json": (lambda d: (d / CONFIG_NAME).write_text("[" * 100000 + "]" * 100000),
                           AdapterLoadError, "not valid JSON"),
    "wrong method": (edit_json(method="lora"), AdapterLoadError, "unknown adapter method 'lora'"),
    "method of other config": (edit_json(method="quantum_peft"), AdapterLoadError,
                               r"unknown QuantumPEFTConfig field\(s\) \['apply_mode'"),
    "unknown parameterization": (edit_json(config_extra={"parameterization": "hadamard"}), AdapterLoadError,
                                 "unknown parameterization 'hadamard'"),
    "newer format": (edit_json(format_version=FORMAT_VERSION + 1), AdapterLoadError, "written by a newer quicq"),
    "not a quicq config": (edit_json(format=None, peft_type="LORA"), AdapterLoadError, "looks like a peft adapter"),
    "bad version": (edit_json(quicq_version="banana"), AdapterLoadError, "not a version number"),
    "missing tensor": (edit_tensors(_drop_one), AdapterLoadError, "missing"),
    "renamed tensor": (edit_tensors(_rename_one), AdapterLoadError, r"unexpected \['0.quic_weights'\]"),
    "wrong shape": (edit_tensors(_reshape_one), AdapterLoadError, r"tensor '0.quic_params' has shape \(3, 10\)"),
    "nan": (edit_tensors(_nan_one), AdapterLoadError, "NaN or inf"),
    "int tensor": (edit_tensors(_int_one), AdapterLoadError, "adapters are float tensors"),
    "no weights": (lambda d: (d / WEIGHTS_NAME).unlink(), FileNotFoundError, "no adapter_model.safetensors"),
    "bad json": (lambda d: (d / CONFIG_NAME).write_text("{nope"), AdapterLoadError, "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_checkpoints_fail_before_touching_the_model(tmp_path, case):
    damage, exc, msg = BAD[case]
    qm = get_quicq_model(mlp(), QuICConfig(target_modules=["0", "2"], n_blocks=2, init_weights=False))
    qm.save_pretrained(tmp_path)
    damage(tmp_path)
    model = mlp(seed=5)
    before, types = snapshot(model), [type(m) for m in model.modules()]
    with pytest.raises(exc, match=msg):
        QuicqModel.from_pretrained(model, tmp_path)
    assert same_state(model, before) and [type(m) for m in model.modules()] == types

    # the same into an existing QuicqModel: its adapters, state and structure stay as they were
    host = get_quicq_model(mlp(seed=5), QuantumPEFTConfig(target_modules=["4"], rank=2, init_weights=False))
    before, types = snapshot(host), [type(m) for m in host.modules()]
    with pytest.raises(exc, match=msg):
        host.load_adapter(tmp_path, "loaded")
    assert list(host.peft_config) == ["default"]
    assert same_state(host, before) and [type(m) for m in host.modules()] == types


def test_mismatched_adapter_names_module_and_size(tmp_path):
    get_quicq_model(mlp(), QuICConfig(target_modules=["0", "2"], n_blocks=2)).save_pretrained(tmp_path)
    other = nn.Sequential(nn.Linear(16, 40), nn.ReLU(), nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 4))
    before = snapshot(other)
    with pytest.raises(AdapterLoadError, match=r"module '0' was linear out_features=32 in_features=16 when saved, "
                                               r"this model's is linear out_features=40 in_features=16"):
        QuicqModel.from_pretrained(other, tmp_path)
    assert same_state(other, before) and isinstance(other[0], nn.Linear)
    fewer = nn.Sequential(nn.Linear(16, 32))
    with pytest.raises(AdapterLoadError, match=r"adapted then but not matched now: \['2'\]"):
        QuicqModel.from_pretrained(fewer, tmp_path)
    assert isinstance(fewer[0], nn.Linear)


def test_version1_file_without_checksum_loads_with_identity_start(tmp_path):
    """A format-1 file (no checksum, circuit angles meaning θ₀ = 0) still loads, with a warning,
    and computes what it computed when it was written."""
    qm = get_quicq_model(mlp(), QuICConfig(target_modules=["0"], n_blocks=2, start="identity", init_weights=False))
    x = torch.randn(3, 16)
    want = qm(x)
    qm.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / CONFIG_NAME).read_text())
    meta["format_version"] = 1
    del meta["weights_sha256"], meta["config"]["start"], meta["config"]["compound_mode"]
    (tmp_path / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="records no weights_sha256"):
        loaded = QuicqModel.from_pretrained(mlp(), tmp_path)
    assert loaded.peft_config["default"].start == "identity"
    torch.testing.assert_close(loaded(x), want)
