"""``quicq train``'s recipe is the accuracy harness's: AdamW, linear warmup, cosine decay to 0 —
one schedule function for both, applied per step, resume-safe, validation accuracy reported."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from quicq.training import ConfigError, validate_config
from quicq.training.errors import CheckpointError
from quicq.training.run import build_run
from quicq.training.schedule import lr_factor, warmup_steps


def test_warmup_then_cosine_to_zero() -> None:
    steps = 100
    w = warmup_steps(steps, 0.06)
    assert w == 6 and warmup_steps(3, 0.06) == 1  # at least one warmup step
    f = [lr_factor(s, steps, warmup=0.06) for s in range(steps)]
    assert f[:w] == pytest.approx([(s + 1) / w for s in range(w)])
    assert f[w] == pytest.approx(1.0) and f[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 93 / 94)))
    assert all(a >= b for a, b in zip(f[w:], f[w + 1:]))  # monotone decay after warmup
    assert lr_factor(37, steps, schedule="constant") == 1.0
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_factor(0, steps, schedule="step")


def _digits(out: Path, **train) -> dict:
    return validate_config({
        "task": {"train_size": 32, "batch_size": 8, "width": 16, "pretrain_epochs": 1, "eval_size": 32},
        "adapter": {"target_modules": ["fc2"]},
        "train": {"steps": 5, "gradient": "exact", "lr": 0.02, "head_lr": 0.01, "checkpoint_every": 2,
                  "out": str(out), "plot": False, **train},
        "eval": {"estimated": False}})


def test_quicq_train_follows_the_schedule_step_by_step(tmp_path: Path) -> None:
    cfg = _digits(tmp_path / "run")
    assert (cfg["train"]["optimizer"], cfg["train"]["schedule"]) == ("adamw", "cosine")  # the harness's recipe
    run = build_run(cfg)
    assert isinstance(run.trainer.optimizer, torch.optim.AdamW)
    seen: list[list[float]] = []
    run.trainer.on_step_end.append(lambda step, loss: seen.append([g["lr"] for g in run.trainer.optimizer.param_groups]))
    run.trainer.run(5)
    bases = [g["initial_lr"] for g in run.trainer.optimizer.param_groups]
    assert sorted(bases) == [0.01, 0.02]
    for step, lrs in enumerate(seen):
        assert lrs == pytest.approx([b * lr_factor(step, 5) for b in bases])
    # the last step decays to (nearly) zero, the first is a warmup step
    assert seen[0][0] == pytest.approx(bases[0] * 1.0 / warmup_steps(5, 0.06))


def test_resume_with_another_step_count_is_refused_under_a_decaying_schedule(tmp_path: Path) -> None:
    build_run(_digits(tmp_path / "cos")).trainer.run(4)
    with pytest.raises(CheckpointError, match=r"train\.steps: 5 → 8.*resume with the steps"):
        build_run(_digits(tmp_path / "cos", steps=8)).trainer.run(8)
    # constant lr: the curve does not depend on the total, extending a run resumes it
    build_run(_digits(tmp_path / "const", schedule="constant")).trainer.run(4)
    t = build_run(_digits(tmp_path / "const", schedule="constant", steps=6)).trainer
    assert t.run(6).resumed_from == 4


def test_summary_reports_validation_accuracy_and_recipe(tmp_path: Path) -> None:
    from quicq.training.run import run_config

    summary = run_config(_digits(tmp_path / "run", steps=2, optimizer="adam", schedule="constant"))
    assert 0.0 <= summary["validation_accuracy_exact_blocks"] <= 1.0
    assert summary["val_examples"] > 0
    assert summary["recipe"]["optimizer"] == "adam" and summary["recipe"]["schedule"] == "constant"
    with pytest.raises(ConfigError, match=r"train\.warmup"):
        _digits(tmp_path / "x", warmup=-0.1)


def test_quantum_peft_trains_lambda_at_the_library_ratio_or_the_configs(tmp_path: Path) -> None:
    from quicq.adapters import QuantumPEFTConfig

    hint = QuantumPEFTConfig.lr_hint
    for factor, want in ((None, hint["lambda"] / hint["theta"]), (2.0, 2.0)):
        cfg = validate_config({
            "task": {"train_size": 32, "batch_size": 8, "width": 16, "pretrain_epochs": 1},
            "adapter": {"method": "quantum_peft", "target_modules": ["fc2"], "rank": 2},
            "train": {"steps": 2, "gradient": "exact", "lr": 0.02, "lambda_lr_factor": factor,
                      "out": str(tmp_path / f"q{factor}")}})
        run = build_run(cfg)
        lrs = {id(p): g["lr"] for g in run.trainer.optimizer.param_groups for p in g["params"]}
        named = dict(run.model.named_parameters())
        lam = [lrs[id(p)] for n, p in named.items() if "qpeft_lambda" in n]
        theta = [lrs[id(p)] for n, p in named.items() if "qpeft_theta" in n]
        assert lam and theta and set(theta) == {0.02} and lam == pytest.approx([0.02 * want] * len(lam))
    with pytest.raises(ConfigError, match=r"train\.lambda_lr_factor"):
        _digits(tmp_path / "bad", lambda_lr_factor=0)
