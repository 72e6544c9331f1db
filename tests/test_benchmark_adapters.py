"""Smoke test of ``benchmarks/adapters.py --smoke``: a real run at tiny sizes, checked by what it writes.

No timing is asserted (timings are the benchmark's output, not a property of the code); the test
checks that every method ran on every workload against the LoRA reference measured in the same
run, that the statistics and memory numbers are well formed, and that the report shows the goals.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("sklearn")  # the digits CNN lives with the examples' data helpers


def test_adapter_benchmark_smoke(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "adapters.py"), "--smoke", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    data = json.loads((tmp_path / "adapters.json").read_text())
    from quicq.adapters.config import QUIC_PARAMETERIZATIONS

    expected = ["lora", "oft", "boft"] + [f"quic-{p}-{k}" for p in QUIC_PARAMETERIZATIONS for k in ("k12", "k1")] + [
        "quic-pyramid-k12-both", "qpeft"]
    for key in ("commit", "command", "date", "cpu_count", "torch_threads", "load_average_start", "load_average_end"):
        assert key in data, key
    assert data["torch_threads"] == 1 and "--smoke" in data["command"]
    assert [w["workload"] for w in data["workloads"]] == ["bert64-qv", "digits"]
    for wl in data["workloads"]:
        assert wl["errors"] == {}, wl["errors"]
        rows = {r["method"]: r for r in wl["rows"]}
        assert list(rows) == expected + (["qpeft-r64"] if wl["workload"] != "digits" else [])
        one, both = rows["quic-pyramid-k12"]["adapter_params"], rows["quic-pyramid-k12-both"]["adapter_params"]
        assert both == 2 * one if wl["workload"] == "bert64-qv" else both > one  # q/v are square
        if "qpeft-r64" in rows:
            k8, k64 = rows["qpeft"]["adapter_params"], rows["qpeft-r64"]["adapter_params"]
            assert k64 > k8 and (k64 - k8) % (64 - 8) == 0  # one λ per extra column, circuits unchanged
        assert rows["lora"]["time_over_lora"]["median"] == 1.0 and rows["lora"]["peak_over_lora"] == 1.0
        for r in rows.values():
            s = r["step_ms"]
            assert s["n"] == 1 and s["min"] <= s["median"] and s["iqr"] >= 0 and s["median"] > 0
            assert r["peak_mib"] > r["persistent_mib"] > 0 and r["frozen_mib"] > 0
            assert 0 < r["adapter_params"] < r["trainable"]
        if wl["workload"] == "bert64-qv":  # one block, n + C(n, 2) ≤ 64: n = 10 (butterfly: a power of 2, 8)
            assert rows["quic-pyramid-k12"]["qubits"] == [10] and rows["quic-butterfly-k12"]["qubits"] == [8]
    micro = data["micro"]
    assert {r["parameterization"] for r in micro["blocks_vs_frozen"][0]["rows"]} == set(QUIC_PARAMETERIZATIONS)
    assert micro["pauli_columns"]["ms"]["median"] > 0
    assert [r["n"] for r in micro["orthogonal"]] == [16]
    if "rows" in micro["ffsim"]:  # ffsim is a bench-only extra
        assert micro["ffsim"]["rows"][0]["max_abs_diff"] < 1e-10
    md = (tmp_path / "adapters.md").read_text()
    assert "## Goals" in md and "time ≤ 1.10× LoRA" in md and "| LoRA r=8 |" in md
    assert "Where the time goes" in md
