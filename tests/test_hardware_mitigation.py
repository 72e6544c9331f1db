"""Mitigation: RBS folding, ZNE, Hamming-weight post-selection, M3 readout correction, bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from quicq.circuits import pyramid
from quicq.circuits.ir import sector_indices
from quicq.engine import unary_block
from quicq.hardware import AerBackend, BlockTomography, ExactBackend
from quicq.hardware.errors import MitigationError
from quicq.hardware.mitigation import ZNE, fold, hamming_mask
from quicq.hardware.outcome import Outcome

RNG = np.random.default_rng(20261201)


@pytest.fixture(scope="module")
def manila():
    return AerBackend(2000, noise="FakeManilaV2", seed=11)


def _readout_only_noise(p01: float = 0.04, p10: float = 0.10):
    from qiskit_aer.noise import NoiseModel, ReadoutError

    nm = NoiseModel()
    nm.add_all_qubit_readout_error(ReadoutError([[1 - p01, p01], [p10, 1 - p10]]))
    return nm


def _gate_only_noise(p: float = 0.03):
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    nm = NoiseModel(basis_gates=["cx", "rz", "sx", "x", "h", "ry", "cz"])
    nm.add_all_qubit_quantum_error(depolarizing_error(p, 2), ["cx", "cz"])
    return nm


# ---- folding and extrapolation ---------------------------------------------------------------


@pytest.mark.parametrize("gate", ["rbs", "fbs"])
def test_folded_circuit_is_the_same_hw_preserving_block(gate):
    c = pyramid(4, gate=gate)
    th = torch.as_tensor(RNG.uniform(-math.pi, math.pi, (3, c.n_params)))
    for scale in (3, 5):
        f = fold(c, scale)
        assert f.hw_preserving and f.n_params == c.n_params
        assert f.count_ops()[gate] == scale * c.count_ops()[gate]
        assert torch.allclose(unary_block(f, th), unary_block(c, th), atol=1e-12)
    assert fold(c, 1) is c
    with pytest.raises(MitigationError):
        fold(c, 2)


def test_folds_survive_transpilation(manila):
    """The transpiler must not cancel RBS(θ)·RBS(−θ): two-qubit gates scale exactly 1 : 3 : 5."""
    c = pyramid(4)
    counts = []
    for scale in (1, 3, 5):
        ops = manila.transpile_cache.get(fold(c, scale), "measure").circuit.count_ops()
        counts.append(sum(v for k, v in ops.items() if k in ("cx", "cz", "ecr")))
    assert counts[0] > 0 and counts == [counts[0], 3 * counts[0], 5 * counts[0]]


def test_zne_weights_extrapolate_lines_and_quadratics():
    lam = np.array([1.0, 3.0, 5.0])
    lin, rich = ZNE((1, 3, 5), "linear"), ZNE((1, 3, 5), "richardson")
    assert np.isclose(lin.weights.sum(), 1) and np.isclose(rich.weights.sum(), 1)
    assert np.isclose(lin.weights @ (0.7 - 0.05 * lam), 0.7)
    assert np.isclose(rich.weights @ (0.7 - 0.05 * lam + 0.01 * lam**2), 0.7)
    assert np.allclose(ZNE().weights, [1.5, -0.5])
    est, var = lin.extrapolate([np.ones(2)] * 3, [np.full(2, 0.1)] * 3)
    assert np.allclose(est, 1) and np.allclose(var, 0.1 * (lin.weights**2).sum())
    for bad in [(1,), (1, 1), (1, 2), (0, 3), (True, 3)]:
        with pytest.raises(MitigationError, match="odd"):
            ZNE(bad)
    with pytest.raises(MitigationError, match="fit"):
        ZNE((1, 3), "exponential")


def test_zne_removes_gate_noise_bias_exactly_computed():
    """Exact noisy probabilities (no shot noise) under 2-qubit depolarising noise: the
    extrapolated signed estimate (linear in the frequencies) is far closer to the truth."""
    be = AerBackend(None, noise=_gate_only_noise(0.01), seed=0)
    c = pyramid(4)
    th = RNG.uniform(-math.pi, math.pi, (2, c.n_params))
    exact = BlockTomography(c).exact(torch.as_tensor(th))[0].numpy()
    plain = BlockTomography(c, project=False, magnitudes=False).run(be, th)
    zne = BlockTomography(c, project=False, magnitudes=False, zne=ZNE((1, 3, 5), "richardson")).run(be, th)
    e_plain = np.abs(plain.blocks[1] - exact).max()
    e_zne = np.abs(zne.blocks[1] - exact).max()
    assert e_zne < 0.1 * e_plain, (e_zne, e_plain)
    lin = BlockTomography(c, project=False, magnitudes=False, zne=True).run(be, th)
    assert np.abs(lin.blocks[1] - exact).max() < 0.5 * e_plain
    assert zne.n_circuits == 3 * plain.n_circuits
    assert zne.mitigation["zne"]["scales"] == [1, 3, 5]
    assert zne.details["zne_raw_1"].shape == (2, 3, 4, 4)


# ---- post-selection ----------------------------------------------------------------------------


def test_hamming_mask_matches_qiskit_addon_sqd():
    sqd = pytest.importorskip("qiskit_addon_sqd.configuration_recovery")
    n, k = 6, 3
    bits = RNG.integers(0, 2, (500, n)).astype(bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in 0.12, kept in 0.14
        theirs = np.zeros(len(bits), dtype=bool)
        for left in range(k + 1):  # total weight k = weight of the left half + the right half
            theirs |= sqd.post_select_by_hamming_weight(bits, hamming_right=k - left, hamming_left=left)
    ours = hamming_mask(bits, k)
    assert np.array_equal(ours, theirs) and 0 < ours.sum() < len(bits)


def test_tomography_keeps_exactly_the_hamming_sector(manila):
    c = pyramid(4)
    plan = BlockTomography(c, (1,))
    th = RNG.uniform(-math.pi, math.pi, (2, c.n_params))
    outcomes = manila.sample(plan.tasks(th), 500)
    red = plan.reduce(outcomes, th, 500)
    z = [i for i, lab in enumerate(plan.labels) if "magnitude" in lab]
    for col, i in enumerate(z):
        by_mask = hamming_mask(outcomes[i].bits, 1).mean(-1)
        assert np.allclose(red["kept"][1][:, col], by_mask)
        assert np.allclose(outcomes[i].probabilities(sector_indices(4, 1)).sum(-1), by_mask)


# ---- readout mitigation (M3) ---------------------------------------------------------------------


def test_m3_removes_readout_bias_and_calibrates_once():
    be = AerBackend(8000, noise=_readout_only_noise(), seed=5)
    c = pyramid(3)
    th = RNG.uniform(-math.pi, math.pi, (3, c.n_params))
    exact = BlockTomography(c).exact(torch.as_tensor(th))[0].numpy()
    plain = BlockTomography(c, project=False).run(be, th)
    m3_plan = BlockTomography(c, project=False, readout="m3")
    m3 = m3_plan.run(be, th)
    e_plain = np.abs(plain.blocks[1] - exact).mean()
    e_m3 = np.abs(m3.blocks[1] - exact).mean()
    assert e_m3 < 0.5 * e_plain, (e_m3, e_plain)
    again = m3_plan.run(be, th)  # the next estimate (a training step) reuses the calibration
    rep = again.mitigation["readout"]
    assert rep["method"] == "m3" and rep["calibration_jobs"] == 1 and rep["calibrated_qubits"] == [0, 1, 2]
    assert "readout=m3" in again.summary()


def test_m3_correction_is_a_normalised_quasi_distribution(manila):
    c = pyramid(3)
    (out,) = manila.sample([(BlockTomography(c).circuits[0], np.zeros((2, c.n_params)))], 400)
    assert out.physical_qubits is not None and len(out.physical_qubits) == 3
    q = manila.readout_mitigator().correct(out)
    assert q.quasi and not q.exact and q.shots == 400
    assert np.allclose(q.probs.sum(-1), 1.0)
    mean, se = q.parities([(0,)])
    assert np.all(se > 0)


def test_readout_mitigation_refused_before_submission():
    be = ExactBackend(100, seed=0)  # (PennyLaneBackend inherits the same refusal)
    calls = []
    orig = be._run
    be._run = lambda tasks, shots: calls.append(1) or orig(tasks, shots)
    with pytest.raises(MitigationError, match="readout mitigation"):
        BlockTomography(pyramid(3), readout="m3").run(be, np.zeros(3))
    assert calls == []


def test_bad_mitigation_options():
    with pytest.raises(MitigationError, match="readout"):
        BlockTomography(pyramid(3), readout="twirl")
    with pytest.raises(MitigationError, match="zne"):
        BlockTomography(pyramid(3), zne="yes")
    with pytest.raises(MitigationError, match="shots=None"):
        BlockTomography(pyramid(3), readout="m3").run(AerBackend(None), np.zeros(3))


def test_gradient_plan_keeps_mitigation():
    plan = BlockTomography(pyramid(3), readout="m3", zne=True).gradient_plan()
    assert plan.readout == "m3" and plan.zne == ZNE() and not plan.magnitudes


def test_exact_outcome_and_quasi_outcome_are_told_apart():
    probs = np.full((1, 4), 0.25)
    assert Outcome(2, None, probs=probs).exact
    assert Outcome(2, 100, probs=probs).quasi


def test_mitigation_benchmark_smoke(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "mitigation.py"
    spec = importlib.util.spec_from_file_location("bench_mitigation", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "m.json"
    assert mod.main(["--smoke", "--json", str(out)]) == 0
    import json

    doc = json.loads(out.read_text())
    assert doc["commit"] and doc["command"] and doc["date"] and doc["rows"][0]["n"] == 3
    row = doc["rows"][0]
    assert set(mod.VARIANTS) <= set(row) and all(row[v]["mean"] > 0 for v in mod.VARIANTS)
    assert doc["default_variant"] == "signed+zne" and doc["default_options"] == {"magnitudes": False, "zne": True}
    assert row["ratio_default_vs_raw"] == row["raw"]["mean"] / row["signed+zne"]["mean"]
