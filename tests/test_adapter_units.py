"""Saved adapter directory → circuits and trained angles (quicq.adapters.units), and compiling it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from quicq.adapters import AdapterLoadError, QuantumPEFTConfig, QuICConfig, get_quicq_model
from quicq.adapters.units import adapter_units
from quicq.circuits.qasm import from_qasm
from quicq.cli import main


class _Net(nn.Module):
    """A Conv2d (3×3 kernel: Quantum-PEFT's V acts on 16·9 = 144 inputs), a Linear and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(64, 32)
        self.head = nn.Linear(32, 5)


def _saved(tmp: Path, config) -> tuple[Path, object]:
    torch.manual_seed(0)
    model = get_quicq_model(_Net(), config)
    directory = tmp / "adapter"
    model.save_pretrained(directory)
    return directory, model


def _check_units(directory: Path, model, method: str) -> list:
    units = adapter_units(directory)
    layers = model.quicq_layers()
    assert sorted({u.module for u in units}) == sorted(layers)
    for u in units:
        layer = layers[u.module]
        which = u.which.lower() or None
        circuit = layer.circuit(None, which) if which else layer.circuit()
        angles = (layer.angles(None, which) if which else layer.angles()).detach().double().numpy()
        assert u.circuit == circuit, u.tag
        assert np.array_equal(u.angles, np.atleast_2d(angles)), u.tag
        assert (u.columns == layer.qpeft_spec["default"].rank) if method == "quantum_peft" else u.orders == (1, 2)
    return units


def test_conv2d_quantum_peft_adapter_compiles(tmp_path: Path) -> None:
    cfg = QuantumPEFTConfig(target_modules=["conv", "fc"], rank=2, init_weights=False, modules_to_save=["head"])
    directory, model = _saved(tmp_path, cfg)
    units = _check_units(directory, model, "quantum_peft")
    v = next(u for u in units if u.tag == "conv.V")
    assert v.circuit.meta["N"] == 16 * 9  # in·kh·kw, not the 16 input channels
    assert main(["compile", "--adapter", str(directory), "--qasm", "2", "3", "--out", str(tmp_path / "q")]) == 0
    manifest = json.loads((tmp_path / "q" / "manifest.json").read_text())
    blocks = [f for f in manifest["files"] if f["kind"] == "block" and f["format"] == "openqasm3"]
    assert sorted(f["path"] for f in blocks) == ["conv.U.block0.qasm", "conv.V.block0.qasm", "fc.U.block0.qasm",
                                                 "fc.V.block0.qasm"]
    for f in blocks:
        assert f["columns"] == 2
        circuit, th = from_qasm((tmp_path / "q" / f["path"]).read_text())
        unit = next(u for u in units if f"{u.tag}.block0.qasm" == f["path"])
        assert circuit.n_qubits == unit.circuit.n_qubits and len(circuit.gates) == len(unit.circuit.gates)
        assert np.allclose(th, unit.angles[0], atol=0)


def test_quic_linear_adapter_compiles_and_runs_from_its_manifest(tmp_path: Path, capsys) -> None:
    cfg = QuICConfig(target_modules=["fc"], block_size=16, orders=(1, 2), init_weights=False)
    directory, model = _saved(tmp_path, cfg)
    units = _check_units(directory, model, "quic")
    assert units[0].angles.shape[0] == 2  # 32 outputs / block size 16
    assert main(["compile", "--adapter", str(directory), "--out", str(tmp_path / "q")]) == 0
    block = tmp_path / "q" / "fc.block1.qasm"
    # the manifest says orders 1,2: `quicq run` estimates both without being told
    assert main(["run", str(block), "--backend", "exact", "--shots", "2000", "--out", str(tmp_path / "r.json")]) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["units"][0]["orders"] == [1, 2]
    assert [r["key"] for r in doc["units"][0]["report"]] == ["1", "2"]


def test_quic_conv2d_adapter_and_a_broken_directory(tmp_path: Path) -> None:
    cfg = QuICConfig(target_modules=["conv"], block_size=16, orders=(1,), init_weights=False)
    directory, model = _saved(tmp_path, cfg)
    units = adapter_units(directory)
    assert units[0].circuit == model.quicq_layers()["conv"].circuit()
    (directory / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(AdapterLoadError, match="safetensors"):
        adapter_units(directory)
