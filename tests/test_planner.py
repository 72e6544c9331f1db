"""Cost planner: circuit and shot counts, transpiled gate counts, the QPU-time model, errors."""

from __future__ import annotations

import math

import pytest
import torch

from quicq.adapters import QuantumPEFTConfig, QuICConfig, get_quicq_model
from quicq.circuits import butterfly, pyramid
from quicq.hardware.planner import PlanError, backward_estimates, plan_cost, plan_layout, tomography_plan
from quicq.hardware.tomography import BlockTomography


@pytest.fixture(scope="module")
def manila_plan():
    return plan_layout("pyramid", 5, orders=(1, 2), n_blocks=4, backend="fake:fake_manila", shots=1000)


def test_counts_per_forward_and_step(manila_plan):
    plan = manila_plan
    (unit,) = plan.units
    n, P = 5, 10
    assert (unit.n_qubits, unit.n_params, unit.bindings, unit.circuits) == (n, P, 4, 2 * n)
    assert plan.circuits_per_forward == 2 * n * 4
    assert plan.shots_per_forward == 2 * n * 4 * 1000
    assert unit.estimates_per_step == 1 + 2 * P  # forward + 2 estimates per angle
    assert unit.gradient_circuits == n  # shifted estimates: the signed circuits only (hybrid's gradient plan)
    assert plan.circuits_per_step == 2 * n * 4 + 2 * P * n * 4
    assert plan.jobs_per_forward == 1
    assert plan.jobs_per_step == 2  # the bridge sends all shifted estimates of a backward as one job


def test_gradient_methods_change_estimates_per_step():
    assert backward_estimates("parameter_shift", 7) == 14
    assert backward_estimates("spsa", 7) == 2
    assert backward_estimates("surrogate", 7) == 0
    with pytest.raises(PlanError, match="unknown gradient"):
        backward_estimates("adjoint", 3)
    spsa = plan_layout("pyramid", 4, backend="aer", gradient="spsa", n_blocks=2)
    sur = plan_layout("pyramid", 4, backend="aer", gradient="surrogate", n_blocks=2)
    assert spsa.units[0].estimates_per_step == 3 and sur.units[0].estimates_per_step == 1
    assert sur.circuits_per_step == sur.circuits_per_forward
    assert spsa.circuits_per_step == spsa.circuits_per_forward + 2 * 4 * 2  # 2 signed-only estimates
    assert (spsa.jobs_per_step, sur.jobs_per_step) == (2, 1)


def test_signed_only_halves_the_circuits():
    plan = plan_layout("pyramid", 6, backend="aer", magnitudes=False)
    assert plan.units[0].circuits == 6
    assert plan_layout("pyramid", 6, backend="aer").units[0].circuits == 12


def test_planner_counts_the_circuits_the_hybrid_path_runs():
    from quicq.hardware import ExactBackend, HardwareBlock

    c = butterfly(4)
    plan = tomography_plan(c, (1, 2))
    assert plan.circuits == BlockTomography(c, (1, 2)).circuits
    hb = HardwareBlock(c, ExactBackend(None), (1, 2))
    assert hb.tomography.circuits == plan.circuits
    assert hb.gradient_tomography.circuits == plan.gradient_plan().circuits
    direct = tomography_plan(c, (1, 2), method="direct")
    # direct: C(4,1) signed + C(4,1) magnitudes, then 2·C(4,2) signed (even k) + C(4,2) magnitudes
    assert len(direct.circuits) == 4 + 4 + 2 * 6 + 6


def test_transpiled_counts_on_a_linear_device(manila_plan):
    # FakeManila is a line 0-1-2-3-4, the pyramid is nearest-neighbour: no swaps, and each
    # RBS = (H⊗H)·CZ·(RY⊗RY)·CZ·(H⊗H) costs exactly two native two-qubit gates.
    (unit,) = manila_plan.units
    assert unit.logical_two_qubit_gates == 10
    assert {c.two_qubit_gates for c in unit.transpiled} == {20}
    assert all(c.depth >= 2 * 5 - 3 for c in unit.transpiled)


def test_qpu_time_model_is_the_documented_formula(manila_plan):
    plan = manila_plan
    (unit,) = plan.units
    durations = [c.duration_s for c in unit.transpiled]
    assert all(d is not None and 1e-7 < d < 1e-3 for d in durations)  # µs-scale circuits
    rep, job = plan.rep_delay_s, plan.job_overhead_s
    run = [4 * (plan.circuit_overhead_s + 1000 * (d + rep)) for d in durations]
    signed = [r for c, r in zip(unit.transpiled, run) if c.label.startswith("k=1 sign")]
    assert len(signed) == 5
    assert plan.qpu_seconds_per_forward == pytest.approx(job + sum(run))
    assert plan.qpu_seconds_per_step == pytest.approx(job + sum(run) + job + 2 * 10 * sum(signed))
    text = plan.table()
    assert "fake_manila" in text and "Nothing was submitted" in text


def test_simulator_has_no_qpu_time():
    plan = plan_layout("x", 4, backend="aer")
    assert plan.qpu_seconds_per_step is None and plan.circuit_duration_s is None
    assert plan.two_qubit_gates_max > 0
    assert "n/a" in plan.table()


def test_adapter_models_quic_and_quantum_peft():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16))
    quic = get_quicq_model(model, QuICConfig(target_modules=["0", "2"], block_size=16, orders=(1, 2)))
    plan = plan_cost(quic, "aer", shots=100)
    assert [u.name for u in plan.units] == ["0", "2"]
    assert [u.bindings for u in plan.units] == [2, 1]  # 32/16 and 16/16 blocks
    assert plan.circuits_per_forward == 10 * 2 + 10 * 1

    model = torch.nn.Sequential(torch.nn.Linear(8, 16))
    qpeft = get_quicq_model(model, QuantumPEFTConfig(target_modules=["0"], rank=2))
    plan = plan_cost(qpeft, "aer", shots=100)
    assert [u.name for u in plan.units] == ["0.U", "0.V"]
    u = plan.units[0]
    # Pauli columns: K magnitudes + K·n row-sign circuits + (K − 1) column-sign circuits
    assert u.circuits == 2 + 2 * u.n_qubits + 1


def test_errors_are_plan_errors():
    with pytest.raises(PlanError, match="5 qubits.*need 6"):
        plan_layout("pyramid", 6, backend="fake:fake_manila")
    with pytest.raises(PlanError, match="shots"):
        plan_layout("pyramid", 3, backend="aer", shots=0)
    with pytest.raises(PlanError, match="unknown backend"):
        plan_layout("pyramid", 3, backend="quantum-annealer")
    with pytest.raises(PlanError, match="fake"):
        plan_layout("pyramid", 3, backend="fake:fake_nonexistent_device")
    with pytest.raises(PlanError, match="power of two"):
        plan_layout("butterfly", 6, backend="aer")


def test_plan_is_json_ready(manila_plan):
    import json

    d = json.loads(json.dumps(manila_plan.to_dict()))
    assert d["units"][0]["circuits"] == 10 and math.isfinite(d["qpu_seconds_per_step"])
    assert pyramid(5).n_params == d["units"][0]["n_params"]


def test_packing_gives_ten_times_fewer_executions_for_twelve_blocks_of_eight_qubits():
    """The issue's MiniLM-sized case: 12 blocks of n = 8, orders {1,2}, on a 127-qubit device."""
    plan = plan_layout("pyramid", 8, orders=(1, 2), n_blocks=12, backend="fake:fake_sherbrooke", shots=4096,
                       pack=True)
    pk = plan.packing
    assert pk.slots >= 12 and pk.width == 8
    assert pk.unpacked_executions_per_forward == plan.circuits_per_forward == 16 * 12
    assert pk.unpacked_executions_per_step == plan.circuits_per_step
    assert pk.executions_per_forward == math.ceil(16 * 12 / pk.slots)
    assert pk.reduction_forward >= 10 and pk.reduction_step >= 10
    assert pk.jobs_per_forward == 1 and pk.jobs_per_step == 2  # 464 × 4096 shots < 10 M per job
    assert pk.qpu_seconds_per_forward < plan.qpu_seconds_per_forward / 5
    text = plan.table()
    assert "packed 12 × 8 qubits" in text or f"packed {pk.slots} × 8 qubits" in text
    assert "crosstalk" in text
    assert plan.to_dict()["packing"]["slots"] == pk.slots


def test_a_pack_that_does_not_fit_is_refused_before_transpiling():
    with pytest.raises(PlanError, match="no connected chain of 14 qubits"):
        plan_layout("pyramid", 14, backend="fake:fake_guadalupe", pack=True)


def test_cli_plan_pack_flag_shows_packed_and_unpacked(capsys):
    from quicq.cli import main

    rc = main(["plan", "--layout", "pyramid", "--n", "4", "--orders", "1", "--blocks", "3", "--backend",
               "fake:fake_guadalupe", "--shots", "1000", "--pack", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "packed 3 × 4 qubits" in out and "24 → 8 executions (3.0× fewer)" in out
