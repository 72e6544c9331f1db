"""The ``quicq`` command: every subcommand on tiny inputs, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from quicq.circuits import pyramid
from quicq.circuits.qasm import from_qasm
from quicq.cli import main

TOKEN = "test-secret-token-7f3a9c"


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, no traceback
    assert err[0].startswith("quicq: error: ")
    return err[0]


def test_compile_writes_qasm_and_a_manifest(tmp_path: Path, capsys) -> None:
    rc = main(["compile", "--layout", "pyramid", "--n", "4", "--orders", "1,2", "--angles", "random", "--seed", "3",
               "--qasm", "2", "3", "--tomography", "--out", str(tmp_path)])
    assert rc == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["qubits"] == 4 and manifest["slots"] == 6 and manifest["source"]["orders"] == [1, 2]
    import hashlib

    for f in manifest["files"]:
        assert hashlib.sha256((tmp_path / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    kinds = [f["kind"] for f in manifest["files"]]
    assert kinds.count("circuit") == 2 and kinds.count("tomography") == 2 * 8  # 2n circuits, 2 versions
    c3, th3 = from_qasm((tmp_path / "pyramid4.qasm").read_text())
    c2, th2 = from_qasm((tmp_path / "pyramid4.qasm2").read_text())
    assert c3 == c2 == pyramid(4)
    assert np.array_equal(th3, th2)  # exact decimals in both versions
    assert "wrote 18 OpenQASM file(s)" in capsys.readouterr().out


def test_compile_symbolic_and_a_saved_adapter(tmp_path: Path) -> None:
    assert main(["compile", "--layout", "butterfly", "--n", "4", "--out", str(tmp_path / "sym")]) == 0
    text = (tmp_path / "sym" / "butterfly4.qasm").read_text()
    assert "input float[64] theta_0;" in text

    from quicq.adapters import QuICConfig, get_quicq_model

    torch.manual_seed(0)
    model = get_quicq_model(torch.nn.Sequential(torch.nn.Linear(4, 32)),
                            QuICConfig(target_modules=["0"], block_size=16, init_weights=False))
    model.save_pretrained(tmp_path / "adapter")
    assert main(["compile", "--adapter", str(tmp_path / "adapter"), "--qasm", "2", "3",
                 "--out", str(tmp_path / "a")]) == 0
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    blocks = [f for f in manifest["files"] if f["kind"] == "block" and f["format"] == "openqasm3"]
    assert len(blocks) == 2  # 32 outputs / block size 16
    layer = model.quicq_layers()["0"]
    for f in blocks:
        circuit, th = from_qasm((tmp_path / "a" / f["path"]).read_text())
        assert circuit == layer.circuit()
        assert np.array_equal(th, layer.angles()[f["block"]].detach().double().numpy())


def test_run_estimates_blocks_and_reports_errors(tmp_path: Path, capsys) -> None:
    assert main(["compile", "--layout", "pyramid", "--n", "3", "--orders", "1,2", "--angles", "random",
                 "--out", str(tmp_path)]) == 0
    out = tmp_path / "blocks.npz"
    # no --orders: the run takes them from the compile manifest
    rc = main(["run", str(tmp_path / "pyramid3.qasm"), "--backend", "exact", "--shots", "4000",
               "--seed", "1", "--out", str(out)])
    assert rc == 0
    arrays = np.load(out)
    est, exact = arrays["pyramid3__block_1"], arrays["pyramid3__exact_1"]
    assert est.shape == exact.shape == (1, 3, 3)
    assert np.abs(est - exact).max() * np.sqrt(4000) < 4  # shot noise, not a wrong sign or order
    report = json.loads(out.with_suffix(".json").read_text())
    rows = report["units"][0]["report"]
    assert [r["key"] for r in rows] == ["1", "2"]
    assert rows[0]["max_abs_error"] == pytest.approx(float(np.abs(est - exact).max()))
    assert "max|err|" in capsys.readouterr().out


def test_run_layout_on_aer_as_json(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert main(["run", "--layout", "x", "--n", "4", "--blocks", "2", "--backend", "aer", "--shots", "500",
                 "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["backend"] == "aer" and doc["units"][0]["bindings"] == 2
    assert np.asarray(doc["blocks"]["x4/block_1"]).shape == (2, 4, 4)


def test_plan_prints_a_table_and_json(tmp_path: Path, capsys) -> None:
    rc = main(["plan", "--layout", "pyramid", "--n", "4", "--orders", "1,2", "--blocks", "3", "--backend", "aer",
               "--gradient", "spsa", "--shots", "100", "--json", str(tmp_path / "p.json"), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "circuit executions" in text
    plan = json.loads((tmp_path / "p.json").read_text())
    # forward: 2n circuits × 3 blocks; SPSA backward: 2 estimates of the n signed circuits × 3 blocks
    assert plan["circuits_per_forward"] == 8 * 3 and plan["circuits_per_step"] == 8 * 3 + 2 * 4 * 3


def _train_config(tmp_path: Path, **train) -> Path:
    cfg = {"task": {"train_size": 32, "batch_size": 16, "width": 32, "pretrain_epochs": 1},
           "adapter": {"target_modules": ["fc2"]},
           "backend": {"name": "exact", "shots": 128, "seed": 2},
           "train": {"steps": 2, "gradient": "surrogate", "checkpoint_every": 1, "out": str(tmp_path / "run"),
                     **train}}
    path = tmp_path / "train.json"
    path.write_text(json.dumps(cfg))
    return path


def test_train_runs_a_config_and_resumes(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("QISKIT_IBM_TOKEN", TOKEN)
    threads = torch.get_num_threads()
    try:
        path = _train_config(tmp_path)
        assert main(["train", str(path), "--no-progress"]) == 0
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["steps"] == 2 and summary["resumed_from"] is None
        assert "hardware: 1 adapter circuit(s), 2 job(s)" in capsys.readouterr().out  # surrogate: 1 job per step
        # the default cosine schedule depends on the step count: extending is refused, naming why
        assert main(["train", str(path), "--steps", "3", "--no-progress"]) == 2
        assert "train.steps: 2 → 3" in _err_line(capsys)
        cfg = json.loads(path.read_text())
        cfg["train"]["schedule"] = "constant"  # a constant lr extends a run
        path.write_text(json.dumps(cfg))
        cfg["train"]["out"] = str(tmp_path / "run")
        import shutil

        shutil.rmtree(tmp_path / "run" / "checkpoints")
        assert main(["train", str(path), "--no-progress"]) == 0
        capsys.readouterr()
        assert main(["train", str(path), "--steps", "3", "--no-progress"]) == 0
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["steps"] == 3 and summary["resumed_from"] == 2 and len(summary["losses"]) == 3
        assert "resumed from step 2" in capsys.readouterr().out
        cfg = json.loads(path.read_text())
        del cfg["train"]["steps"]
        cfg["train"]["out"] = str(tmp_path / "run2")
        path.write_text(json.dumps(cfg))
        assert main(["train", str(path), "--no-progress"]) == 2
        assert "train.steps" in _err_line(capsys)
        assert main(["train", str(path), "--steps", "1", "--no-progress"]) == 0  # --steps supplies it
        assert json.loads((tmp_path / "run2" / "summary.json").read_text())["steps"] == 1
    finally:
        torch.set_num_threads(threads)
    # the token sits in the environment; nothing quicq wrote may contain it
    for f in (tmp_path / "run").rglob("*"):
        if f.is_file():
            assert TOKEN.encode() not in f.read_bytes(), f


@pytest.mark.parametrize("argv,needle", [
    (["run", "--layout", "pyramid", "--n", "4", "--shots", "0"], "shots must be a positive integer"),
    (["run", "--layout", "pyramid", "--n", "4", "--shots", "-5"], "shots must be a positive integer"),
    (["compile", "--layout", "pyramid", "--n", "4", "--qasm", "2"], "OpenQASM 2 cannot hold free parameters"),
    (["compile", "--n", "4"], "give --layout"),
    (["run", "--layout", "pyramid", "--n", "4", "--backend", "warp-drive"], "unknown backend"),
    (["plan", "--layout", "pyramid", "--n", "8", "--backend", "fake:fake_manila"], "5 qubits"),
    (["run", "--layout", "pyramid", "--n", "4", "--orders", "1,9"], "order k=9 is impossible"),
    (["compile", "--layout", "butterfly", "--n", "6"], "power of two"),
])
def test_bad_input_is_one_line_exit_2(argv, needle, capsys) -> None:
    assert main(argv) == 2
    assert needle in _err_line(capsys)


def test_malformed_inputs(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.qasm"
    bad.write_text("OPENQASM 3.0;\nqubit[2] q;\nrbs(0.1) q[0], q[1];\n")
    assert main(["run", str(bad)]) == 2
    assert "invalid OpenQASM 3" in _err_line(capsys)
    assert main(["run", str(tmp_path / "missing.qasm")]) == 2
    assert "cannot read" in _err_line(capsys)
    cfg = tmp_path / "c.json"
    cfg.write_text('{"train": {"steps": 2, "learning_rate": 0.1}}')
    assert main(["train", str(cfg)]) == 2
    assert "'train.learning_rate'" in _err_line(capsys)
    cfg.write_text('{"train": {"steps": 2,}')
    assert main(["train", str(cfg)]) == 2
    assert "malformed JSON" in _err_line(capsys)
    toml = tmp_path / "c.toml"
    toml.write_text("[train]\nsteps = \n")
    assert main(["train", str(toml)]) == 2
    assert "malformed TOML" in _err_line(capsys)


def test_ibm_without_credentials_says_how_to_set_them(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no saved account either
    monkeypatch.setenv("QISKIT_SETTINGS", str(tmp_path / "settings.conf"))
    assert main(["run", "--layout", "pyramid", "--n", "3", "--backend", "ibm:ibm_brisbane"]) == 2
    line = _err_line(capsys)
    assert "QISKIT_IBM_TOKEN" in line and "fake" in line


def test_help_teaches_with_examples(capsys) -> None:
    for cmd in ("compile", "run", "plan", "train", "demo"):
        assert main([cmd, "--help"]) == 0
        assert "example" in capsys.readouterr().out
    assert main([]) == 2  # no command: the overview, and a usage exit code


def test_train_help_lists_every_config_key_with_its_default() -> None:
    from quicq.cli import train_epilog
    from quicq.training.config import CONFIG_SCHEMA, REQUIRED

    text = train_epilog()
    for section, keys in CONFIG_SCHEMA.items():
        assert f"[{section}]" in text
        for key, (_type, default, _help) in keys.items():
            if default is REQUIRED:
                assert f"{key} (required)" in text
            elif isinstance(default, (int, float)) and not isinstance(default, bool):
                assert f"{key}={default}" in text, key
            else:
                assert f"{key}=" in text, key


def test_choices_come_from_the_libraries_lists(capsys) -> None:
    from quicq.circuits.layouts import LAYOUTS
    from quicq.hardware.hybrid import GRADIENTS
    from quicq.hardware.spec import BACKEND_SPECS

    assert main(["plan", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "{" + ",".join(sorted(LAYOUTS)) + "}" in text
    assert "{" + ",".join(GRADIENTS) + "}" in text
    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(spec in text for spec in BACKEND_SPECS)


def test_outputs_are_checked_before_anything_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    # ibm:<device> without credentials would fail when the backend is built: a bad --out must fail first
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    base = ["run", "--layout", "pyramid", "--n", "3", "--backend", "ibm:ibm_brisbane"]
    assert main([*base, "--out", str(tmp_path / "blocks.txt")]) == 2
    assert "use a .npz or .json file" in _err_line(capsys)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root can write anywhere: then only the extension check applies
            assert main([*base, "--out", str(locked / "sub" / "b.npz")]) == 2
            assert "not a writable directory" in _err_line(capsys)
    finally:
        locked.chmod(0o700)
    assert main(["plan", "--layout", "x", "--n", "3", "--backend", "aer", "--json", str(tmp_path / "p.yaml")]) == 2
    assert "use a .json file" in _err_line(capsys)


def test_outputs_are_world_readable(tmp_path: Path) -> None:
    assert main(["compile", "--layout", "x", "--n", "3", "--angles", "zeros", "--qasm", "2", "3",
                 "--out", str(tmp_path / "q")]) == 0
    assert main(["run", "--layout", "x", "--n", "3", "--backend", "exact", "--shots", "100",
                 "--out", str(tmp_path / "r" / "b.npz")]) == 0
    files = [*(tmp_path / "q").iterdir(), tmp_path / "r" / "b.npz", tmp_path / "r" / "b.json"]
    assert len(files) == 5
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


def test_foreign_exceptions_are_one_line_too(tmp_path: Path, capsys, monkeypatch) -> None:
    import quicq.cli_run

    def boom(*args, **kwargs):
        raise RuntimeError("deep failure")

    monkeypatch.setattr(quicq.cli_run, "_estimate", boom)
    argv = ["run", "--layout", "x", "--n", "3", "--backend", "exact"]
    assert main(argv) == 2
    line = _err_line(capsys)
    assert "RuntimeError: deep failure" in line and "--debug" in line
    with pytest.raises(RuntimeError, match="deep failure"):  # --debug after the subcommand: the traceback
        main([*argv, "--debug"])


def test_console_entry_point_in_a_subprocess(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "quicq.cli", "compile", "--layout", "x", "--n", "4",
                         "--out", str(tmp_path)], check=False, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "x4.qasm").is_file()
    bad = subprocess.run([sys.executable, "-m", "quicq.cli", "run", "--layout", "x", "--n", "4", "--shots", "0"],
                         check=False, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.startswith("quicq: error: ") and "Traceback" not in bad.stderr
    for argv in (["--debug", "compile", "--n", "4"], ["compile", "--n", "4", "--debug"]):
        debug = subprocess.run([sys.executable, "-m", "quicq.cli", *argv],
                               check=False, capture_output=True, text=True, timeout=120)
        assert debug.returncode != 0 and "Traceback" in debug.stderr
