"""PennyLane gate conventions behind quicq.circuits.pennylane_io (docs/conventions.md), checked numerically."""

from __future__ import annotations

import math

import numpy as np
import pytest

qml = pytest.importorskip("pennylane")

from quicq.circuits import GATES, Circuit, Gate, basis_index  # noqa: E402
from quicq.circuits.gates import (  # noqa: E402
    CZ_MATRIX,
    H_MATRIX,
    RBS_DECOMPOSITION,
    X_MATRIX,
    Z_MATRIX,
    rbs_matrix,
    ry_matrix,
)
from quicq.circuits.pennylane_io import _MAPPED, to_pennylane  # noqa: E402

THETAS = (0.0, 0.37, -1.2, 2.9, math.pi / 2)


def one_gate(name: str, qubits: tuple[int, ...], n: int, ctrl_state=None) -> Circuit:
    param = 0 if GATES[name].parametric else None
    return Circuit(n, (Gate(name, qubits, param, ctrl_state),), 1 if param is not None else 0)


def matrix_of(circuit: Circuit, angles) -> np.ndarray:
    m = qml.matrix(to_pennylane(circuit), wire_order=range(circuit.n_qubits))(np.asarray(angles, float))
    assert np.max(np.abs(np.imag(m))) == 0.0  # real gates stay real
    return np.real(m)


def test_every_quicq_gate_has_a_mapping():
    assert _MAPPED == set(GATES)


@pytest.mark.parametrize("theta", THETAS)
def test_rbs_is_single_excitation_minus_two_theta(theta):
    got = matrix_of(one_gate("rbs", (0, 1), 2), [theta])
    np.testing.assert_allclose(got, rbs_matrix(theta), atol=1e-15)
    # docs/conventions.md table, explicitly: the (|01⟩, |10⟩) block is [[c, s], [−s, c]]
    c, s = math.cos(theta), math.sin(theta)
    np.testing.assert_allclose(got[1:3, 1:3], [[c, s], [-s, c]], atol=1e-15)
    # and the sign trap: SingleExcitation(+2θ) is RBS(−θ)
    plus = np.real(qml.matrix(qml.SingleExcitation(2 * theta, wires=[0, 1])))
    np.testing.assert_allclose(plus, rbs_matrix(-theta), atol=1e-15)
    if abs(math.sin(theta)) > 1e-3:
        assert np.max(np.abs(plus - rbs_matrix(theta))) > 1e-3


def test_rbs_unary_action_is_the_givens_matrix():
    """On (e_a, e_b) = (|10⟩, |01⟩): G[a,a] = G[b,b] = cos θ, G[b,a] = sin θ, G[a,b] = −sin θ."""
    theta = 0.81
    U = matrix_of(one_gate("rbs", (0, 1), 2), [theta])
    ea, eb = basis_index((0,), 2), basis_index((1,), 2)
    assert U[eb, ea] == pytest.approx(math.sin(theta)) and U[ea, eb] == pytest.approx(-math.sin(theta))


def test_rbs_on_reversed_wires_and_distant_qubits():
    """rbs(1, 3) on 4 qubits: only the amplitudes with qubits 1, 3 in |01⟩/|10⟩ mix."""
    theta = -0.6
    U = matrix_of(one_gate("rbs", (1, 3), 4), [theta])
    e1, e3 = basis_index((1,), 4), basis_index((3,), 4)
    assert U[e1, e1] == pytest.approx(math.cos(theta))
    assert U[e3, e1] == pytest.approx(math.sin(theta)) and U[e1, e3] == pytest.approx(-math.sin(theta))
    # with qubit 2 set in between the sign does NOT change for RBS (it does for FBS)
    a, b = basis_index((1, 2), 4), basis_index((2, 3), 4)
    assert U[b, a] == pytest.approx(math.sin(theta))


@pytest.mark.parametrize("theta", THETAS)
def test_fbs_0_2_is_the_hand_built_matrix(theta):
    c, s = math.cos(theta), math.sin(theta)
    F = np.eye(8)
    # qubit 1 clear: |001⟩ = 1 (a=0, b=1) and |100⟩ = 4 (a=1, b=0): plain RBS block
    F[1, 1], F[1, 4], F[4, 1], F[4, 4] = c, s, -s, c
    # qubit 1 set: |011⟩ = 3 and |110⟩ = 6: off-diagonal terms carry (−1)^1
    F[3, 3], F[3, 6], F[6, 3], F[6, 6] = c, -s, s, c
    np.testing.assert_allclose(matrix_of(one_gate("fbs", (0, 2), 3), [theta]), F, atol=1e-15)


def test_fbs_on_neighbours_equals_rbs():
    for theta in THETAS:
        np.testing.assert_allclose(
            matrix_of(one_gate("fbs", (0, 1), 2), [theta]), rbs_matrix(theta), atol=1e-15
        )


def test_single_qubit_and_cz_gates():
    for theta in THETAS:
        np.testing.assert_allclose(matrix_of(one_gate("ry", (0,), 1), [theta]), ry_matrix(theta), atol=1e-15)
    np.testing.assert_allclose(matrix_of(one_gate("cz", (0, 1), 2), []), CZ_MATRIX, atol=0)
    np.testing.assert_allclose(matrix_of(one_gate("z", (0,), 1), []), Z_MATRIX, atol=0)
    np.testing.assert_allclose(matrix_of(one_gate("x", (0,), 1), []), X_MATRIX, atol=0)
    np.testing.assert_allclose(matrix_of(one_gate("h", (0,), 1), []), H_MATRIX, atol=1e-15)


def test_qubit_zero_is_the_most_significant_bit():
    """X on qubit q moves |0…0⟩ to basis_index({q}): quicq's and PennyLane's orders agree."""
    n = 4
    for q in range(n):
        circ = one_gate("x", (q,), n)

        @qml.qnode(qml.device("default.qubit", wires=n))
        def state():
            to_pennylane(circ)([])
            return qml.state()

        psi = np.asarray(state())
        assert np.argmax(np.abs(psi)) == basis_index((q,), n)


@pytest.mark.parametrize(
    "qubits, ctrl_state",
    [((1,), ()), ((0, 1), (1,)), ((0, 1), (0,)), ((2, 0, 1), (1, 0)), ((1, 2, 0), (0, 1))],
)
def test_mcry_matches_dense_construction(qubits, ctrl_state):
    theta = 0.93
    n = 3
    *controls, target = qubits
    dense = np.zeros((2**n, 2**n))
    for j in range(2**n):
        bits = [(j >> (n - 1 - q)) & 1 for q in range(n)]
        if all(bits[c] == v for c, v in zip(controls, ctrl_state)):
            for t_out in (0, 1):  # RY acts on the target bit, others unchanged
                out = list(bits)
                out[target] = t_out
                i = sum(b << (n - 1 - q) for q, b in enumerate(out))
                dense[i, j] = ry_matrix(theta)[t_out, bits[target]]
        else:
            dense[j, j] = 1.0
    got = matrix_of(one_gate("mcry", qubits, n, ctrl_state), [theta])
    np.testing.assert_allclose(got, dense, atol=1e-15)


@pytest.mark.parametrize("theta", THETAS)
def test_rbs_decomposition_compiled_to_pennylane(theta):
    """gates.RBS_DECOMPOSITION, each step compiled by to_pennylane, multiplies to rbs_matrix."""

    def qfunc():
        for name, qubits, mult in RBS_DECOMPOSITION:
            to_pennylane(one_gate(name, qubits, 2))([mult * theta] if GATES[name].parametric else [])

    got = np.real(qml.matrix(qfunc, wire_order=[0, 1])())
    np.testing.assert_allclose(got, rbs_matrix(theta), atol=1e-14)
