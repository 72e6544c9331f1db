"""Smoke tests of ``quicq demo --quick`` and ``benchmarks/hardware.py --quick`` (real runs, tiny sizes)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_quick(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    results = tmp_path / "results" / "demo.json"
    proc = subprocess.run([sys.executable, "-m", "quicq.cli", "demo", "--quick", "--no-progress", "--out", str(out),
                           "--results", str(results)], check=False, capture_output=True, text=True, timeout=600,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    ft = summary["finetune"]
    assert ft["qubits"] == 5 and ft["adapted_modules"] == ["conv2", "fc1", "fc2"]
    accs = summary["accuracy"]
    assert len(accs) == 5 and all(0.0 <= a <= 1.0 for a in accs.values())
    assert accs["exact blocks"] == ft["accuracy_quic_exact"]  # the hook reproduces the engine's blocks
    est = {e["condition"]: e for e in summary["estimates"]}
    ideal = est["aer"]
    noisy = [e for c, e in est.items() if c.startswith("aer[fake_manila]")]
    assert len(noisy) == 3
    mit = summary["mitigated"]
    assert mit["options"] == {"magnitudes": False, "zne": True} and mit["jobs"] == 1  # all layers, one job
    assert mit["mitigation"]["zne"]["scales"] == [1, 3]
    assert mit["fraction_of_exact_accuracy"] == accs["fake_manila noise, mitigated"] / accs["exact blocks"]
    assert est[mit["condition"]]["kept_fraction"] is None  # signed circuits: nothing to post-select
    assert ideal["kept_fraction"] == 1.0  # an ideal simulator never leaves the Hamming-weight sector
    assert all(e["kept_fraction"] < 1.0 for e in noisy if e is not est[mit["condition"]])  # a noisy one does
    assert ideal["max_abs_error"] < min(e["max_abs_error"] for e in noisy)
    runs = summary["hybrid"]["runs"]
    aer, exact = runs["Aer, parameter shift"], runs["exact gradient (engine)"]
    assert len(aer["losses"]) == summary["hybrid"]["steps"] + 1
    assert aer["jobs_per_step"] == 2  # three adapted layers, one job per step direction
    assert exact["engine_loss_after"] < exact["engine_loss_before"]
    # parameter-shift gradients from shots do descend (judged with exact blocks: no shot noise)
    assert aer["engine_loss_before"] == exact["engine_loss_before"]  # the same starting point
    assert aer["engine_loss_after"] < aer["engine_loss_before"]
    for key in ("training_curves", "block_errors", "circuit"):
        assert Path(summary["plots"][key]).is_file()
    manifest = json.loads((out / "qasm" / "manifest.json").read_text())
    assert any(f["path"] == "conv2.circuit.qasm" for f in manifest["files"])
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "summary.txt").read_text() in proc.stdout
    assert json.loads(results.read_text()) == summary  # --results: the same summary, with provenance
    env_ = summary["environment"]
    assert env_["command"].startswith("quicq demo --quick") and env_["torch_threads"] == 1
    assert {"commit", "date", "cpu_count", "load_average"} <= set(env_)
    written = [out / "summary.json", out / "summary.txt", out / "plan.txt", *(out / "qasm").iterdir()]
    for f in written:  # readable by others, like any file a tool writes (not mkstemp's 0600)
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


def test_hardware_benchmark_quick(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "hardware.py"), "--quick",
                           "--json", str(tmp_path / "hw.json")], check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "hw.json").read_text())["rows"]
    assert [r["n"] for r in rows] == [3, 4]
    for r in rows:
        assert r["order1_signed_magnitude"] == 2 * r["n"] and r["order1_signed_only"] == r["n"]
        assert 0 < r["primitive_s"] <= r["step_s"]
    assert "goals:" in proc.stdout
