"""Hybrid training loop: atomic checkpoints, bit-exact resume after kill -9, failures never dropped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from quicq.adapters import QuICConfig, get_quicq_model
from quicq.hardware.backends import ExactBackend
from quicq.hardware.bridge import HardwareBlockSource
from quicq.training import CheckpointError, CheckpointStore, ConfigError, HybridTrainer, TrainingError, validate_config

CHILD = r"""
import json, os, sys
from quicq.training.run import run_config
from quicq.training.config import validate_config

cfg = validate_config(json.loads(sys.argv[1]))
pause = int(os.environ.get("QUICQ_TEST_PAUSE_AT", "0"))

def on_step_end(step, loss):
    print(f"step {step}", flush=True)
    if step == pause:
        print("PAUSED", flush=True)
        sys.stdin.readline()  # hold here (progress past the last checkpoint) until killed

run_config(cfg, on_step_end=[on_step_end])
print("DONE", flush=True)
"""


def _config(out: Path, backend: str, gradient: str) -> dict:
    return {
        "task": {"train_size": 48, "batch_size": 16, "width": 32, "pretrain_epochs": 1, "seed": 3},
        "adapter": {"target_modules": ["fc2"], "block_size": 16, "orders": [1, 2]},
        "backend": {"name": backend, "shots": 256, "seed": 11, "retry_delay": 0.0},
        "train": {"steps": 8, "gradient": gradient, "lr": 0.05, "checkpoint_every": 3, "out": str(out)},
    }


def _child(cfg: dict, script: Path, *, pause: int | None = None) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("QUICQ_TEST_PAUSE_AT", None)
    if pause is not None:
        env["QUICQ_TEST_PAUSE_AT"] = str(pause)
    return subprocess.Popen([sys.executable, str(script), json.dumps(cfg)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _final(out: Path):
    ckpt = CheckpointStore(out / "checkpoints").latest()
    assert ckpt is not None
    return ckpt


@pytest.mark.parametrize("backend,gradient", [("exact", "parameter_shift"), ("aer", "spsa")])
def test_kill_9_then_resume_is_bit_exact(tmp_path: Path, backend: str, gradient: str) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    ref = _child(_config(tmp_path / "ref", backend, gradient), script)
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    assert "DONE" in out

    cfg = _config(tmp_path / "run", backend, gradient)
    victim = _child(cfg, script, pause=5)
    lines = []
    for line in victim.stdout:  # type: ignore[union-attr]
        lines.append(line.strip())
        if line.strip() == "PAUSED":
            break
    assert lines[-1] == "PAUSED", victim.stderr.read()  # type: ignore[union-attr]
    store = CheckpointStore(tmp_path / "run" / "checkpoints")
    assert store.steps() == [3]  # steps 4 and 5 ran after the last checkpoint and will be lost
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL

    resumed = _child(cfg, script)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert out.splitlines()[0] == "step 4"  # picked up right after the checkpoint
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["resumed_from"] == 3 and summary["steps"] == 8

    a, b = _final(tmp_path / "ref"), _final(tmp_path / "run")
    assert a.step == b.step == 8
    assert sorted(a.tensors) == sorted(b.tensors)
    assert any(k.startswith("param/") and "quic_params" in k for k in a.tensors)
    for k in a.tensors:  # parameters, optimizer moments, RNG state: bit for bit
        assert torch.equal(a.tensors[k], b.tensors[k]), k
    assert a.meta["losses"] == b.meta["losses"]
    assert a.meta["rng"] == b.meta["rng"]
    assert len(a.meta["losses"]) == 8


class FlakyBackend(ExactBackend):
    """The exact engine with an outage: jobs ``fail_calls`` raise before doing anything (fault injection)."""

    def __init__(self, fail_calls: set[int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.fail_calls = fail_calls
        self.calls = 0

    def _run(self, tasks, shots):
        self.calls += 1
        if self.calls in self.fail_calls:
            raise ConnectionError(f"simulated outage on call {self.calls}")
        return super()._run(tasks, shots)


def _small_run(backend, tmp: Path | None, steps_seed: int = 0):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    qm = get_quicq_model(model, QuICConfig(target_modules=["0"], block_size=16, orders=(1, 2), init_weights=False))
    src = HardwareBlockSource(backend, "parameter_shift").prepare(qm)
    qm.set_block_source(src)
    opt = torch.optim.Adam([p for p in qm.parameters() if p.requires_grad], lr=0.05)
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))

    def batch_fn(step: int) -> torch.Tensor:
        return x[(step * 16) % 64:(step * 16) % 64 + 16]

    def loss_fn(m, xb):
        return m(xb).pow(2).mean()

    trainer = HybridTrainer(qm, opt, loss_fn, batch_fn, checkpoint_dir=tmp, checkpoint_every=10,
                            generators=src.generators())
    return trainer, qm


def _params(qm) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in qm.named_parameters() if p.requires_grad}


def test_failed_step_saves_state_and_raises_then_resumes_exactly(tmp_path: Path) -> None:
    healthy, qm_ref = _small_run(ExactBackend(256, seed=5), None)
    healthy.run(4)
    ref = _params(qm_ref)

    # 2 jobs per step (forward estimate, backward parameter shift), 2 attempts per job: calls 1–4
    # are steps 1–2, call 5 is step 3's forward, calls 6 and 7 are its backward and the retry.
    flaky = FlakyBackend({6, 7}, shots=256, seed=5, retries=2, retry_delay=0.0)
    trainer, qm = _small_run(flaky, tmp_path)
    before = None
    with pytest.raises(TrainingError, match=r"step 3 failed \(backend\).*2 attempt.*simulated outage.*resume at step 3"):
        trainer.run(4)
    before = _params(qm)
    store = CheckpointStore(tmp_path)
    assert store.steps() == [2]
    ckpt = store.latest()
    for n, p in before.items():  # the failed step did not touch the parameters, and they were saved
        assert torch.equal(ckpt.tensors[f"param/{n}"], p)

    resumed, qm2 = _small_run(ExactBackend(256, seed=5), tmp_path)
    result = resumed.run(4)
    assert result.resumed_from == 2
    for n, p in _params(qm2).items():  # step 3 re-ran with the RNG state of its start
        assert torch.equal(p, ref[n]), n


def test_a_failure_the_backend_retries_away_changes_nothing(tmp_path: Path) -> None:
    healthy, qm_ref = _small_run(ExactBackend(256, seed=5), None)
    healthy.run(3)
    flaky = FlakyBackend({3}, shots=256, seed=5, retries=2, retry_delay=0.0)
    trainer, qm = _small_run(flaky, None)
    trainer.run(3)
    assert flaky.calls == 7  # 6 jobs + one retry
    ref = _params(qm_ref)
    for n, p in _params(qm).items():
        assert torch.equal(p, ref[n]), n


def test_checkpoint_store_is_atomic_and_skips_torn_files(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep=2)
    meta = {"losses": [1.0]}
    for step in (1, 2, 3):
        store.save(step, {"param/w": torch.full((3,), float(step))}, meta)
    assert store.steps() == [2, 3]  # keep=2 pruned step 1
    assert not list(tmp_path.glob(".*.tmp"))
    # a writer killed between the tensor file and its JSON leaves an orphan: never a checkpoint
    (tmp_path / "ckpt-00000004.safetensors").write_bytes(b"partial")
    assert store.latest().step == 3
    # a tensor file that does not match its JSON's SHA-256 is torn: fall back to the previous one
    (tmp_path / "ckpt-00000003.safetensors").write_bytes(b"\x00" * 16)
    ckpt = store.latest()
    assert ckpt.step == 2 and torch.equal(ckpt.tensors["param/w"], torch.full((3,), 2.0))
    # leftovers of a killed writer are cleaned by the next save
    (tmp_path / ".ckpt-00000005.json.abc.tmp").write_text("{")
    store.save(5, {"param/w": torch.zeros(3)}, meta)
    assert not list(tmp_path.glob(".*.tmp"))
    assert store.latest().step == 5


def test_resume_refuses_a_different_run(tmp_path: Path) -> None:
    trainer, _ = _small_run(ExactBackend(None), tmp_path)
    trainer.fingerprint = {"lr": 0.05}
    trainer.run(1)
    other, _ = _small_run(ExactBackend(None), tmp_path)
    other.fingerprint = {"lr": 0.5}
    with pytest.raises(CheckpointError, match="different configuration"):
        other.run(2)


def test_validate_config_names_the_bad_key() -> None:
    good = {"train": {"steps": 2}}
    assert validate_config(good)["backend"]["name"] == "exact"
    cases = [
        ({"train": {"steps": 2, "lrr": 1}}, "train.lrr"),
        ({"train": {}}, "train.steps"),
        ({"train": {"steps": "10"}}, "train.steps"),
        ({"train": {"steps": 2}, "backend": {"shots": 0}}, "backend.shots"),
        ({"train": {"steps": 2}, "backend": {"name": "quantum-annealer"}}, "backend.name"),
        ({"train": {"steps": 2, "gradient": "adjoint"}}, "train.gradient"),
        ({"train": {"steps": 2}, "adapter": {"orders": [0]}}, "adapter.orders"),
        ({"train": {"steps": 2}, "extra": {}}, "extra"),
        ({"train": {"steps": True}}, "train.steps"),
    ]
    for raw, key in cases:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            validate_config(raw)
