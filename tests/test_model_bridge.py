"""Model-level bridge: one primitive job per step direction for the whole model; job limits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from quicq.adapters import QuantumPEFTConfig, QuICConfig, get_quicq_model
from quicq.circuits import pyramid
from quicq.hardware import ExactBackend
from quicq.hardware.jobs import JobLimitError, JobLimits, JobReport, sample_within_limits
from quicq.hardware.model_bridge import BridgeError, ModelHardwareBridge


class Counting(ExactBackend):
    """The exact engine, counting the jobs it runs (every ``_run`` is one primitive call)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.runs = 0
        self.rows = 0

    def _run(self, tasks, shots):
        self.runs += 1
        self.rows += sum(a.shape[0] for _, a in tasks)
        return super()._run(tasks, shots)


def _net(layers: int = 3, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    for _ in range(layers):
        mods += [nn.Linear(8, 8), nn.Tanh()]
    return nn.Sequential(*mods, nn.Linear(8, 2)).double()


def _quic(layers: int = 3):
    targets = [str(2 * i) for i in range(layers)]
    return get_quicq_model(_net(layers), QuICConfig(target_modules=targets, block_size=4, orders=(1,),
                                                    init_weights=False))


def _grads(model, x):
    model.zero_grad()
    model(x).pow(2).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("gradient, jobs", [("parameter_shift", 2), ("spsa", 2), ("surrogate", 1)])
def test_three_layer_model_submits_one_job_per_step_direction(gradient, jobs):
    qm = _quic(3)
    x = torch.randn(5, 8, dtype=torch.float64)
    ref = _grads(qm, x)
    be = Counting(shots=None)
    bridge = ModelHardwareBridge(qm, be, gradient=gradient, seed=0)
    assert [u.name for u in bridge.units] == ["0", "2", "4"]
    got = _grads(qm, x)
    assert be.runs == bridge.jobs == jobs
    if gradient != "spsa":  # exact probabilities: the shift rule and the surrogate are exact
        for n in ref:
            torch.testing.assert_close(got[n], ref[n], atol=1e-10, rtol=0)
    else:  # one ±1 direction per block: ĝ = (∇·Δ)Δ, so ĝ·Δ/P = ∇·Δ
        for n in ref:
            assert torch.isfinite(got[n]).all() and got[n].abs().sum() > 0
    opt = torch.optim.SGD([p for p in qm.parameters() if p.requires_grad], lr=0.01)
    opt.step()
    _grads(qm, x)  # a second step: angles changed, re-estimated
    assert be.runs == 2 * jobs


def test_estimates_are_reused_until_angles_change_or_the_graph_is_used():
    qm = _quic(3)
    x = torch.randn(4, 8, dtype=torch.float64)
    be = Counting(shots=None)
    bridge = ModelHardwareBridge(qm, be)
    with torch.no_grad():
        qm(x)
        qm(x)
    assert be.runs == 1  # same angles: one estimate serves both forwards
    qm(x).sum().backward()  # made without autograd before: a recording estimate + backward
    assert be.runs == 3
    qm(x).sum().backward()  # the graph of that estimate was consumed: a fresh estimate
    assert be.runs == 5 and bridge.forward_calls == 3 and bridge.backward_calls == 2
    assert all(r is not None and r.blocks[1].shape == (2, 4, 4) for r in bridge.last_results.values())
    bridge.detach()
    qm(x)
    assert be.runs == 5  # back on the exact engine


def test_quantum_peft_pauli_columns_through_the_same_bridge():
    torch.manual_seed(0)
    qm = get_quicq_model(_net(2), QuantumPEFTConfig(target_modules=["0", "2"], rank=2, init_weights=False))
    x = torch.randn(5, 8, dtype=torch.float64)
    ref = _grads(qm, x)
    be = Counting(shots=None)
    bridge = ModelHardwareBridge(qm, be, gradient="parameter_shift")
    assert [u.name for u in bridge.units] == ["0.U", "0.V", "2.U", "2.V"]
    got = _grads(qm, x)
    assert be.runs == 2
    for n in ref:
        torch.testing.assert_close(got[n], ref[n], atol=1e-10, rtol=0)


def test_shot_estimates_with_job_limits_split_and_stay_unbiased():
    qm = _quic(3)
    x = torch.randn(5, 8, dtype=torch.float64)
    ref = _grads(qm, x)
    be = Counting(shots=4000, seed=0)
    # 6 angles × 2 shifts × 2 blocks × 4 circuits × 3 layers = 288 shifted executions: cap 100
    bridge = ModelHardwareBridge(qm, be, limits=JobLimits(max_executions=100 * 4000))
    got = _grads(qm, x)
    assert bridge.jobs == be.runs == 1 + 3  # forward 24 executions, backward 288 → 3 jobs
    err = max((got[n] - ref[n]).abs().max().item() for n in ref)
    scale = max(ref[n].abs().max().item() for n in ref)
    assert err < 0.15 * scale


def test_sample_within_limits_splits_bindings_and_refuses_what_cannot_fit():
    be = Counting(shots=100, seed=1)
    c = pyramid(3)
    th = np.random.default_rng(0).uniform(-1, 1, (4, c.n_params))
    report = JobReport()
    outs = sample_within_limits(be, [(c, th)] * 3, limits=JobLimits(max_executions=500), report=report)
    assert report.jobs == be.runs == 3 and be.rows == 12  # 12 executions, ≤ 5 per job
    assert [o.batch for o in outs] == [4, 4, 4] and all(o.shots == 100 for o in outs)
    runs = be.runs
    with pytest.raises(JobLimitError, match="nothing was submitted"):
        sample_within_limits(be, [(c, th)], limits=JobLimits(max_executions=50))
    assert be.runs == runs


def test_bad_input_is_refused_before_anything_runs():
    with pytest.raises(BridgeError, match="no quicq adapter"):
        ModelHardwareBridge(get_quicq_model(_net(1), QuICConfig(target_modules=["0"], block_size=4)),
                            ExactBackend(), adapter_name="other")
    with pytest.raises(BridgeError, match="gradient"):
        ModelHardwareBridge(_quic(1), ExactBackend(), gradient="adjoint")
    with pytest.raises(BridgeError, match="QuicqModel"):
        ModelHardwareBridge(_net(1), ExactBackend())


def test_packed_aer_bridge_two_sampler_jobs_per_step_and_fewer_executions():
    pytest.importorskip("qiskit_aer")
    from quicq.hardware import AerBackend
    from quicq.hardware.packing import PackedBackend

    class CountingPacked(PackedBackend):
        runs = 0

        def _run(self, tasks, shots):
            CountingPacked.runs += 1
            return super()._run(tasks, shots)

    qm = _quic(3)
    x = torch.randn(5, 8, dtype=torch.float64)
    ref = _grads(qm, x)
    packed = CountingPacked(AerBackend(shots=4000, seed=0), max_slots=2, seed=1)  # 8-qubit packs: cheap on Aer
    bridge = ModelHardwareBridge(qm, packed, gradient="parameter_shift")
    got = _grads(qm, x)
    assert CountingPacked.runs == bridge.jobs == 2
    # forward: 3 layers × 2 blocks × 8 circuits = 48 executions; backward 3 × 2 × 12 × 4 = 288
    assert packed.wide_executions == 48 // 2 + 288 // 2 == bridge.executions
    err = max((got[n] - ref[n]).abs().max().item() for n in ref)
    assert err < 0.15 * max(ref[n].abs().max().item() for n in ref)


def test_tomography_options_reach_every_plan_and_unknown_ones_are_refused():
    be = Counting(shots=None)
    bridge = ModelHardwareBridge(_quic(3), be, magnitudes=False, tomography={"zne": True}, attach=False)
    assert all(u.plan.zne is not None and not u.plan.magnitudes for u in bridge.units)
    assert all(u.grad_plan.zne is not None for u in bridge.units)  # shifted estimates mitigated alike
    assert bridge.units[0].plan.mitigation()["postselect"] is False  # signed circuits: nothing to post-select
    with pytest.raises(BridgeError, match=r"BlockTomography takes no option\(s\) \['column_pairs'\]"):
        ModelHardwareBridge(_quic(1), be, tomography={"column_pairs": "star"})
    with pytest.raises(BridgeError, match="magnitudes="):
        ModelHardwareBridge(_quic(1), be, tomography={"magnitudes": False})
    assert be.runs == 0  # nothing was submitted


def test_pin_fixes_one_estimate_for_every_layer_then_detach_restores_the_engine():
    qm = _quic(3)
    x = torch.randn(4, 8, dtype=torch.float64)
    with torch.no_grad():
        ref = qm(x)
    be = Counting(shots=None)
    bridge = ModelHardwareBridge(qm, be)
    results = bridge.pin()
    assert be.runs == 1 and sorted(results) == ["0", "2", "4"]
    with torch.no_grad():
        for _ in range(3):  # any number of batches on that one estimate
            torch.testing.assert_close(qm(x), ref, atol=1e-10, rtol=0)
    assert be.runs == 1
    bridge.detach()
    assert all(not layer.quic_block_source for layer in qm.quicq_layers().values())
    # Quantum-PEFT: U and V columns pinned as the layer's fixed pair
    torch.manual_seed(1)
    qp = get_quicq_model(_net(2), QuantumPEFTConfig(target_modules=["0", "2"], rank=2, init_weights=False))
    with torch.no_grad():
        ref = qp(x)
    bridge = ModelHardwareBridge(qp, be)
    assert sorted(bridge.pin()) == ["0.U", "0.V", "2.U", "2.V"] and be.runs == 2
    with torch.no_grad():
        torch.testing.assert_close(qp(x), ref, atol=1e-10, rtol=0)
    assert be.runs == 2


def test_job_limits_are_a_backend_attribute_not_a_class_name() -> None:
    pytest.importorskip("qiskit_ibm_runtime")
    from quicq.hardware import AerBackend, PackedBackend
    from quicq.hardware.jobs import IBM_SAMPLER_LIMITS, limits_for
    from quicq.hardware.spec import backend_from_spec

    ibm = backend_from_spec("fake:fake_manila", shots=100, seed=1)
    assert limits_for(ibm) is IBM_SAMPLER_LIMITS
    assert limits_for(PackedBackend(ibm, seed=1)) is IBM_SAMPLER_LIMITS  # one packed job is one device job
    assert limits_for(AerBackend(shots=100)) == JobLimits() and limits_for(ExactBackend(None)) == JobLimits()

    class Custom(AerBackend):  # a user's subclass declares its own
        job_limits = JobLimits(max_executions=1_000)

    assert limits_for(Custom(shots=10)).max_executions == 1_000
