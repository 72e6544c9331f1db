"""Givens compiler: orthogonal matrix → pyramid / brick RBS circuit (quicq.circuits.givens)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ortho_group, special_ortho_group

from quicq.circuits import CircuitError, Gate, brick, pyramid
from quicq.circuits.givens import givens_decompose

LAYOUTS = ("pyramid", "brick")


def unary_reference(circuit, angles) -> np.ndarray:
    """Independent unary block: U = G_last ··· G_first with the Givens matrices of docs/conventions.md.

    RBS/FBS on the unary sector: G[a,a] = G[b,b] = cos θ, G[b,a] = sin θ, G[a,b] = −sin θ
    (FBS parity signs vanish with a single excitation); Z on qubit a flips the sign of e_a.
    """
    n = circuit.n_qubits
    U = np.eye(n)
    for g in circuit.gates:
        G = np.eye(n)
        if g.name in ("rbs", "fbs"):
            a, b = g.qubits
            c, s = math.cos(angles[g.param]), math.sin(angles[g.param])
            G[a, a] = G[b, b] = c
            G[b, a], G[a, b] = s, -s
        elif g.name == "z":
            G[g.qubits[0], g.qubits[0]] = -1.0
        else:
            raise AssertionError(f"unexpected gate {g.name} in a Givens circuit")
        U = G @ U
    return U


def check(matrix: np.ndarray, layout: str):
    """Decompose, check structure and reconstruction; return (circuit, angles)."""
    n = matrix.shape[0]
    circuit, angles = givens_decompose(matrix, layout)
    base = pyramid(n) if layout == "pyramid" else brick(n, n)
    assert angles.shape == (base.n_params,) == (n * (n - 1) // 2,)
    assert np.all(angles > -math.pi) and np.all(angles <= math.pi)
    if np.linalg.det(matrix) > 0:
        assert circuit == base  # same gates, same slots: loadable into a layout adapter
    else:
        assert circuit.gates[0] == Gate("z", (0,)) and circuit.gates[1:] == base.gates
        assert circuit.n_params == base.n_params
    err = np.max(np.abs(unary_reference(circuit, angles) - matrix))
    assert err <= 1e-10, f"{layout} n={n}: reconstruction error {err:.2e}"
    return circuit, angles


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n", range(2, 13))
def test_random_special_orthogonal_and_orthogonal(layout, n):
    rng = np.random.default_rng(1000 + n)
    for _ in range(3):
        check(special_ortho_group.rvs(n, random_state=rng), layout)
        M = ortho_group.rvs(n, random_state=rng)
        if np.linalg.det(M) > 0:  # force the reflection branch
            M[:, int(rng.integers(n))] *= -1
        circuit, _ = check(M, layout)
        assert circuit.count_ops()["z"] == 1


@pytest.mark.parametrize("layout", LAYOUTS)
def test_identity_gives_zero_angles(layout):
    for n in (2, 5, 8):
        _, angles = check(np.eye(n), layout)
        assert np.all(angles == 0.0)
        signed_zeros = np.where(np.eye(n) == 1.0, 1.0, -0.0)  # e.g. from −(−I) style arithmetic
        _, angles = check(signed_zeros, layout)
        assert np.all(angles == 0.0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_single_reflection_is_just_the_z_gate(layout):
    M = np.diag([-1.0, 1.0, 1.0, 1.0])
    circuit, angles = check(M, layout)
    assert np.all(angles == 0.0) and circuit.count_ops()["z"] == 1


@pytest.mark.parametrize("layout", LAYOUTS)
def test_permutations_and_signed_degenerate_matrices(layout):
    rng = np.random.default_rng(7)
    for n in (2, 3, 4, 6, 9):
        for _ in range(4):
            P = np.eye(n)[rng.permutation(n)]
            check(P, layout)  # both parities occur
            S = P * rng.choice([-1.0, 1.0], size=n)  # signed permutation: all angles degenerate
            check(S, layout)
    check(-np.eye(4), layout)  # det +1 but every diagonal sign flipped: needs sign pairing
    check(np.diag([1.0, 1.0, 1.0, -1.0, -1.0]), layout)
    check(np.diag([1.0, 1.0, 1.0, 1.0, -1.0]), layout)  # reflection far from qubit 0


@pytest.mark.parametrize("layout", LAYOUTS)
def test_block_structured_with_exact_zeros(layout):
    """Exact 0 / ±1 entries mixed with generic 2×2 rotations (degenerate arctan2 inputs)."""
    c, s = math.cos(0.3), math.sin(0.3)
    M = np.zeros((6, 6))
    M[0, 5] = 1.0
    M[1:3, 1:3] = [[c, -s], [s, c]]
    M[3, 0] = -1.0
    M[4:6, 3:5] = [[s, c], [c, -s]]
    assert np.allclose(M.T @ M, np.eye(6))
    check(M, layout)


def test_pyramid_rotation_of_adjacent_pair_is_its_own_angle():
    """A single Givens rotation on (0, 1) lands in slot 0 of the pyramid with angle θ."""
    theta = 0.7
    M = np.eye(4)
    M[0, 0] = M[1, 1] = math.cos(theta)
    M[1, 0], M[0, 1] = math.sin(theta), -math.sin(theta)
    _, angles = check(M, "pyramid")
    assert angles[0] == pytest.approx(theta, abs=1e-14)
    assert np.max(np.abs(angles[1:])) <= 1e-14


def test_accepts_torch_and_lists_and_near_orthogonal():
    torch = pytest.importorskip("torch")
    M = special_ortho_group.rvs(5, random_state=3)
    c1, a1 = givens_decompose(torch.tensor(M, requires_grad=True))
    c2, a2 = givens_decompose(M.tolist())
    assert c1 == c2 and np.array_equal(a1, a2)
    noisy = M + 1e-10 * np.random.default_rng(0).standard_normal(M.shape)
    circuit, angles = givens_decompose(noisy)
    assert np.max(np.abs(unary_reference(circuit, angles) - noisy)) < 1e-8


def test_matches_exact_engine():
    engine = pytest.importorskip("quicq.engine")
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    for layout in LAYOUTS:
        for n in (3, 6, 10):
            M = ortho_group.rvs(n, random_state=rng)
            circuit, angles = givens_decompose(M, layout)
            U = engine.unary_block(circuit, torch.tensor(angles, dtype=torch.float64)).numpy()
            assert np.max(np.abs(U - M)) <= 1e-10


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.ones((3, 4)) / 2, "square"),
        (np.ones(4), "square"),
        (np.eye(1), "n ≥ 2"),
        (np.array([[1.0, 0.0], [0.0, np.nan]]), r"non-finite entry .* at \(1, 1\)"),
        (np.array([[1.0, 0.0], [np.inf, 1.0]]), r"non-finite entry .* at \(1, 0\)"),
        (np.eye(3) * 1.1, r"not orthogonal: max \|MᵀM − I\| = 2\.100e-01"),
        (np.array([[1.0, 1e-6], [0.0, 1.0]]), "not orthogonal"),
        (np.eye(2) * 1j, "real"),
        ([["a", "b"], ["c", "d"]], "real numbers"),
    ],
)
def test_bad_inputs(bad, match):
    with pytest.raises(CircuitError, match=match):
        givens_decompose(bad)


def test_bad_layout_and_atol():
    with pytest.raises(CircuitError, match="unknown layout 'butterfly'"):
        givens_decompose(np.eye(4), "butterfly")
    with pytest.raises(CircuitError, match="atol"):
        givens_decompose(np.eye(4), atol=float("nan"))
    # atol is honoured: a 1e-6 perturbation passes only with a looser tolerance
    M = np.array([[1.0, 1e-6], [0.0, 1.0]])
    circuit, angles = givens_decompose(M, atol=1e-5)
    assert np.max(np.abs(unary_reference(circuit, angles) - M)) < 1e-5
