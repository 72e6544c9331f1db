"""Config-driven training: Quantum-PEFT columns through the hardware bridge, a Hugging Face text
classifier on a user CSV, [mitigation] pass-through, and bad input refused before any job."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from quicq.hardware.backends import ExactBackend
from quicq.training import ConfigError, validate_config
from quicq.training.run import build_run, run_config, train
from quicq.hardware.model_bridge import ModelHardwareBridge


def test_pauli_columns_through_the_bridge_match_the_engine() -> None:
    # N = 12 = 3·4: a qutrit-like register beside two qubits; exact probabilities, no shot noise
    from quicq.adapters import QuantumPEFTConfig, get_quicq_model
    from quicq.hardware.model_bridge import ModelHardwareBridge

    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(12, 12), torch.nn.Tanh(), torch.nn.Linear(12, 2)).double()
    qm = get_quicq_model(base, QuantumPEFTConfig(target_modules=["0"], rank=3, init_weights=False))
    x = torch.randn(6, 12, dtype=torch.float64)

    def grads() -> dict[str, torch.Tensor]:
        qm.zero_grad()
        out = qm(x)
        out.pow(2).sum().backward()
        return {"out": out.detach(), **{n: p.grad.clone() for n, p in qm.named_parameters() if p.requires_grad}}

    ref = grads()
    for gradient in ("parameter_shift", "surrogate"):
        bridge = ModelHardwareBridge(qm, ExactBackend(None), gradient=gradient)
        got = grads()
        bridge.detach()
        for n in ref:
            torch.testing.assert_close(got[n], ref[n], atol=1e-8, rtol=0, msg=f"{gradient}: {n}")


def _digits(out: Path, **sections) -> dict:
    cfg = {"task": {"train_size": 32, "batch_size": 16, "width": 32, "pretrain_epochs": 1, "eval_size": 64},
           "adapter": {"target_modules": ["fc2"]},
           "backend": {"name": "exact", "shots": 256, "seed": 2},
           "train": {"steps": 2, "gradient": "parameter_shift", "checkpoint_every": 1, "out": str(out),
                     "plot": False},
           "eval": {"estimated": False}}
    for k, v in sections.items():
        cfg[k] = {**cfg.get(k, {}), **v}
    return cfg


def test_quantum_peft_trains_through_the_backend(tmp_path: Path) -> None:
    cfg = validate_config(_digits(tmp_path / "run", adapter={"method": "quantum_peft", "rank": 2,
                                                             "init_weights": False}))
    run = build_run(cfg)
    assert isinstance(run.source, ModelHardwareBridge)
    assert [u.name for u in run.source.units] == ["fc2.U", "fc2.V"]
    before = {n: p.detach().clone() for n, p in run.model.named_parameters() if p.requires_grad and "theta" in n}
    result = run.trainer.run(2)
    assert len(result.losses) == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    # U and V of the layer in one job per forward, their shifted bindings in one per backward
    assert run.source.forward_calls == run.source.backward_calls == 2 and run.source.jobs == 4
    after = dict(run.model.named_parameters())
    assert any(not torch.equal(after[n], p) for n, p in before.items())


def test_steps_can_come_from_the_caller_and_estimated_eval(tmp_path: Path) -> None:
    raw = _digits(tmp_path / "run", eval={"estimated": True}, train={"gradient": "surrogate"})
    del raw["train"]["steps"]
    with pytest.raises(ConfigError, match=r"train\.steps.*--steps"):
        validate_config(raw)
    summary = train(raw, steps=1, progress=False)
    assert summary["steps"] == 1
    ev = summary["evaluation"]
    assert set(ev) == {"validation_exact_blocks", "exact_blocks", "estimated_blocks"}
    assert 0.0 <= ev["estimated_blocks"]["accuracy"] <= 1.0 and ev["estimated_blocks"]["backend"] == "exact"


def test_mitigation_keys_are_routed_by_name_or_refused(tmp_path: Path) -> None:
    # 'method' is a BlockTomography option; 'magic' is nobody's
    cfg = validate_config(_digits(tmp_path / "a", mitigation={"method": "direct"}))
    run = build_run(cfg)
    plans = [u.plan for u in run.source.units]
    assert plans and all(p.method == "direct" for p in plans)
    with pytest.raises(ConfigError, match=r"mitigation\.magic.*accepts"):
        build_run(validate_config(_digits(tmp_path / "b", mitigation={"magic": True})))
    with pytest.raises(ConfigError, match=r"mitigation\.shots.*\[backend\]"):
        build_run(validate_config(_digits(tmp_path / "c", mitigation={"shots": 10})))


def test_bad_config_values_name_their_key() -> None:
    cases = [
        ({"train": {"steps": 2}, "task": {"model": "x"}}, "task.model"),  # a text key on the digits task
        ({"train": {"steps": 2}, "adapter": {"method": "lora"}}, "adapter.method"),
        ({"train": {"steps": 2}, "adapter": {"block_size": 1}}, "adapter.block_size"),
        ({"train": {"steps": 2, "lr": float("nan")}}, "train.lr"),
        ({"train": {"steps": 2, "optimizer": "sgd"}}, "train.optimizer"),
        ({"train": {"steps": 2, "schedule": "linear"}}, "train.schedule"),
        ({"train": {"steps": 2, "warmup": 1.0}}, "train.warmup"),
        ({"train": {"steps": 2, "weight_decay": -0.1}}, "train.weight_decay"),
        ({"train": {"steps": 2, "gradient": "exact"}, "eval": {"estimated": False}, "mitigation": {"a": 1}},
         "mitigation"),
    ]
    for raw, key in cases:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            validate_config(raw)


def _csv(path: Path, header: str = "text,label") -> Path:
    good = ["a wonderful, moving film", "sharp and funny", "a delight from start to finish", "brilliant acting"]
    bad = ["dull and far too long", "a tedious mess", "flat, lifeless and boring", "painfully bad dialogue"]
    rows = [f'"{t}, take {i}",pos' for t in good for i in range(3)] + [f'"{t}, take {i}",neg' for t in bad
                                                                      for i in range(3)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _text(out: Path, data: Path, **task) -> dict:
    return {"task": {"name": "text", "data": str(data), "max_length": 12, "batch_size": 4, "eval_size": 8,
                     "val_size": 0,
                     "threads": 1, **task},
            "adapter": {"target_modules": ["query", "value"], "block_size": 16, "orders": [1]},
            "backend": {"name": "ibm:ibm_brisbane"},  # never built: every failure below comes first
            "train": {"steps": 2, "gradient": "surrogate", "checkpoint_every": 1, "out": str(out)},
            "eval": {"estimated": False}}


def test_text_classifier_on_a_user_csv_and_bad_paths(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("transformers")
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    data = _csv(tmp_path / "reviews.csv")
    cfg = _text(tmp_path / "run", data)
    cfg["train"]["gradient"] = "exact"
    summary = run_config(validate_config(cfg))
    assert summary["steps"] == 2 and summary["labels"] == ["neg", "pos"]
    assert 0.0 <= summary["evaluation"]["exact_blocks"]["accuracy"] <= 1.0
    assert Path(summary["plot"]).is_file()
    ckpts = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "run" / "checkpoints").iterdir()}

    bad = [
        (_text(tmp_path / "run", tmp_path / "missing.csv"), r"task\.data.*does not exist"),
        (_text(tmp_path / "run", _csv(tmp_path / "cols.csv", "review,stars")), r"task\.data.*column"),
        (_text(tmp_path / "run", data, model=str(tmp_path / "no_model")), r"task\.model.*does not exist"),
    ]
    for raw, pattern in bad:
        with pytest.raises(ConfigError, match=pattern):  # not a CredentialsError: nothing was submitted
            run_config(validate_config(raw))
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "run" / "checkpoints").iterdir()}
    assert after == ckpts  # nothing already checkpointed was touched
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 2
