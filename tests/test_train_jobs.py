"""`quicq train` submits one primitive job per step direction for the whole model (3 adapted layers).

Counted where jobs leave quicq: at qiskit-aer's ``SamplerV2.run`` (a counting wrapper around the
real method; Aer still runs every circuit), through the real training entry point ``train()``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("qiskit_aer")


@pytest.fixture
def sampler_jobs(monkeypatch):
    from qiskit_aer.primitives import SamplerV2

    calls: list[int] = []
    real = SamplerV2.run

    def run(self, pubs, *args, **kwargs):
        calls.append(len(list(pubs)))
        return real(self, pubs, *args, **kwargs)

    monkeypatch.setattr(SamplerV2, "run", run)
    return calls


def _config(out: Path, gradient: str, backend: str = "aer", **mitigation) -> dict:
    return {"task": {"train_size": 32, "batch_size": 8, "width": 16, "pretrain_epochs": 1, "eval_size": 32},
            # the digits CNN's three adapted layers: conv2, fc1, fc2
            "adapter": {"target_modules": ["conv2", "fc1", "fc2"], "block_size": 4, "orders": [1]},
            "backend": {"name": backend, "shots": 128, "seed": 3},
            "train": {"steps": 2, "gradient": gradient, "checkpoint_every": 2, "out": str(out), "plot": False},
            "eval": {"exact": False, "estimated": False},
            "mitigation": mitigation}


@pytest.mark.parametrize("gradient, per_step", [("parameter_shift", 2), ("surrogate", 1)])
def test_three_adapted_layers_cost_two_sampler_jobs_per_shift_step(tmp_path: Path, sampler_jobs, gradient,
                                                                   per_step) -> None:
    from quicq.training.run import train

    per = []

    def on_step_end(step: int, loss: float) -> None:
        per.append(len(sampler_jobs))

    summary = train(_config(tmp_path / "run", gradient), progress=False,
                    on_step_end=[on_step_end])
    assert summary["steps"] == 2
    assert summary["hardware"]["units"] == ["conv2", "fc1", "fc2"] and summary["hardware"]["jobs"] == 2 * per_step
    assert per == [per_step, 2 * per_step]  # 3 layers, yet one job per direction per step
    assert all(n > 3 for n in sampler_jobs)  # each job carries circuits of all three layers


def test_readout_mitigation_rides_in_the_same_jobs(tmp_path: Path, sampler_jobs) -> None:
    pytest.importorskip("mthree")
    from quicq.training import validate_config
    from quicq.training.run import build_run

    run = build_run(validate_config(_config(tmp_path / "run", "parameter_shift", "aer-noisy:fake_manila",
                                            readout="m3")))
    assert all(u.plan.readout == "m3" for u in run.source.units)
    run.trainer.run(1)
    assert len(sampler_jobs) == 2  # M3 calibrates through the simulator itself, not a Sampler job
    res = next(iter(run.source.last_results.values()))
    assert res.mitigation["readout"]["method"] == "m3" and res.mitigation["readout"]["calibrated_qubits"]


def test_noisy_block_tomography_options_train_and_evaluate_raw_vs_mitigated(tmp_path: Path, sampler_jobs) -> None:
    from quicq.hardware.mitigation import NOISY_BLOCK_TOMOGRAPHY
    from quicq.training import validate_config
    from quicq.training.run import build_run, train

    # the whole choice in [mitigation]: the raw evaluation is then the plain default estimator
    cfg = _config(tmp_path / "run", "surrogate", "aer-noisy:fake_manila", **NOISY_BLOCK_TOMOGRAPHY)
    cfg["train"]["steps"] = 1
    cfg["eval"] = {"exact": True, "estimated": True, "raw": True, "validation": False}
    run = build_run(validate_config(cfg))
    assert all(not u.plan.magnitudes for u in run.source.units)  # training uses the mitigated estimator
    summary = train(cfg, progress=False)
    ev = summary["evaluation"]
    assert ev["estimated_blocks"]["options"] == ["magnitudes=false", "zne"]
    assert ev["estimated_blocks_raw"]["options"] == []
    assert ev["estimated_blocks"]["estimator"] == {"magnitudes": False, "postselect": True}
    assert ev["estimated_blocks_raw"]["estimator"] == {"magnitudes": True, "postselect": True}
    assert all(0.0 <= ev[k]["accuracy"] <= 1.0 for k in ev)
    assert ev["estimated_blocks"]["mitigation"]["zne"]["scales"] == [1, 3]
    assert ev["estimated_blocks_raw"]["mitigation"]["zne"] is None
    assert ev["estimated_blocks"]["jobs"] == ev["estimated_blocks_raw"]["jobs"] == 1
    # training step (surrogate: 1 job) + one job per evaluation estimate, each for all three layers
    assert len(sampler_jobs) == 1 + 2


def test_resume_restores_the_packed_backends_inner_sampler_too() -> None:
    from quicq.adapters import QuICConfig, get_quicq_model
    from quicq.hardware import AerBackend
    from quicq.hardware.model_bridge import ModelHardwareBridge
    from quicq.hardware.packing import PackedBackend
    from quicq.training.sources import hardware_generators

    net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8))
    qm = get_quicq_model(net, QuICConfig(target_modules=["0", "2"], block_size=4, orders=(1,)))
    inner = AerBackend(shots=100, seed=0)
    packed = PackedBackend(inner, max_slots=2, seed=1)
    gens = hardware_generators(ModelHardwareBridge(qm, packed, gradient="spsa", seed=0, attach=False))
    assert gens["backend0._rng"] is packed._rng and gens["backend1._rng"] is inner._rng
    assert {"0.rng", "2.rng"} <= set(gens)  # each unit's SPSA stream
