"""Hostile OpenQASM: a fixed-seed mutation run, the limits, and gate bodies of every width."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qiskit")

import _qasm_fuzz  # noqa: E402
from qiskit import QuantumCircuit  # noqa: E402

from quicq.circuits import Circuit, CircuitError, Gate, butterfly  # noqa: E402
from quicq.circuits.qasm import Limits, QasmError, from_qasm, from_qasm2, from_qasm3, to_qasm2  # noqa: E402
from quicq.circuits.qiskit_io import from_qiskit  # noqa: E402
from quicq.errors import QuicqError  # noqa: E402

Q2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
Q3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'


@pytest.mark.timeout(240)
def test_fixed_seed_mutation_run_never_escapes_or_breaks_a_round_trip():
    result = _qasm_fuzz.run(5000, seed=20261201)  # ~30-60 s on one loaded core
    assert result.cases == 5000
    assert not result.foreign, result.foreign[:3]
    assert not result.bad_round_trips, result.bad_round_trips[:3]
    # the run exercises both outcomes, not just the parsers' syntax errors
    assert result.accepted > 100 and result.refused > 1000
    assert sum(v for k, v in result.by_error.items() if "not a quicq circuit" in k) > 20


@pytest.mark.timeout(30)
@pytest.mark.parametrize("text, match", [
    (Q2 + "qreg q[2147483648];\n", "register 'q'.*size"),
    (Q2 + "qreg q[10000000];\n", "10,000,000 qubits.*limit 4,096"),
    (Q3 + "qubit[10000000] q;\n", "limit 4,096"),
    (Q2 + "qreg q[2];\ncreg c[2147483648];\n", "register 'c'"),
    (Q2 + "qreg q[" + "9" * 5000 + "];\n", "5000 digits"),  # a Rust panic in Qiskit's parser
    (Q3 + "qubit[2] q;\nry(1/0) q[0];\n", "ZeroDivisionError"),
    (Q3 + "qubit[2] q;\nry(" + "(" * 500 + "1" + ")" * 500 + ") q[0];\n", "nests brackets 501 deep"),
    (Q3 + "const int n = 3;\nqubit[n] q;\n", r"size \[n\]"),
    (Q3 + "qubit[2] q;\nx $9999;\n", "hardware qubit"),
    (Q2 + "qreg q[4000];\n" + "h q;\n" * 600, r"up to [0-9,]+ gates.*limit 2,000,000"),
    (Q2 + "qreg q[2];\x00", "NUL"),
    # found by benchmarks/fuzz.py: Qiskit builds this body lazily and raised TypeError
    (Q2 + "gate rbs(theta) a, b { ry a; }\nqreg q[2];\nrbs(0.5) q[0], q[1];\n", "cannot build the definition"),
])
def test_hostile_text_is_refused_before_parsing(text, match):
    with pytest.raises(QasmError, match=match) as info:
        from_qasm(text)
    assert isinstance(info.value, QuicqError) and isinstance(info.value, ValueError)


def test_limits_are_configurable_and_validated():
    text = Q2 + "qreg q[3];\nh q[0];\n"
    with pytest.raises(QasmError, match="limit 2"):
        from_qasm2(text, limits=Limits(max_qubits=2))
    with pytest.raises(QasmError, match="characters"):
        from_qasm(text, limits=Limits(max_chars=10))
    assert from_qasm(text)[0].n_qubits == 3
    with pytest.raises(CircuitError, match="max_qubits"):
        Limits(max_qubits=0)
    with pytest.raises(CircuitError, match="1 to 5"):
        from_qiskit(QuantumCircuit(6), limits=Limits(max_qubits=5))
    qc = QuantumCircuit(1)
    for _ in range(4):
        qc.h(0)
    with pytest.raises(CircuitError, match="4 instructions"):
        from_qiskit(qc, limits=Limits(max_gates=3))


def _fbs_program(width: int, body: str, version: int = 3) -> str:
    names = ["a"] + [f"m{i}" for i in range(1, width - 1)] + ["b"]
    head = Q3 if version == 3 else Q2
    reg = f"qubit[{width}] q;" if version == 3 else f"qreg q[{width}];"
    rbs = "gate rbs(theta) a, b { h a; h b; cz a, b; ry(theta) a; ry(-theta) b; cz a, b; h a; h b; }"
    return (f"{head}{rbs}\ngate fbs_{width}(theta) {', '.join(names)} {{ {body} }}\n{reg}\n"
            f"fbs_{width}(0.25) {', '.join(f'q[{i}]' for i in range(width))};\n")


@pytest.mark.parametrize("width", [3, 17, 40])
def test_wide_fbs_bodies_are_checked_not_trusted_by_name(width):
    mids = [f"m{i}" for i in range(1, width - 1)]
    parity = " ".join(f"cz {m}, a;" for m in mids)
    good = _fbs_program(width, f"{parity} rbs(theta) a, b; {parity}")
    circuit, angles = from_qasm3(good)
    assert circuit.gates == (Gate("fbs", (0, width - 1), 0),) and angles.tolist() == [0.25]
    # CZ order and orientation do not matter (diagonal gates commute, CZ is symmetric)
    shuffled = " ".join(f"cz a, {m};" for m in reversed(mids))
    assert from_qasm3(_fbs_program(width, f"{shuffled} rbs(theta) a, b; {parity}"))[0] == circuit
    bad_bodies = {
        "empty": "",
        "no parity": "rbs(theta) a, b;",
        "one cz missing": f"{' '.join(f'cz {m}, a;' for m in mids[1:])} rbs(theta) a, b; {parity}",
        "reversed rbs": f"{parity} rbs(theta) b, a; {parity}",
        "other angle": f"{parity} rbs(2*theta) a, b; {parity}",
        "only diagonal": parity + " z a;",
        "touches the middle": f"{parity} rbs(theta) a, b; h {mids[0]}; {parity}",
    }
    for label, body in bad_bodies.items():
        with pytest.raises(QasmError, match="named like quicq's fbs") as info:
            from_qasm3(_fbs_program(width, body))
        assert f"fbs_{width}" in str(info.value), label


def test_wide_bound_fbs_in_qasm2_is_checked_too():
    width = 20
    parity = " ".join(f"cz m{i}, a;" for i in range(1, width - 1))
    assert from_qasm2(_fbs_program(width, f"{parity} rbs(theta) a, b; {parity}", 2))[0].gates[0].name == "fbs"
    with pytest.raises(QasmError, match="named like quicq's fbs"):
        from_qasm2(_fbs_program(width, "rbs(theta) a, b;", 2))


def test_gates_too_wide_to_check_are_refused_and_nested_bodies_are_bounded():
    ctrls = [f"c{i}" for i in range(26)]
    text = (Q3 + f"gate mcry_{'0' * 26}(theta) {', '.join(ctrls)}, t {{ ry(theta) t; }}\n"
            f"qubit[27] q;\nmcry_{'0' * 26}(0.5) {', '.join(f'q[{i}]' for i in range(27))};\n")
    with pytest.raises(QasmError, match="too wide to check"):
        from_qasm3(text)
    # 2^20 gates if expanded: refused by the expansion bound, not run
    defs = "gate g0 a, b { cz a, b; cz a, b; }\n" + "".join(
        f"gate g{i} a, b {{ g{i - 1} a, b; g{i - 1} a, b; }}\n" for i in range(1, 20))
    text = (Q3 + defs + "gate rbs(theta) a, b { g19 a, b; h a; h b; cz a, b; ry(theta) a; "
            "ry(-theta) b; cz a, b; h a; h b; }\nqubit[2] q;\nrbs(0.5) q[0], q[1];\n")
    with pytest.raises(QasmError, match="max_definition_ops"):
        from_qasm3(text)


def test_own_exports_of_wide_fbs_read_back():
    circ = Circuit(20, (Gate("fbs", (0, 19), 0), Gate("fbs", (3, 5), 1)), 2)
    th = np.array([0.3, -1.1])
    back, angles = from_qasm(to_qasm2(circ, th))
    assert back == circ and np.array_equal(angles, th)
    assert from_qasm(to_qasm2(butterfly(16), np.arange(32) / 7))[0] == butterfly(16)
