"""Block tomography: exactness, the even-k sign method, error scaling, bias, noise, cross-backend."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from quicq.circuits import Circuit, Gate, butterfly, pauli, pyramid
from quicq.circuits.ir import CircuitError, sector_indices, subsets
from quicq.engine import compound, pauli_columns, sector_blocks
from quicq.hardware import (
    AerBackend,
    BlockTomography,
    ExactBackend,
    PauliTomography,
    PennyLaneBackend,
    compound_with_errors,
)
from quicq.hardware.tomography import pair_prep, x_readout

RNG = np.random.default_rng(7)


def _exact_backends():
    return [ExactBackend(), AerBackend(None), PennyLaneBackend("default.qubit")]


def _angles(circuit, batch):
    return RNG.uniform(-np.pi, np.pi, (batch, circuit.n_params))


@pytest.mark.parametrize("backend", _exact_backends(), ids=lambda b: b.name)
def test_exact_mode_equals_engine(backend):
    """shots=None tomography reproduces the engine's blocks to 1e-8 on every route."""
    cases = [
        (pyramid(4), (1, 2, 3), "derived"),
        (pyramid(4), (1, 2, 3), "direct"),
        (pyramid(5, gate="fbs"), (2,), "derived"),
        (butterfly(4, gate="rbs"), (1, 2), "direct"),  # non-adjacent RBS: not a compound
    ]
    for circ, orders, method in cases:
        th = _angles(circ, 2)
        res = BlockTomography(circ, orders, method=method).run(backend, th, shots=None)
        ref = sector_blocks(circ, torch.tensor(th), orders)
        for k, r in zip(orders, ref):
            assert np.abs(res[k] - r.numpy()).max() < 1e-8, (circ, method, k)
            assert np.all(res.stderr[k] == 0)
    for N, L, K in [(8, 2, 3), (6, 1, 3)]:  # N = 6: Gray-coded 3-level register (mcry gates)
        circ = pauli(N, L)
        th = _angles(circ, 2)
        res = PauliTomography(circ, K).run(backend, th, shots=None)
        ref = pauli_columns(circ, torch.tensor(th), K).numpy()
        assert np.abs(res["columns"] - ref).max() < 1e-8, (N, K)


def test_even_k_contamination_and_the_minus_reference():
    """⟨X_T⟩ from (|0⟩+|S⟩)/√2 = B[T,S] + ½Σ B[T',S]B[T'△T,S] (|T'△T| = k): nonzero for even k.

    The (|0⟩−|S⟩)/√2 circuit flips the first term only, so the difference is exact. For odd k
    the extra term vanishes.
    """
    n = 4
    circ = pyramid(n)
    th = _angles(circ, 1)[0]
    be = ExactBackend()
    for k in (1, 2, 3):
        B = sector_blocks(circ, torch.tensor(th), (k,))[0].numpy()
        subs = subsets(n, k)
        where = {s: i for i, s in enumerate(subs)}
        for col, S in enumerate(subs):
            plus = circ.with_prefix(pair_prep(n, (), S)).with_suffix(x_readout(n))
            minus = circ.with_prefix(pair_prep(n, (), S, minus=True)).with_suffix(x_readout(n))
            (op, om) = be.sample([(plus, th), (minus, th)], shots=None)
            xp, xm = op.parities(subs)[0][0], om.parities(subs)[0][0]
            extra = np.zeros(len(subs))
            for t, T in enumerate(subs):
                for T2 in subs:
                    other = tuple(sorted(set(T2) ^ set(T)))
                    if len(other) == k:
                        extra[t] += 0.5 * B[where[T2], col] * B[where[other], col]
            assert np.allclose(xp, B[:, col] + extra, atol=1e-12)
            assert np.allclose((xp - xm) / 2, B[:, col], atol=1e-12)
            if k % 2:
                assert np.allclose(extra, 0.0, atol=1e-15)
            else:
                assert np.abs(extra).max() > 1e-3  # the contamination is real for even k


def test_circuit_counts_and_validation():
    n = 4
    c = pyramid(n)
    assert len(BlockTomography(c, (1,)).circuits) == 2 * n
    assert len(BlockTomography(c, (1, 2), magnitudes=False).circuits) == n
    direct = BlockTomography(c, (1, 2, 3), method="direct")
    assert len(direct.circuits) == (n + n) + (2 * 6 + 6) + (4 + 4)
    assert len(direct.labels) == len(direct.circuits)
    pc = pauli(8, 1)
    assert len(PauliTomography(pc, 3).circuits) == 3 + 3 * 3 + 3
    assert len(PauliTomography(pc, 4, column_pairs="star").circuits) == 4 + 4 * 3 + 3
    with pytest.raises(CircuitError, match="non-adjacent RBS"):
        BlockTomography(butterfly(4, gate="rbs"), (1, 2))
    with pytest.raises(CircuitError, match="PauliTomography"):
        BlockTomography(pc, (1,))
    with pytest.raises(CircuitError, match="K must be"):
        PauliTomography(pc, 9)
    with pytest.raises(ValueError, match="method"):
        BlockTomography(c, (1,), method="guess")


def test_result_shapes_and_summary():
    c = pyramid(3)
    plan = BlockTomography(c, (0, 1, 2))
    res = plan.run(ExactBackend(seed=0), _angles(c, 6).reshape(2, 3, -1), shots=100)
    assert res[1].shape == (2, 3, 3, 3) and res[2].shape == (2, 3, 3, 3) and res[0].shape == (2, 3, 1, 1)
    assert res.kept_fraction[1].shape == (2, 3, 3)
    assert res.keys == (0, 1, 2) and res.n_circuits == 6 and res.shots == 100 and res.backend == "exact"
    assert "tomography on exact" in res.summary()
    single = plan.run(ExactBackend(), _angles(c, 1)[0], shots=None)
    assert single[1].shape == (3, 3)


def test_error_falls_as_one_over_sqrt_shots():
    """Ideal Aer: RMS error of the unary block vs shots has log-log slope −0.5 ± 0.15."""
    c = pyramid(4)
    th = np.repeat(_angles(c, 1), 4, axis=0)  # 4 independent repeats in one call
    ref = sector_blocks(c, torch.tensor(th[0]), (1,))[0].numpy()
    be = AerBackend(seed=3)
    plan = BlockTomography(c, (1,))
    shots = np.array([256, 1024, 4096, 16384])
    rmse, raw_se, raw_sd = [], [], []
    for s in shots:
        res = plan.run(be, th, shots=int(s))
        rmse.append(np.sqrt(np.mean((res[1] - ref) ** 2)))
        raw_se.append(res.stderr[1].mean())
        raw_sd.append(np.sqrt(np.mean((res.raw[1] - ref) ** 2)))
    slope = np.polyfit(np.log(shots), np.log(rmse), 1)[0]
    assert -0.65 < slope < -0.35, slope
    # reported error bars match the raw estimate's actual error within a factor 1.5
    ratio = np.array(raw_sd) / np.array(raw_se)
    assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), ratio


def test_estimates_are_unbiased():
    """Mean over 400 repeats is within 4.5 standard errors of the exact block, entrywise.

    The signed X-basis estimator (magnitudes=False, project=False) is linear in the shot
    frequencies, hence exactly unbiased, for odd and for even k (the ± reference).
    """
    c = pyramid(4)
    R = 400
    th = np.repeat(_angles(c, 1), R, axis=0)
    ref = sector_blocks(c, torch.tensor(th[0]), (1, 2))
    plan = BlockTomography(c, (1, 2), method="direct", magnitudes=False, project=False)
    res = plan.run(ExactBackend(seed=11), th, shots=500)
    for k, r in zip((1, 2), ref):
        est = res[k]
        z = (est.mean(0) - r.numpy()) / (est.std(0) / np.sqrt(R) + 1e-12)
        assert np.abs(z).max() < 4.5, (k, np.abs(z).max())
        # error bars are honest: reported stderr ≈ spread of the estimates
        assert np.allclose(res.stderr[k].mean(0), est.std(0), rtol=0.25, atol=2e-3)


def test_combination_and_projection_lower_the_error():
    c = pyramid(4)
    th = np.repeat(_angles(c, 1), 50, axis=0)
    ref = sector_blocks(c, torch.tensor(th[0]), (1, 2))
    errs = {}
    variants = {"signed": {"magnitudes": False, "project": False}, "combined": {"project": False},
                "default": {}}
    for name, kw in variants.items():
        res = BlockTomography(c, (1, 2), method="direct", **kw).run(ExactBackend(seed=5), th, shots=1000)
        errs[name] = [np.sqrt(np.mean((res[k] - r.numpy()) ** 2)) for k, r in zip((1, 2), ref)]
    for i in range(2):
        assert errs["combined"][i] < 0.7 * errs["signed"][i]
        assert errs["default"][i] < errs["combined"][i]


def test_noisy_device_postselection_lowers_magnitude_error():
    """FakeManilaV2 noise via AerSimulator.from_backend: dropping wrong-weight shots helps."""
    c = pyramid(4)
    th = _angles(c, 2)
    be = AerBackend(4000, noise="FakeManilaV2", seed=8)
    ref = [r.numpy() for r in sector_blocks(c, torch.tensor(th), (1, 2))]
    errs = {}
    for ps in (True, False):
        res = BlockTomography(c, (1, 2), method="direct", postselect=ps).run(be, th)
        errs[ps] = {k: np.mean(np.abs(res.details[f"magnitude_{k}"] - np.abs(r))) for k, r in zip((1, 2), ref)}
        errs[ps]["block"] = np.mean(np.abs(res[1] - ref[0]))
        kept = res.kept_fraction[1]
        assert np.all((kept > 0.5) & (kept < 0.99))  # noise does leave the sector, and it is reported
    for k in (1, 2):
        assert errs[True][k] < 0.6 * errs[False][k], errs
    assert errs[True]["block"] < 0.05


def test_backends_agree_within_error_bars():
    c = pyramid(3)
    th = _angles(c, 2)
    plan = BlockTomography(c, (1, 2), method="direct")
    results = [plan.run(be, th, shots=3000) for be in
               (ExactBackend(seed=1), AerBackend(seed=2), PennyLaneBackend("default.qubit", seed=3))]
    for k in (1, 2):
        for a in results:
            for b in results:
                if a is b:
                    continue
                tol = 5 * np.sqrt(a.stderr[k] ** 2 + b.stderr[k] ** 2) + 1e-3
                assert np.all(np.abs(a.raw[k] - b.raw[k]) <= tol), (a.backend, b.backend, k)


def test_pauli_columns_with_shots_within_error_bars():
    for N, L, K in [(6, 1, 3), (8, 2, 4)]:
        c = pauli(N, L)
        th = _angles(c, 4)
        ref = pauli_columns(c, torch.tensor(th), K).numpy()
        res = PauliTomography(c, K).run(ExactBackend(seed=N), th, shots=4000)
        assert np.all(np.abs(res.raw["columns"] - ref) <= 5 * res.stderr["columns"] + 0.01), N
        cols = res["columns"]
        assert np.allclose(np.swapaxes(cols, -1, -2) @ cols, np.eye(K), atol=1e-10)
        gauge = PauliTomography(c, K, global_sign="positive").run(ExactBackend(), th, shots=None)
        # the gauge fixes the overall sign without a model; up to that sign it is exact
        same = np.abs(gauge["columns"] - ref).max(axis=(1, 2)) < 1e-8
        flipped = np.abs(gauge["columns"] + ref).max(axis=(1, 2)) < 1e-8
        assert np.all(same | flipped)


def test_compound_error_propagation_matches_jacobian():
    n, k = 4, 2
    A = torch.tensor(RNG.normal(size=(n, n)))
    se = RNG.uniform(0.01, 0.05, (n, n))
    C, err = compound_with_errors(A.numpy(), se, k)
    assert np.allclose(C, compound(A, k).numpy())
    J = torch.autograd.functional.jacobian(lambda x: compound(x, k), A).numpy()  # (D, D, n, n)
    assert np.allclose(err, np.sqrt(np.einsum("stij,ij->st", J**2, se**2)), atol=1e-12)


def test_postselection_keeps_only_the_right_weight():
    """A circuit whose output leaves the weight-1 sector: kept fraction = in-sector probability."""
    circ = Circuit(2, (Gate("rbs", (0, 1), 0),), 1)
    plan = BlockTomography(circ, (1,))
    # Aer's noise-free run keeps everything …
    res = plan.run(ExactBackend(seed=0), np.array([0.3]), shots=500)
    assert np.allclose(res.kept_fraction[1], 1.0)
    # … and the estimator renormalises in-sector frequencies (checked on a hand-made outcome)
    from quicq.hardware.tomography import magnitudes

    probs = np.array([[0.45, 0.45]])  # 10 % of shots left the sector
    m, var, kept = magnitudes(probs, 1000, postselect=True)
    assert np.allclose(kept, 0.9) and np.allclose(m, np.sqrt(0.5))
    m2, _, _ = magnitudes(probs, 1000, postselect=False)
    assert np.allclose(m2, np.sqrt(0.45))
    assert sector_indices(2, 1) == [2, 1]
    assert math.isclose(float(var[0, 0]), 0.5 / (4 * 900))


def test_pauli_tomography_rows_are_the_circuits_code_space():
    """The logical basis is the IR's code space (metadata or not); without one, all 2^n states, reported."""
    from quicq.circuits.codespace import CodeSpace
    from quicq.engine import statevector_block

    c6 = pauli(6, 1)  # N = 6 Gray-coded on 3 qubits: code words 0 1 2 3 6 7
    bare = Circuit(c6.n_qubits, c6.gates, c6.n_params, {}, c6.code_space)  # layout metadata lost
    th = _angles(c6, 2)
    ref = pauli_columns(c6, torch.tensor(th), 3).numpy()
    for circ in (c6, bare):
        res = PauliTomography(circ, 3).run(ExactBackend(), th, shots=None)
        assert res["columns"].shape == (2, 6, 3) and res.details["logical_basis"] == "code space N=6"
        assert np.abs(res["columns"] - ref).max() < 1e-8
    # a circuit without a code space: every basis state is logical (N = 2^n), and the result says so
    generic = Circuit(2, (Gate("ry", (0,), 0), Gate("cz", (0, 1)), Gate("ry", (1,), 1)), 2)
    th2 = _angles(generic, 2)
    res = PauliTomography(generic, 2).run(ExactBackend(), th2, shots=None)
    assert res.details["logical_basis"] == "computational basis N=2^2"
    full = statevector_block(generic, torch.tensor(th2), [0, 1], [0, 1, 2, 3]).numpy()
    assert np.abs(res["columns"] - full).max() < 1e-8
    # layout metadata and code space that disagree: refused, not guessed
    wrong = Circuit(c6.n_qubits, c6.gates, c6.n_params, dict(c6.meta), CodeSpace(tuple(range(5))))
    with pytest.raises(CircuitError, match="N=6 but its code space has 5"):
        PauliTomography(wrong, 3)
