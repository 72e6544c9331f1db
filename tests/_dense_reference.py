"""A tiny dense reference simulator for tests: full 2^n unitaries from docs/conventions.md formulas.

Written from the DESIGN text, not from quicq's gate table or compilers, so tests can hold the
Qiskit/OpenQASM paths against it. Qubit 0 is the most significant bit (quicq's order).
Only for small n (the unitary has 4^n entries).
"""

from __future__ import annotations

import math

import numpy as np

from quicq.circuits.ir import Circuit, Gate


def rbs_table(theta: float) -> np.ndarray:
    """docs/conventions.md: identity on |00⟩, |11⟩; [[c, s], [−s, c]] on (|01⟩, |10⟩), qubit a first."""
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[1, 0, 0, 0], [0, c, s, 0], [0, -s, c, 0], [0, 0, 0, 1]], dtype=float)


def fbs_table(theta: float, width: int) -> np.ndarray:
    """FBS on qubits a..b (width b − a + 1, a first): RBS on (a, b) whose off-diagonal terms
    carry (−1)^(number of set qubits strictly between a and b)."""
    c, s = math.cos(theta), math.sin(theta)
    dim = 1 << width
    m = np.eye(dim)
    abit, bbit = 1 << (width - 1), 1
    for x in range(dim):
        if not x & abit and x & bbit:  # |0…1⟩: a clear, b set
            y = x ^ abit ^ bbit  # |1…0⟩
            middle = (x >> 1) & ((1 << (width - 2)) - 1) if width > 2 else 0
            p = -1.0 if middle.bit_count() % 2 else 1.0
            m[x, x] = m[y, y] = c
            m[x, y] = s * p
            m[y, x] = -s * p
    return m


def ry_table(theta: float) -> np.ndarray:
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    return np.array([[c, -s], [s, c]])


def mcry_table(theta: float, ctrl_state: tuple[int, ...]) -> np.ndarray:
    """RY on the last qubit when the controls (first qubits, in order) equal ``ctrl_state``."""
    k = len(ctrl_state)
    m = np.eye(1 << (k + 1))
    sel = sum(v << (k - 1 - i) for i, v in enumerate(ctrl_state))  # control 0 is the MSB
    i0 = sel << 1
    m[i0:i0 + 2, i0:i0 + 2] = ry_table(theta)
    return m


FIXED = {
    "cz": np.diag([1.0, 1.0, 1.0, -1.0]),
    "z": np.diag([1.0, -1.0]),
    "x": np.array([[0.0, 1.0], [1.0, 0.0]]),
    "h": np.array([[1.0, 1.0], [1.0, -1.0]]) / math.sqrt(2.0),
}


def gate_matrix(g: Gate, angles) -> tuple[np.ndarray, tuple[int, ...]]:
    """(matrix, qubits it acts on, first qubit most significant)."""
    th = None if g.param is None else float(angles[g.param])
    if g.name == "rbs":
        return rbs_table(th), g.qubits
    if g.name == "fbs":
        a, b = g.qubits
        return fbs_table(th, b - a + 1), tuple(range(a, b + 1))
    if g.name == "ry":
        return ry_table(th), g.qubits
    if g.name == "mcry":
        return mcry_table(th, g.ctrl_state), g.qubits
    return FIXED[g.name], g.qubits


def apply(m: np.ndarray, qubits: tuple[int, ...], state: np.ndarray, n: int) -> np.ndarray:
    """Apply a k-qubit matrix to the columns of ``state`` (shape (2^n, D))."""
    k = len(qubits)
    t = state.reshape((2,) * n + (-1,))
    t = np.moveaxis(t, list(qubits), list(range(k)))
    shape = t.shape
    t = (m @ t.reshape(1 << k, -1)).reshape(shape)
    t = np.moveaxis(t, list(range(k)), list(qubits))
    return t.reshape(1 << n, -1)


def dense_unitary(circuit: Circuit, angles) -> np.ndarray:
    """The circuit's full unitary (real), qubit 0 most significant."""
    n = circuit.n_qubits
    u = np.eye(1 << n)
    for g in circuit.gates:
        m, qs = gate_matrix(g, angles)
        u = apply(m, qs, u, n)
    return u


def dense_block(circuit: Circuit, angles, inputs, outputs) -> np.ndarray:
    return dense_unitary(circuit, angles)[np.ix_(list(outputs), list(inputs))]
