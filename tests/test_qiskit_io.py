"""quicq IR ⇄ Qiskit: round trips for every layout, parameter slots, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("qiskit")

from _dense_reference import dense_unitary  # noqa: E402
from qiskit import QuantumCircuit, QuantumRegister, transpile  # noqa: E402
from qiskit.circuit import Parameter, ParameterVector  # noqa: E402
from qiskit.circuit.library import RYGate, XXPlusYYGate  # noqa: E402
from qiskit.quantum_info import Operator  # noqa: E402

from quicq.circuits import (  # noqa: E402
    Circuit,
    CircuitError,
    Gate,
    brick,
    butterfly,
    pauli,
    pyramid,
    x_layout,
)
from quicq.circuits.qiskit_io import FBSGate, RBSGate, from_qiskit, to_qiskit  # noqa: E402

RNG = np.random.default_rng(11)


def all_layouts() -> list[Circuit]:
    out = [pyramid(n) for n in (2, 3, 6)] + [x_layout(n) for n in (4, 7)]
    out += [butterfly(n) for n in (2, 4, 8, 16)] + [butterfly(8, "rbs"), butterfly(16, "rbs")]
    out += [brick(5, 3), brick(6, 4, "fbs"), pyramid(5, "fbs")]
    out += [pauli(N, L) for N, L in [(2, 1), (8, 2), (16, 0), (6, 1), (12, 2), (24, 1), (40, 1), (96, 2)]]
    return out


def layout_id(c: Circuit) -> str:
    m = c.meta
    return f"{m['layout']}-{m.get('n', m.get('N'))}-{m.get('gate', m.get('n_layers', ''))}"


def big_endian(op) -> np.ndarray:
    return Operator(op).reverse_qargs().data.real


@pytest.mark.parametrize("circ", all_layouts(), ids=layout_id)
def test_round_trip_symbolic(circ):
    qc = to_qiskit(circ)
    assert qc.num_parameters == circ.n_params
    back, angles = from_qiskit(qc)
    assert angles is None
    assert back == circ


@pytest.mark.parametrize("circ", all_layouts(), ids=layout_id)
def test_round_trip_bound_is_bit_exact(circ):
    th = RNG.uniform(-4, 4, circ.n_params)
    qc = to_qiskit(circ, th)
    assert qc.num_parameters == 0
    back, angles = from_qiskit(qc)
    assert back == circ  # layouts use one slot per gate, in gate order
    assert angles.dtype == np.float64 and np.array_equal(angles, th)


def test_named_gates_draw_and_transpile():
    circ = butterfly(4)
    qc = to_qiskit(circ)
    drawing = str(qc.draw(output="text")).lower()
    assert "fbs" in drawing and "θ[0]" in drawing
    assert "rbs" in str(to_qiskit(pyramid(3)).draw(output="text")).lower()
    assert dict(qc.count_ops()) == {"fbs": 4}
    th = RNG.uniform(-1, 1, circ.n_params)
    low = transpile(to_qiskit(circ, th), basis_gates=["cz", "ry", "h"], optimization_level=0)
    assert set(low.count_ops()) <= {"cz", "ry", "h"}
    np.testing.assert_allclose(big_endian(low), dense_unitary(circ, th), atol=1e-12)


def test_fbs_acts_on_the_whole_span_in_order():
    qc = to_qiskit(Circuit(6, (Gate("fbs", (1, 4), 0),), 1))
    (inst,) = qc.data
    assert isinstance(inst.operation, FBSGate) and inst.operation.num_qubits == 4
    assert [qc.find_bit(q).index for q in inst.qubits] == [1, 2, 3, 4]


def test_gate_inverses():
    for gate in (RBSGate(0.4), FBSGate(0.4, 4)):
        np.testing.assert_allclose(
            Operator(gate.inverse()).data, Operator(gate).data.conj().T, atol=1e-12
        )


def test_shared_and_unused_slots_survive_symbolic_round_trip():
    circ = Circuit(3, (Gate("rbs", (0, 1), 3), Gate("ry", (2,), 1), Gate("rbs", (1, 2), 3)), 5)
    back, angles = from_qiskit(to_qiskit(circ))
    assert angles is None and back == circ and back.n_params == 5


def test_bound_round_trip_gives_each_gate_its_own_slot():
    circ = Circuit(3, (Gate("rbs", (0, 1), 1), Gate("ry", (2,), 0), Gate("rbs", (1, 2), 1)), 2)
    back, angles = from_qiskit(to_qiskit(circ, [0.5, -0.25]))
    assert [g.param for g in back.gates] == [0, 1, 2]
    assert angles.tolist() == [-0.25, 0.5, -0.25]
    np.testing.assert_allclose(dense_unitary(back, angles), dense_unitary(circ, [0.5, -0.25]), atol=1e-15)
    bigger, ang = from_qiskit(to_qiskit(circ, [0.5, -0.25]), n_params=5)
    assert bigger.n_params == 5 and ang.tolist() == [-0.25, 0.5, -0.25, 0.0, 0.0]


def test_parameter_slot_order_rules():
    # bare Parameters: sorted by name
    a, b = Parameter("b"), Parameter("a")
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.ry(b, 1)
    circ, _ = from_qiskit(qc)
    assert [g.param for g in circ.gates] == [1, 0]
    # names <prefix>_<i> (OpenQASM 3 inputs): slot i, count max + 1
    t2, t0 = Parameter("theta_2"), Parameter("theta_0")
    qc = QuantumCircuit(2)
    qc.ry(t2, 0)
    qc.ry(t0, 1)
    circ, _ = from_qiskit(qc)
    assert [g.param for g in circ.gates] == [2, 0] and circ.n_params == 3
    # a ParameterVector: element index, vector length
    v = ParameterVector("w", 4)
    qc = QuantumCircuit(2)
    qc.append(RBSGate(v[3]), [0, 1])
    circ, _ = from_qiskit(qc)
    assert circ.gates[0].param == 3 and circ.n_params == 4
    with pytest.raises(CircuitError, match="less than"):
        from_qiskit(qc, n_params=2)


def test_registers_map_to_global_qubit_indices():
    r1, r2 = QuantumRegister(2, "a"), QuantumRegister(2, "b")
    qc = QuantumCircuit(r1, r2)
    qc.append(RBSGate(0.1), [r1[1], r2[0]])
    qc.cz(r2[1], r1[0])
    circ, _ = from_qiskit(qc)
    assert circ.gates == (Gate("rbs", (1, 2), 0), Gate("cz", (3, 0)))


def test_barriers_and_measurements_are_dropped():
    qc = to_qiskit(pyramid(3), [0.1, 0.2, 0.3])
    qc2 = QuantumCircuit(3, 3)
    qc2.barrier()
    qc2.compose(qc, inplace=True)
    qc2.barrier()
    qc2.measure(range(3), range(3))
    circ, angles = from_qiskit(qc2)
    assert circ == pyramid(3) and angles.tolist() == [0.1, 0.2, 0.3]


@pytest.mark.parametrize("theta", [0.7, -2.1])
def test_xx_plus_yy_with_plus_half_pi_is_rbs(theta):
    qc = QuantumCircuit(3)
    qc.append(XXPlusYYGate(2 * theta, math.pi / 2), [0, 2])
    circ, angles = from_qiskit(qc)
    assert circ.gates == (Gate("rbs", (0, 2), 0),)
    assert angles.tolist() == [theta]
    np.testing.assert_allclose(dense_unitary(circ, angles), big_endian(qc), atol=1e-12)


@pytest.mark.parametrize("beta,qubits", [(-math.pi / 2, [0, 2]), (math.pi / 2, [2, 0]), (-math.pi / 2, [2, 0])])
def test_xx_plus_yy_negative_orientation_bound_is_mapped_honestly(beta, qubits):
    theta = 0.9
    qc = QuantumCircuit(3)
    qc.append(XXPlusYYGate(2 * theta, beta), qubits)
    circ, angles = from_qiskit(qc)
    assert circ.gates == (Gate("rbs", (0, 2), 0),)
    np.testing.assert_allclose(dense_unitary(circ, angles), big_endian(qc), atol=1e-12)
    flips = (beta < 0) != (qubits[0] > qubits[1])
    assert angles[0] == (-theta if flips else theta)


def test_xx_plus_yy_symbolic():
    p = Parameter("p")
    qc = QuantumCircuit(2)
    qc.append(XXPlusYYGate(2 * p, math.pi / 2), [0, 1])
    circ, angles = from_qiskit(qc)
    assert angles is None and circ.gates == (Gate("rbs", (0, 1), 0),)
    qc = QuantumCircuit(2)
    qc.append(XXPlusYYGate(2 * p, -math.pi / 2), [0, 1])
    with pytest.raises(CircuitError, match="not a slot"):
        from_qiskit(qc)
    qc = QuantumCircuit(2)
    qc.append(XXPlusYYGate(p, math.pi / 2), [0, 1])  # p = 2θ: θ = p/2 is no bare slot
    with pytest.raises(CircuitError, match="2·"):
        from_qiskit(qc)
    qc = QuantumCircuit(2)
    qc.append(XXPlusYYGate(0.3, 0.1), [0, 1])
    with pytest.raises(CircuitError, match="complex"):
        from_qiskit(qc)


def test_reversed_rbs_and_fbs():
    qc = QuantumCircuit(4)
    qc.append(RBSGate(0.3), [2, 0])
    qc.append(FBSGate(-0.8, 4), [3, 1, 2, 0])  # ends 3 and 0, middle {1, 2} in any order
    circ, angles = from_qiskit(qc)
    assert circ.gates == (Gate("rbs", (0, 2), 0), Gate("fbs", (0, 3), 1))
    assert angles.tolist() == [-0.3, 0.8]
    np.testing.assert_allclose(dense_unitary(circ, angles), big_endian(qc), atol=1e-12)
    qc = QuantumCircuit(2)
    qc.append(RBSGate(Parameter("t")), [1, 0])
    with pytest.raises(CircuitError, match="free parameter"):
        from_qiskit(qc)
    qc = QuantumCircuit(4)
    qc.append(FBSGate(0.1, 3), [0, 3, 1])  # middle qubit is not the one between the ends
    with pytest.raises(CircuitError, match="strictly between"):
        from_qiskit(qc)


def test_annotated_and_two_control_ry_read_as_mcry():
    qc = QuantumCircuit(4)
    qc.append(RYGate(0.5).control(2, ctrl_state=2, annotated=False), [3, 0, 1])
    qc.append(RYGate(0.6).control(1, ctrl_state=0, annotated=False), [2, 1])  # CRYGate
    qc.append(RYGate(0.7).control(2, ctrl_state=1, annotated=True), [0, 2, 3])
    circ, angles = from_qiskit(qc)
    assert circ.gates == (
        Gate("mcry", (3, 0, 1), 0, (0, 1)),
        Gate("mcry", (2, 1), 1, (0,)),
        Gate("mcry", (0, 2, 3), 2, (1, 0)),
    )
    np.testing.assert_allclose(dense_unitary(circ, angles), big_endian(qc), atol=1e-12)


def test_mcry_without_controls_exports_as_ry():
    circ = Circuit(2, (Gate("mcry", (1,), 0, ()),), 1)
    back, _ = from_qiskit(to_qiskit(circ))
    assert back.gates == (Gate("ry", (1,), 0),)


# ---- bad input ---------------------------------------------------------------------------------


def test_unknown_gate_names_the_gate_and_the_supported_set():
    qc = QuantumCircuit(2)
    qc.cx(0, 1)
    with pytest.raises(CircuitError, match=r"unsupported gate 'cx'.*supported: rbs"):
        from_qiskit(qc)
    qc = QuantumCircuit(1)
    qc.rx(0.2, 0)
    with pytest.raises(CircuitError, match="'rx'"):
        from_qiskit(qc)


def test_parameter_expressions_are_rejected():
    p = Parameter("p")
    qc = QuantumCircuit(1)
    qc.ry(2 * p, 0)
    with pytest.raises(CircuitError, match="expression"):
        from_qiskit(qc)


def test_mixing_bound_and_free_angles_is_rejected():
    qc = QuantumCircuit(2)
    qc.ry(Parameter("p"), 0)
    qc.ry(0.3, 1)
    with pytest.raises(CircuitError, match="mixes"):
        from_qiskit(qc)


def test_global_phase_is_rejected():
    qc = QuantumCircuit(1, global_phase=math.pi)
    qc.ry(0.1, 0)
    with pytest.raises(CircuitError, match="global phase"):
        from_qiskit(qc)
    qc = QuantumCircuit(1, global_phase=2 * math.pi)  # equals no phase
    qc.ry(0.1, 0)
    assert from_qiskit(qc)[0].gates == (Gate("ry", (0,), 0),)


def test_foreign_gate_named_rbs_with_another_convention_is_rejected():
    """A gate called 'rbs' whose body is RBS(−θ) must not be read as quicq's rbs."""
    t = Parameter("t")
    body = QuantumCircuit(2)
    body.append(XXPlusYYGate(2 * t, -math.pi / 2), [0, 1])
    impostor = body.to_gate()
    impostor.name = "rbs"
    qc = QuantumCircuit(2)
    qc.append(impostor, [0, 1])
    with pytest.raises(CircuitError, match="different operation"):
        from_qiskit(qc)  # symbolic: checked at generic angles
    with pytest.raises(CircuitError, match="different operation"):
        from_qiskit(qc.assign_parameters({t: 0.4}))  # bound: checked at its own angle
    honest = QuantumCircuit(2)
    honest.append(XXPlusYYGate(2 * t, math.pi / 2), [0, 1])
    g = honest.to_gate()
    g.name = "rbs"
    qc = QuantumCircuit(2)
    qc.append(g, [0, 1])
    circ, angles = from_qiskit(qc)
    assert angles is None and circ.gates == (Gate("rbs", (0, 1), 0),)


@pytest.mark.parametrize(
    "angles,match",
    [([0.1, float("nan"), 0.2], "non-finite"), ([0.1, 0.2], "expected shape"), ([[0.1, 0.2, 0.3]] * 2, "one angle vector")],
)
def test_to_qiskit_rejects_bad_angles(angles, match):
    with pytest.raises(CircuitError, match=match):
        to_qiskit(pyramid(3), angles)


def test_to_qiskit_accepts_torch_angles():
    torch = pytest.importorskip("torch")
    th = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64, requires_grad=True)
    _, angles = from_qiskit(to_qiskit(pyramid(3), th))
    assert angles.tolist() == [0.1, 0.2, 0.3]


def test_type_errors():
    with pytest.raises(CircuitError, match="quicq Circuit"):
        to_qiskit("pyramid")
    with pytest.raises(CircuitError, match="QuantumCircuit"):
        from_qiskit(pyramid(3))
