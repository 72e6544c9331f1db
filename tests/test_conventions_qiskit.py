"""Qiskit gate conventions behind quicq.circuits.qiskit_io (docs/conventions.md), checked numerically.

Qiskit's ``Operator`` is little-endian (the first qarg is the least significant bit); quicq
writes qubit 0 first, so every Qiskit matrix here goes through ``reverse_qargs()``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("qiskit")

from _dense_reference import dense_unitary, fbs_table, mcry_table, rbs_table  # noqa: E402
from qiskit import QuantumCircuit  # noqa: E402
from qiskit.circuit.library import XXPlusYYGate  # noqa: E402
from qiskit.quantum_info import Operator, Statevector  # noqa: E402

from quicq.circuits import Circuit, Gate, basis_index, brick, butterfly, pauli, pyramid, x_layout  # noqa: E402
from quicq.circuits.gates import (  # noqa: E402
    CZ_MATRIX,
    H_MATRIX,
    RBS_DECOMPOSITION,
    X_MATRIX,
    Z_MATRIX,
    rbs_matrix,
    ry_matrix,
)
from quicq.circuits.qiskit_io import FBSGate, RBSGate, mcry_gate, to_qiskit  # noqa: E402

THETAS = (0.37, -1.2, 2.9, math.pi / 2)


def big_endian(op) -> np.ndarray:
    """Matrix of a Qiskit gate/circuit in quicq's order (first qubit most significant), real."""
    m = Operator(op).reverse_qargs().data
    assert np.max(np.abs(m.imag)) < 1e-12
    return m.real


@pytest.mark.parametrize("theta", THETAS)
def test_rbs_gate_is_the_design_table_and_xx_plus_yy_plus_half_pi(theta):
    got = big_endian(RBSGate(theta))
    np.testing.assert_allclose(got, rbs_table(theta), atol=1e-12)
    c, s = math.cos(theta), math.sin(theta)
    np.testing.assert_allclose(got[1:3, 1:3], [[c, s], [-s, c]], atol=1e-12)  # (|01⟩, |10⟩) block
    np.testing.assert_allclose(got, big_endian(XXPlusYYGate(2 * theta, math.pi / 2)), atol=1e-12)
    # the definition Qiskit transpiles with is the same matrix (not just the gate object)
    np.testing.assert_allclose(big_endian(RBSGate(theta).definition), rbs_table(theta), atol=1e-12)


@pytest.mark.parametrize("theta", THETAS)
def test_xx_plus_yy_minus_half_pi_is_rbs_of_minus_theta(theta):
    """The docs/conventions.md trap: beta = −π/2 looks like an RBS but rotates the other way."""
    trap = big_endian(XXPlusYYGate(2 * theta, -math.pi / 2))
    np.testing.assert_allclose(trap, rbs_table(-theta), atol=1e-12)
    assert np.max(np.abs(trap - rbs_table(theta))) > 0.5 * abs(math.sin(theta))


def test_rbs_on_swapped_qubits_is_rbs_of_minus_theta():
    """rbs and xx_plus_yy(·, +π/2) with the larger qubit first equal RBS(−θ) on sorted qubits."""
    theta = 0.81
    for gate in (RBSGate(theta), XXPlusYYGate(2 * theta, math.pi / 2)):
        qc = QuantumCircuit(2)
        qc.append(gate, [1, 0])
        np.testing.assert_allclose(big_endian(qc), rbs_table(-theta), atol=1e-12)


def test_rbs_unary_action_is_the_givens_matrix():
    """G[a,a] = G[b,b] = cos θ, G[b,a] = sin θ, G[a,b] = −sin θ on (e_a, e_b)."""
    theta, n, a, b = 0.63, 4, 1, 3
    qc = to_qiskit(Circuit(n, (Gate("rbs", (a, b), 0),), 1), [theta])
    U = big_endian(qc)
    ea, eb = basis_index((a,), n), basis_index((b,), n)
    assert U[ea, ea] == pytest.approx(math.cos(theta)) and U[eb, eb] == pytest.approx(math.cos(theta))
    assert U[eb, ea] == pytest.approx(math.sin(theta)) and U[ea, eb] == pytest.approx(-math.sin(theta))


@pytest.mark.parametrize("theta", THETAS)
def test_rbs_decomposition_product_equals_rbs_matrix(theta):
    """The one spelled-out decomposition every compiler uses, multiplied out in numpy."""
    one = {"h": H_MATRIX, "x": X_MATRIX, "z": Z_MATRIX}
    u = np.eye(4)
    for name, qubits, mult in RBS_DECOMPOSITION:
        if name == "cz":
            m = CZ_MATRIX
        else:
            m1 = ry_matrix(mult * theta) if name == "ry" else one[name]
            m = np.kron(m1, np.eye(2)) if qubits == (0,) else np.kron(np.eye(2), m1)
        u = m @ u
    np.testing.assert_allclose(u, rbs_matrix(theta), atol=1e-12)
    np.testing.assert_allclose(rbs_matrix(theta), rbs_table(theta), atol=0)


@pytest.mark.parametrize("theta", THETAS)
def test_fbs_0_2_is_the_hand_built_matrix(theta):
    c, s = math.cos(theta), math.sin(theta)
    # basis |q0 q1 q2⟩; FBS mixes q0, q2; qubit 1 set flips the sign of the off-diagonal terms
    F = np.array([
        # 000 001 010  011 100  101 110 111
        [1, 0, 0, 0, 0, 0, 0, 0],
        [0, c, 0, 0, s, 0, 0, 0],   # 001 ↔ 100 (q1 clear): +s
        [0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, c, 0, 0, -s, 0],  # 011 ↔ 110 (q1 set): −s
        [0, -s, 0, 0, c, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, s, 0, 0, c, 0],
        [0, 0, 0, 0, 0, 0, 0, 1],
    ])
    np.testing.assert_allclose(big_endian(FBSGate(theta, 3)), F, atol=1e-12)
    np.testing.assert_allclose(fbs_table(theta, 3), F, atol=0)  # the test helper agrees too
    qc = to_qiskit(Circuit(3, (Gate("fbs", (0, 2), 0),), 1), [theta])
    np.testing.assert_allclose(big_endian(qc), F, atol=1e-12)


@pytest.mark.parametrize("width", [2, 3, 4, 5])
def test_fbs_of_any_width_is_rbs_with_parity_signs(width):
    theta = -0.77
    np.testing.assert_allclose(big_endian(FBSGate(theta, width)), fbs_table(theta, width), atol=1e-12)
    if width == 2:
        np.testing.assert_allclose(big_endian(FBSGate(theta, 2)), rbs_table(theta), atol=1e-12)


@pytest.mark.parametrize("ctrl_state", [(1,), (0,), (1, 0), (0, 1), (0, 0), (0, 0, 1), (1, 1, 0)])
def test_mcry_matches_its_definition_and_control_order(ctrl_state):
    """Control i must equal ctrl_state[i]; Qiskit's integer ctrl_state has control i at bit i."""
    theta = 1.13
    k = len(ctrl_state)
    gate = mcry_gate(theta, ctrl_state)
    assert gate.ctrl_state == sum(v << i for i, v in enumerate(ctrl_state))
    np.testing.assert_allclose(big_endian(gate), mcry_table(theta, ctrl_state), atol=1e-12)
    # scattered, unordered qubits (controls then target), one idle qubit
    n = k + 2
    qubits = tuple(int(q) for q in np.random.default_rng(k).permutation(n)[: k + 1])
    circ = Circuit(n, (Gate("mcry", qubits, 0, ctrl_state),), 1)
    np.testing.assert_allclose(big_endian(to_qiskit(circ, [theta])), dense_unitary(circ, [theta]), atol=1e-12)


def test_mcry_fires_only_on_its_control_state():
    """Explicit states: controls (0, 1) with ctrl_state (1, 0) rotate target 2 only for q0=1, q1=0."""
    circ = Circuit(3, (Gate("mcry", (0, 1, 2), 0, (1, 0)),), 1)
    qc = to_qiskit(circ, [math.pi])  # RY(π)|0⟩ = |1⟩
    for q0, q1 in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        prep = QuantumCircuit(3)
        if q0:
            prep.x(0)
        if q1:
            prep.x(1)
        probs = Statevector(prep.compose(qc)).probabilities([2])  # marginal of qubit 2
        assert probs[1] == pytest.approx(1.0 if (q0, q1) == (1, 0) else 0.0, abs=1e-12)


def test_qiskit_statevectors_are_little_endian():
    """X on qubit 0: Qiskit index 1, quicq index 2^(n−1)."""
    n = 3
    qc = QuantumCircuit(n)
    qc.x(0)
    sv = Statevector(qc).data
    assert abs(sv[1]) == pytest.approx(1.0)
    assert basis_index((0,), n) == 1 << (n - 1)


@pytest.mark.parametrize(
    "circ",
    [pyramid(4), x_layout(5), butterfly(4), butterfly(4, "rbs"), brick(5, 2), pyramid(4, "fbs"),
     pauli(4, 1), pauli(6, 1), pauli(12, 1)],
    ids=lambda c: f"{c.meta['layout']}-{c.n_qubits}q",
)
def test_compiled_circuit_equals_dense_reference(circ):
    th = np.random.default_rng(7).uniform(-np.pi, np.pi, circ.n_params)
    np.testing.assert_allclose(big_endian(to_qiskit(circ, th)), dense_unitary(circ, th), atol=1e-12)
