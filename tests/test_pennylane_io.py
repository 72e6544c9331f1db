"""PennyLane export and witness vs an independent dense reference (and the exact engine)."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

qml = pytest.importorskip("pennylane")
torch = pytest.importorskip("torch")

from quicq.circuits import (  # noqa: E402
    Circuit,
    CircuitError,
    basis_index,
    brick,
    butterfly,
    code_indices,
    pauli,
    pyramid,
    sector_indices,
    x_layout,
)
from quicq.circuits.gates import CZ_MATRIX, H_MATRIX, X_MATRIX, Z_MATRIX, rbs_matrix, ry_matrix  # noqa: E402
from quicq.circuits.pennylane_io import to_pennylane  # noqa: E402
from quicq.witnesses.pennylane import (  # noqa: E402
    pennylane_block,
    pennylane_sector_block,
    pennylane_unary_block,
)

# ---- an independent dense reference, built from the gate matrices of gates.py ---------------


def local_matrix(g, theta) -> np.ndarray:
    """The gate's matrix on its own qubits (in g.qubits order; fbs: on the range a..b)."""
    if g.name == "rbs":
        return rbs_matrix(theta)
    if g.name == "fbs":  # RBS block on (|0…1⟩, |1…0⟩) with off-diagonals × (−1)^(middle parity)
        m = g.qubits[1] - g.qubits[0] + 1
        F = np.eye(2**m)
        c, s = math.cos(theta), math.sin(theta)
        for mid in range(2 ** (m - 2)):
            sign = (-1) ** bin(mid).count("1")
            u, v = (mid << 1) | 1, (1 << (m - 1)) | (mid << 1)
            F[u, u], F[u, v], F[v, u], F[v, v] = c, s * sign, -s * sign, c
        return F
    if g.name == "ry":
        return ry_matrix(theta)
    if g.name == "mcry":  # identity except RY on the target where controls == ctrl_state
        k = len(g.qubits) - 1
        M = np.eye(2 ** (k + 1))
        row = int("".join(map(str, g.ctrl_state)) or "0", 2) * 2
        M[row : row + 2, row : row + 2] = ry_matrix(theta)
        return M
    return {"cz": CZ_MATRIX, "z": Z_MATRIX, "x": X_MATRIX, "h": H_MATRIX}[g.name]


def embed(local: np.ndarray, qubits: tuple[int, ...], n: int) -> np.ndarray:
    """Full 2^n matrix of ``local`` acting on ``qubits`` (qubit 0 = most significant bit)."""
    idx = np.arange(2**n)
    bits = (idx[:, None] >> (n - 1 - np.arange(n))) & 1
    k = len(qubits)
    sub = bits[:, list(qubits)] @ (1 << np.arange(k)[::-1])
    rest = np.delete(bits, list(qubits), axis=1) @ (1 << np.arange(n - k)[::-1])
    return local[sub[:, None], sub[None, :]] * (rest[:, None] == rest[None, :])


def dense_unitary(circuit: Circuit, angles: np.ndarray) -> np.ndarray:
    n = circuit.n_qubits
    U = np.eye(2**n)
    for g in circuit.gates:
        theta = angles[g.param] if g.param is not None else None
        qubits = tuple(range(g.qubits[0], g.qubits[1] + 1)) if g.name == "fbs" else g.qubits
        U = embed(local_matrix(g, theta), qubits, n) @ U
    return U


def test_dense_reference_sanity():
    """The reference itself: rbs(0,1) on 2 qubits is rbs_matrix; fbs differs from rbs at distance."""
    c = Circuit(2, (pyramid(2).gates[0],), 1)
    np.testing.assert_allclose(dense_unitary(c, np.array([0.4])), rbs_matrix(0.4))
    a = np.array([0.5, -0.3, 1.1, 0.2])
    assert np.max(np.abs(dense_unitary(butterfly(4, "rbs"), a) - dense_unitary(butterfly(4, "fbs"), a))) > 0.1


# ---- circuits under test ------------------------------------------------------------------------

HW_CIRCUITS = {
    "pyramid5": pyramid(5),
    "x5": x_layout(5),
    "x6": x_layout(6),
    "butterfly4_fbs": butterfly(4, "fbs"),
    "butterfly4_rbs": butterfly(4, "rbs"),
    "butterfly8_fbs": butterfly(8, "fbs"),
    "brick5x3": brick(5, 3),
    "brick6x4": brick(6, 4),
}
PAULI_CIRCUITS = {f"pauli{N}x{L}": (N, pauli(N, L)) for N, L in [(4, 1), (8, 2), (6, 1), (12, 2), (7, 1)]}


def rand_angles(circuit: Circuit, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-math.pi, math.pi, circuit.n_params)


@pytest.mark.parametrize("name", list(HW_CIRCUITS) + list(PAULI_CIRCUITS))
def test_compiled_unitary_matches_dense_reference(name):
    circuit = HW_CIRCUITS[name] if name in HW_CIRCUITS else PAULI_CIRCUITS[name][1]
    a = rand_angles(circuit, zlib.crc32(name.encode()))
    got = qml.matrix(to_pennylane(circuit), wire_order=range(circuit.n_qubits))(a)
    err = np.max(np.abs(got - dense_unitary(circuit, a)))
    assert err <= 1e-10, f"{name}: {err:.2e}"


@pytest.mark.parametrize("name", list(HW_CIRCUITS))
def test_witness_sector_blocks_match_reference(name):
    circuit = HW_CIRCUITS[name]
    n = circuit.n_qubits
    a = rand_angles(circuit, 7)
    U = dense_unitary(circuit, a)
    for k in (1, 2):
        idx = sector_indices(n, k)
        block = pennylane_unary_block(circuit, a) if k == 1 else pennylane_sector_block(circuit, a, k)
        assert block.shape == (len(idx), len(idx)) and block.dtype == np.float64
        assert np.max(np.abs(block - U[np.ix_(idx, idx)])) <= 1e-10


@pytest.mark.parametrize("name", list(PAULI_CIRCUITS))
def test_witness_pauli_code_block_matches_reference(name):
    N, circuit = PAULI_CIRCUITS[name]
    a = rand_angles(circuit, 3)
    idx = code_indices(N)
    block = pennylane_block(circuit, a, idx, idx)
    assert np.max(np.abs(block - dense_unitary(circuit, a)[np.ix_(idx, idx)])) <= 1e-10
    assert np.max(np.abs(block.T @ block - np.eye(N))) <= 1e-10  # code space is invariant


def test_witness_rectangular_block_and_lightning():
    circuit = pauli(6, 1)
    a = rand_angles(circuit, 5)
    U = dense_unitary(circuit, a)
    ins, outs = [0, 3, 5], list(range(8))
    ref = U[np.ix_(outs, ins)]
    for device in ("default.qubit", "lightning.qubit"):
        assert np.max(np.abs(pennylane_block(circuit, a, ins, outs, device) - ref)) <= 1e-10
    dev = qml.device("lightning.qubit", wires=circuit.n_qubits)  # an instance is accepted too
    assert np.max(np.abs(pennylane_block(circuit, torch.tensor(a), ins, outs, dev) - ref)) <= 1e-10
    c = butterfly(8)
    b = rand_angles(c, 9)
    np.testing.assert_allclose(
        pennylane_sector_block(c, b, 3, "lightning.qubit"), pennylane_sector_block(c, b, 3), atol=1e-12
    )


def test_custom_wires_and_batched_angles():
    circuit = butterfly(4)
    a = np.stack([rand_angles(circuit, s) for s in range(3)])
    qfunc = to_pennylane(circuit, wires=["w", 7, "q", 0])
    got = qml.matrix(qfunc, wire_order=["w", 7, "q", 0])(a[1])
    np.testing.assert_allclose(got, dense_unitary(circuit, a[1]), atol=1e-12)

    @qml.qnode(qml.device("default.qubit", wires=4))
    def states(angles):
        qml.PauliX(2)
        to_pennylane(circuit)(angles)
        return qml.state()

    batched = np.asarray(states(a))  # angles[..., slot] → parameter broadcasting
    assert batched.shape == (3, 16)
    for i in range(3):
        column = dense_unitary(circuit, a[i])[:, basis_index((2,), 4)]
        np.testing.assert_allclose(batched[i], column, atol=1e-12)


# ---- gradients through the torch interface ------------------------------------------------------


def finite_difference(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize(
    "circuit, diff_method",
    [(pyramid(4), "backprop"), (butterfly(4, "fbs"), "backprop"), (pauli(6, 1), "parameter-shift")],
    ids=["pyramid-backprop", "butterfly-fbs-backprop", "pauli-mcry-paramshift"],
)
def test_torch_gradient_matches_finite_differences(circuit, diff_method):
    n = circuit.n_qubits
    qfunc = to_pennylane(circuit)

    @qml.qnode(qml.device("default.qubit", wires=n), interface="torch", diff_method=diff_method)
    def f(angles):
        qml.Hadamard(0)  # leave the HW sector so that several amplitudes interfere
        qml.PauliX(n - 1)
        qfunc(angles)
        return qml.expval(qml.PauliZ(0) @ qml.PauliX(1) + 0.5 * qml.PauliZ(n - 1))

    a0 = rand_angles(circuit, 21)
    x = torch.tensor(a0, dtype=torch.float64, requires_grad=True)
    f(x).backward()
    fd = finite_difference(lambda v: float(f(torch.tensor(v))), a0)
    assert np.max(np.abs(fd)) > 1e-2  # a non-trivial gradient
    np.testing.assert_allclose(x.grad.numpy(), fd, atol=1e-7)


# ---- cross-check with the exact engine ----------------------------------------------------------


def test_matches_exact_engine():
    engine = pytest.importorskip("quicq.engine")
    for name in ("pyramid5", "butterfly8_fbs", "butterfly4_rbs", "x6"):
        circuit = HW_CIRCUITS[name]
        a = rand_angles(circuit, 13)
        t = torch.tensor(a, dtype=torch.float64)
        U = engine.unary_block(circuit, t).numpy()
        assert np.max(np.abs(pennylane_unary_block(circuit, a) - U)) <= 1e-10, name
        S = engine.sector_block(circuit, t, 2).numpy()
        assert np.max(np.abs(pennylane_sector_block(circuit, a, 2) - S)) <= 1e-10, name


# ---- bad input ----------------------------------------------------------------------------------


def test_bad_angles_are_rejected():
    circuit = pyramid(3)
    qfunc = to_pennylane(circuit)
    dev = qml.device("default.qubit", wires=3)

    @qml.qnode(dev)
    def run(a):
        qfunc(a)
        return qml.state()

    with pytest.raises(CircuitError, match=r"non-finite angle .* index \(1,\)"):
        run(np.array([0.1, np.nan, 0.2]))
    with pytest.raises(CircuitError, match=r"expected shape \(\.\.\., 3\)"):
        run(np.zeros(4))
    with pytest.raises(CircuitError, match="non-finite"):
        pennylane_unary_block(circuit, torch.tensor([0.0, math.inf, 0.0]))
    with pytest.raises(CircuitError, match=r"expected shape \(\.\.\., 3\)"):
        pennylane_unary_block(circuit, [0.1, 0.2])
    with pytest.raises(CircuitError, match="one angle vector"):
        pennylane_unary_block(circuit, np.zeros((2, 3)))


def test_bad_wires_indices_and_orders():
    circuit = pyramid(3)
    with pytest.raises(CircuitError, match="needs 3 wires, got 2"):
        to_pennylane(circuit, wires=[0, 1])
    with pytest.raises(CircuitError, match="distinct"):
        to_pennylane(circuit, wires=[0, 1, 1])
    with pytest.raises(CircuitError, match="expects a quicq Circuit"):
        to_pennylane("pyramid")
    with pytest.raises(CircuitError, match="input index 8 is not a basis index of 3 qubits"):
        pennylane_block(circuit, np.zeros(3), [8], [0])
    with pytest.raises(CircuitError, match="output index"):
        pennylane_block(circuit, np.zeros(3), [0], [-1])
    with pytest.raises(CircuitError, match="k=4 is impossible"):
        pennylane_sector_block(circuit, np.zeros(3), 4)
    with pytest.raises(CircuitError, match="exactly 3 wires"):
        pennylane_block(circuit, np.zeros(3), [1], [1], qml.device("default.qubit", wires=4))


# ---- OpenQASM for PennyLane: qml.from_qasm3 reads quicq's "pennylane" flavour --------------------

@pytest.mark.parametrize("make", [lambda: pyramid(4), lambda: butterfly(4), lambda: brick(3, 2),
                                  lambda: pauli(6, 1), lambda: pauli(4, 1)],
                         ids=["pyramid", "butterfly-fbs", "brick", "pauli-6", "pauli-4"])
@pytest.mark.parametrize("symbolic", [False, True], ids=["bound", "symbolic"])
def test_pennylane_reads_the_pennylane_flavour_and_agrees_with_the_engine(make, symbolic):
    from quicq.circuits.qasm import to_qasm3
    from quicq.engine import pauli_columns, sector_blocks, unary_block

    circ = make()
    n = circ.n_qubits
    th = np.random.default_rng(11).uniform(-3, 3, circ.n_params)
    text = to_qasm3(circ, None if symbolic else th, flavour="pennylane")
    assert "include" not in text and not any(line.startswith("gate ") for line in text.splitlines())
    qfunc = qml.from_qasm3(text, wire_map={f"q{i}": i for i in range(n)})
    inputs = {f"theta_{i}": float(v) for i, v in enumerate(th)} if symbolic else {}
    U = np.asarray(qml.matrix(lambda: qfunc(**inputs), wire_order=range(n))())
    assert np.max(np.abs(U.imag)) < 1e-12
    U = U.real  # PennyLane's order: qubit 0 is the most significant bit, as in quicq
    angles = torch.tensor(th, dtype=torch.float64)
    if circ.hw_preserving:
        idx = sector_indices(n, 1)
        np.testing.assert_allclose(U[np.ix_(idx, idx)], unary_block(circ, angles).numpy(), atol=1e-12)
        (B2,) = sector_blocks(circ, angles, [2])
        idx = sector_indices(n, 2)
        np.testing.assert_allclose(U[np.ix_(idx, idx)], B2.numpy(), atol=1e-12)
    else:
        N = circ.meta["N"]
        code = list(circ.code_space.indices) if circ.code_space else list(range(N))
        np.testing.assert_allclose(U[np.ix_(code, code[:3])], pauli_columns(circ, angles, 3).numpy(), atol=1e-12)


def test_unknown_flavour_is_refused():
    from quicq.circuits.qasm import QasmError, to_qasm3

    with pytest.raises(QasmError, match="flavour"):
        to_qasm3(pyramid(3), flavour="cirq")
