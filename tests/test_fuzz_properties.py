"""Property-based tests (Hypothesis, fixed seed): random circuits round-trip through every
compiler exactly, and arbitrary input to the readers and the IR constructors raises only quicq's
own errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qiskit")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from quicq.circuits import Circuit, CircuitError, CodeSpace, Gate, pauli  # noqa: E402
from quicq.circuits.qasm import QasmError, from_qasm, from_qasm2, from_qasm3, to_qasm2, to_qasm3  # noqa: E402
from quicq.circuits.qiskit_io import from_qiskit, to_qiskit  # noqa: E402

FAST = settings(derandomize=True, deadline=None, max_examples=60,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
angle = st.floats(allow_nan=False, allow_infinity=False, width=64, min_value=-1e6, max_value=1e6)


@st.composite
def circuits(draw, max_qubits: int = 5, max_gates: int = 8) -> Circuit:
    """Valid circuits over every gate kind, one slot per parametric gate in gate order (the
    slot layout a bound OpenQASM 2 program reads back as)."""
    n = draw(st.integers(2, max_qubits))
    gates, slot = [], 0
    for _ in range(draw(st.integers(0, max_gates))):
        kind = draw(st.sampled_from(["rbs", "fbs", "ry", "mcry", "cz", "z", "x", "h"]))
        if kind in ("rbs", "fbs", "cz"):
            a, b = sorted(draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True)))
            qubits = (a, b)
        elif kind == "mcry":
            qubits = tuple(draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=min(n, 3), unique=True)))
        else:
            qubits = (draw(st.integers(0, n - 1)),)
        ctrl = tuple(draw(st.lists(st.integers(0, 1), min_size=len(qubits) - 1,
                                   max_size=len(qubits) - 1))) if kind == "mcry" else None
        param = None
        if kind in ("rbs", "fbs", "ry", "mcry"):
            param, slot = slot, slot + 1
        gates.append(Gate(kind, qubits, param, ctrl))
    return Circuit(n, tuple(gates), slot)


@FAST
@given(data=st.data())
def test_random_circuits_round_trip_through_qasm_and_qiskit(data):
    circ = data.draw(circuits())
    th = np.array(data.draw(st.lists(angle, min_size=circ.n_params, max_size=circ.n_params)), dtype=float)
    back, angles = from_qasm2(to_qasm2(circ, th))
    assert back == circ and angles.tobytes() == th.tobytes()
    back, angles = from_qiskit(to_qiskit(circ, th))
    assert back == circ and np.array_equal(angles, th)
    back, angles = from_qiskit(to_qiskit(circ))
    assert back == circ
    assert angles is None if circ.n_params else angles.shape == (0,)  # nothing free: all bound


@settings(derandomize=True, deadline=None, max_examples=25)
@given(circ=circuits(max_qubits=4, max_gates=5))
def test_random_circuits_round_trip_through_symbolic_qasm3(circ):
    back, angles = from_qasm3(to_qasm3(circ))
    assert back == circ and (angles is None if circ.n_params else angles.shape == (0,))


@settings(derandomize=True, deadline=None, max_examples=150)
@given(text=st.one_of(
    st.text(max_size=200),
    st.builds(lambda body: "OPENQASM 2.0;\n" + body, st.text(max_size=200)),
    st.builds(lambda body: 'OPENQASM 3.0;\ninclude "stdgates.inc";\n' + body,
              st.text(alphabet="qubit[]0123456789;(){}/*-.enafirxhyzc ,$\n", max_size=120)),
))
def test_arbitrary_text_raises_only_qasm_error(text):
    try:
        circuit, _ = from_qasm(text)
    except QasmError:
        return
    assert isinstance(circuit, Circuit)


junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 6), st.floats(), st.text(max_size=3),
                 st.lists(st.integers(-1, 4), max_size=3), st.tuples(st.integers(-1, 4)),
                 st.tuples(st.integers(0, 3), st.integers(0, 3)), st.dictionaries(st.text(max_size=2), st.integers()))


@settings(derandomize=True, deadline=None, max_examples=250)
@given(name=st.one_of(st.sampled_from(["rbs", "fbs", "ry", "mcry", "cz", "h", "bogus"]), junk),
       qubits=junk, param=junk, ctrl=junk, n_qubits=junk, n_params=junk, meta=junk, code=junk)
def test_ir_constructors_raise_only_circuit_error(name, qubits, param, ctrl, n_qubits, n_params, meta, code):
    try:
        gate = Gate(name, qubits, param, ctrl)
        circ = Circuit(n_qubits, (gate,), n_params, meta if meta is not None else {},
                       None if code is None else CodeSpace(code))
    except CircuitError:
        return
    hash(circ)  # every accepted circuit is hashable (engine plans are cached on it)
    assert circ == Circuit(circ.n_qubits, circ.gates, circ.n_params, dict(circ.meta), circ.code_space)


@settings(derandomize=True, deadline=None, max_examples=6)
@given(N=st.integers(2, 24), layers=st.integers(0, 1))
def test_pauli_code_space_survives_every_round_trip(N, layers):
    circ = pauli(N, layers)
    m = N & -N
    assert (circ.code_space is None) == (N == m)  # a power of two uses every basis state
    th = np.linspace(-1, 1, circ.n_params)
    for back, _ in (from_qasm(to_qasm2(circ, th)), from_qasm3(to_qasm3(circ)), from_qiskit(to_qiskit(circ))):
        assert back == circ and back.code_space == circ.code_space
