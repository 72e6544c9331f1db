"""Adapter files on disk: permissions, recorded layer geometry, and the two formats quicq reads."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from adapters_helpers import convnet, mlp, one_thread, same_state, snapshot  # noqa: F401
from torch import nn

from quicq.adapters import AdapterLoadError, QuantumPEFTConfig, QuICConfig, QuicqModel, get_quicq_model
from quicq.adapters.io import CONFIG_NAME, WEIGHTS_NAME


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_adapter_files_get_the_mode_open_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        get_quicq_model(mlp(), QuICConfig(target_modules=["0"], n_blocks=2)).save_pretrained(tmp_path)
    finally:
        os.umask(old)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME])  # no temp files left


def _conv_with_kernel(kernel: int) -> nn.Sequential:
    """convnet() with module "0" a kernel×kernel conv of the same channel counts (3 → 8)."""
    net = convnet()
    net[0] = nn.Conv2d(3, 8, kernel, padding=kernel // 2)
    return net


@pytest.mark.parametrize("config", [QuICConfig(target_modules=["0"], n_blocks=1, orders=(1,), rotate="input"),
                                    QuantumPEFTConfig(target_modules=["0"], rank=2)], ids=["quic", "qpeft"])
def test_conv_kernel_size_is_recorded_and_checked(tmp_path, config):
    get_quicq_model(convnet(), config).save_pretrained(tmp_path)
    rec = json.loads((tmp_path / CONFIG_NAME).read_text())["modules"]["0"]
    assert rec == {"kind": "conv2d", "out_features": 8, "in_features": 3, "kernel_size": [3, 3]}
    other = _conv_with_kernel(1)
    before, types = snapshot(other), [type(m) for m in other.modules()]
    with pytest.raises(AdapterLoadError, match=r"module '0' was conv2d out_features=8 in_features=3 "
                                               r"kernel_size=\(3, 3\) when saved, this model's is .*kernel_size=\(1, 1\)"):
        QuicqModel.from_pretrained(other, tmp_path)
    assert same_state(other, before) and [type(m) for m in other.modules()] == types
    QuicqModel.from_pretrained(_conv_with_kernel(3), tmp_path)  # same kernel: loads


def test_records_without_kernel_size_still_load(tmp_path):
    """Files written before the kernel size was recorded are not rejected for lacking it."""
    get_quicq_model(convnet(), QuantumPEFTConfig(target_modules=["0"], rank=2)).save_pretrained(tmp_path)
    meta = json.loads((tmp_path / CONFIG_NAME).read_text())
    del meta["modules"]["0"]["kernel_size"]
    (tmp_path / CONFIG_NAME).write_text(json.dumps(meta))
    QuicqModel.from_pretrained(convnet(), tmp_path)


# ---------------------------------------------------------------------------------------------
# peft's format, written through quicq.adapters.peft_interop, read by quicq's loaders
# ---------------------------------------------------------------------------------------------

PEFT_CASES = {
    "quic+head": lambda I: I.QuICPeftConfig(target_modules=["0", "2"], n_blocks=2, modules_to_save=["4"]),
    "qpeft": lambda I: I.QuantumPEFTPeftConfig(target_modules=["0", "2"], rank=2, scale=0.5),
}


def _peft_dir(tmp_path, case: str, **overrides):
    """A trained-looking peft-format adapter of mlp(), its PeftModel and its output on x."""
    pytest.importorskip("peft")
    from adapters_helpers import randomize_adapters
    from peft import get_peft_model

    import quicq.adapters.peft_interop as interop

    cfg = PEFT_CASES[case](interop)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    pm = get_peft_model(mlp(), cfg)
    randomize_adapters(pm, std=0.3)
    x = torch.randn(5, 16, generator=torch.Generator().manual_seed(3))
    d = tmp_path / f"peft-{case}"
    pm.save_pretrained(d)
    return d, pm, x


@pytest.mark.parametrize("case", sorted(PEFT_CASES))
def test_quicq_loads_a_peft_format_directory(tmp_path, case):
    from quicq.adapters.formats import adapter_format

    d, pm, x = _peft_dir(tmp_path, case)
    y = pm(x).detach()
    meta = json.loads((d / CONFIG_NAME).read_text())
    assert meta["quicq_modules"] == {"0": {"kind": "linear", "out_features": 32, "in_features": 16},
                                     "2": {"kind": "linear", "out_features": 24, "in_features": 32}}
    assert "import quicq.adapters.peft_interop" in meta["quicq_note"]
    assert adapter_format(d) == "peft"
    qm = QuicqModel.from_pretrained(mlp(), d)
    assert torch.equal(qm(x), y)
    # and back into quicq's own format: a different file, the same function
    qm.save_pretrained(tmp_path / "native")
    assert adapter_format(tmp_path / "native") == "quicq"
    assert torch.equal(QuicqModel.from_pretrained(mlp(), tmp_path / "native")(x), y)


def test_peft_format_is_checked_against_the_model(tmp_path):
    d, _, _ = _peft_dir(tmp_path, "quic+head")
    other = nn.Sequential(nn.Linear(16, 40), nn.ReLU(), nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 4))
    before = snapshot(other)
    with pytest.raises(AdapterLoadError, match=r"module '0' was linear out_features=32 .* this model's is linear "
                                               r"out_features=40"):
        QuicqModel.from_pretrained(other, d)
    assert same_state(other, before)


def test_cli_adapter_reads_both_formats(tmp_path):
    """`quicq compile --adapter` gives the same circuits and angles from either format of one adapter."""
    from quicq.adapters.units import adapter_units
    from quicq.cli import main

    d, pm, _ = _peft_dir(tmp_path, "quic+head")
    QuicqModel.from_pretrained(mlp(), d).save_pretrained(tmp_path / "native")
    a, b = adapter_units(d), adapter_units(tmp_path / "native")
    assert [(u.tag, u.orders) for u in a] == [(u.tag, u.orders) for u in b] == [("0", (1, 2)), ("2", (1, 2))]
    for ua, ub in zip(a, b):
        assert ua.circuit == ub.circuit and (ua.angles == ub.angles).all()
    for src in (d, tmp_path / "native"):
        out = tmp_path / f"qasm-{src.name}"
        assert main(["compile", "--adapter", str(src), "--out", str(out)]) == 0
        files = json.loads((out / "manifest.json").read_text())["files"]
        assert len(files) >= 2
    strip = lambda p: sorted((f.name, f.read_text()) for f in p.glob("*.qasm"))  # noqa: E731
    assert strip(tmp_path / f"qasm-{d.name}") == strip(tmp_path / "qasm-native")


def test_old_peft_format_quic_loads_with_identity_start(tmp_path):
    """A peft-format QuIC file from before ``start`` existed means start="identity" (what it was trained
    with): peft (after the import) and quicq both read it so; without module records the CLI says why."""
    from peft import PeftModel

    from quicq.adapters.units import adapter_units

    d, pm, x = _peft_dir(tmp_path, "quic+head", start="identity")
    y = pm(x).detach()
    meta = json.loads((d / CONFIG_NAME).read_text())
    for k in ("start", "quicq_modules", "quicq_note"):
        del meta[k]
    (d / CONFIG_NAME).write_text(json.dumps(meta))
    loaded = PeftModel.from_pretrained(mlp(), d)
    assert loaded.peft_config["default"].start == "identity"
    assert torch.equal(loaded(x), y)
    qm = QuicqModel.from_pretrained(mlp(), d)
    assert qm.peft_config["default"].start == "identity" and torch.equal(qm(x), y)
    with pytest.raises(AdapterLoadError, match=r"records no size for module '0'.*QuicqModel.from_pretrained"):
        adapter_units(d)
    # a new config (not read from a file) still starts at the sorting network
    import quicq.adapters.peft_interop as interop

    assert interop.QuICPeftConfig(target_modules=["0"]).start == "sorting"


def test_other_peft_methods_are_named_not_guessed(tmp_path):
    from peft import LoraConfig, get_peft_model

    from quicq.adapters.formats import describe_adapter

    get_peft_model(mlp(), LoraConfig(target_modules=["0"], r=2)).save_pretrained(tmp_path)
    with pytest.raises(AdapterLoadError, match=r"peft_type='LORA'; quicq reads its own methods .*load this one "
                                               r"with peft"):
        QuicqModel.from_pretrained(mlp(), tmp_path)
    assert "'LORA' adapter, not a quicq method" in describe_adapter(tmp_path)


_PEFT_ALONE = """
import sys, torch
from torch import nn
from peft import PeftModel
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 4))
try:
    PeftModel.from_pretrained(model, sys.argv[1])
except KeyError as exc:
    print("KeyError", exc, "quicq imported:", "quicq" in sys.modules)
"""


def test_peft_without_the_import_and_the_helper_that_names_it(tmp_path):
    """What a peft user sees without `import quicq.adapters.peft_interop` (peft's bare KeyError: quicq
    cannot intercept it), and where the import is named: the config's note and describe_adapter."""
    import subprocess
    import sys

    from quicq.adapters.formats import PEFT_IMPORT, describe_adapter, load_with_peft

    d, pm, x = _peft_dir(tmp_path, "quic+head")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", _PEFT_ALONE, str(d)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.stdout.strip() == "KeyError 'QUIC' quicq imported: False", res.stderr[-2000:]
    assert PEFT_IMPORT == "import quicq.adapters.peft_interop"
    assert PEFT_IMPORT in json.loads((d / CONFIG_NAME).read_text())["quicq_note"]
    assert PEFT_IMPORT in describe_adapter(d)
    assert torch.equal(load_with_peft(mlp(), d)(x), pm(x))


_NATIVE_ALONE = """
import sys, torch
from torch import nn
from quicq.adapters import QuicqModel
from quicq.adapters.units import adapter_units
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 4))
QuicqModel.from_pretrained(model, sys.argv[1])
adapter_units(sys.argv[1])
print("peft imported:", "peft" in sys.modules)
"""


def test_native_format_never_imports_peft(tmp_path):
    import subprocess
    import sys

    get_quicq_model(mlp(), QuICConfig(target_modules=["0"], n_blocks=2)).save_pretrained(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    res = subprocess.run([sys.executable, "-c", _NATIVE_ALONE, str(tmp_path)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.stdout.strip() == "peft imported: False", res.stderr[-2000:]


def test_units_of_a_gpt2_conv1d_adapter(tmp_path):
    """GPT-2's Conv1D layers are rebuilt as Conv1D (a Linear stand-in would not match the record)."""
    transformers = pytest.importorskip("transformers")
    from quicq.adapters.units import adapter_units

    cfg = transformers.GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=50, n_positions=16)
    qm = get_quicq_model(transformers.GPT2Model(cfg), QuICConfig(target_modules=["c_attn"], n_blocks=2))
    qm.save_pretrained(tmp_path)
    (unit,) = adapter_units(tmp_path)
    assert unit.module == "h.0.attn.c_attn" and unit.angles.shape == (2, unit.circuit.n_params)
