"""OpenQASM 2/3 export and import: exact round trips, Aer on the QASM 3 text, bad input."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

pytest.importorskip("qiskit")

from _dense_reference import dense_block, dense_unitary, mcry_table  # noqa: E402
from qiskit import qasm2, qasm3  # noqa: E402
from qiskit.quantum_info import Operator  # noqa: E402

from quicq.circuits import (  # noqa: E402
    Circuit,
    CircuitError,
    Gate,
    brick,
    butterfly,
    code_indices,
    pauli,
    pyramid,
    sector_indices,
    x_layout,
)
from quicq.circuits.qasm import (  # noqa: E402
    QasmError,
    _fmt_angle,
    from_qasm,
    from_qasm2,
    from_qasm3,
    qasm_version,
    to_qasm2,
    to_qasm3,
)

RNG = np.random.default_rng(5)


def layouts() -> list[Circuit]:
    return [
        pyramid(2), pyramid(5), x_layout(6), butterfly(4), butterfly(8), butterfly(16, "rbs"),
        brick(5, 3), pyramid(4, "fbs"), pauli(8, 2), pauli(6, 1), pauli(12, 2), pauli(24, 1), pauli(40, 1),
    ]


def layout_id(c: Circuit) -> str:
    m = c.meta
    return f"{m['layout']}-{m.get('n', m.get('N'))}-{m.get('gate', m.get('n_layers', ''))}"


@pytest.mark.parametrize("circ", layouts(), ids=layout_id)
def test_qasm2_round_trip_is_bit_exact(circ):
    th = RNG.uniform(-4, 4, circ.n_params)
    text = to_qasm2(circ, th)
    back, angles = from_qasm2(text)
    assert back == circ
    assert angles.dtype == np.float64 and np.array_equal(angles, th)
    assert from_qasm(text)[0] == circ


@pytest.mark.parametrize("circ", layouts(), ids=layout_id)
def test_qasm3_round_trips(circ):
    back, angles = from_qasm3(to_qasm3(circ))
    assert back == circ and angles is None
    th = RNG.uniform(-4, 4, circ.n_params)
    back, angles = from_qasm(to_qasm3(circ, th))
    assert back == circ and np.array_equal(angles, th)


def test_awkward_floats_survive_exactly():
    values = [1e-300, 5e-324, -0.0, 1e22, math.pi, -1 / 3, 123456789.123456789, 2.0**-40]
    circ = Circuit(2, tuple(Gate("ry", (i % 2,), i) for i in range(len(values))), len(values))
    _, angles = from_qasm2(to_qasm2(circ, values))
    assert angles.tobytes() == np.asarray(values, dtype=np.float64).tobytes()
    _, angles = from_qasm3(to_qasm3(circ, values))
    assert np.array_equal(angles, values)
    for v in values:
        text = _fmt_angle(v)
        assert "." in text and float(text) == v


def test_qasm2_text_defines_each_gate_once_per_shape():
    text = to_qasm2(butterfly(8), np.zeros(12))
    assert text.startswith('OPENQASM 2.0;\ninclude "qelib1.inc";\n')
    assert text.count("gate rbs(theta) a, b {") == 1
    # butterfly(8) pairs at strides 4, 2, 1 → fbs spans of width 5, 3, 2
    assert sorted(re.findall(r"gate (fbs_\d+)\(", text)) == ["fbs_2", "fbs_3", "fbs_5"]
    assert "gate fbs_5(theta) a, m1, m2, m3, b {" in text
    assert "fbs_5(0.0) q[0], q[1], q[2], q[3], q[4];" in text
    assert "qreg q[8];" in text
    mc = to_qasm2(pauli(24, 1), np.zeros(pauli(24, 1).n_params))
    assert sorted(re.findall(r"gate (mcry_[01]+)\(", mc)) == ["mcry_0", "mcry_1"]
    assert "rbs" not in mc  # only the gates used are defined


def test_qasm3_symbolic_text():
    text = to_qasm3(pyramid(3))
    assert text.startswith('OPENQASM 3.0;\ninclude "stdgates.inc";\n')
    assert [f"input float[64] theta_{i};" in text for i in range(3)] == [True] * 3
    assert "rbs(theta_1) q[1], q[2];\nrbs(theta_2) q[0], q[1];\n" in text
    assert "qubit[3] q;" in text


@pytest.mark.parametrize("ctrl_state", [(0,), (1,), (1, 0), (0, 1, 1)])
def test_emitted_mcry_body_is_exact(ctrl_state):
    """The Gray-code body written into the file equals the controlled RY (no phase, real)."""
    k = len(ctrl_state)
    circ = Circuit(k + 1, (Gate("mcry", tuple(range(k + 1)), 0, ctrl_state),), 1)
    theta = -0.93
    qc = qasm2.loads(to_qasm2(circ, [theta]))
    (inst,) = qc.data
    assert inst.operation.name == "mcry_" + "".join(map(str, ctrl_state))
    body = inst.operation.definition
    assert set(body.count_ops()) == {"ry", "cx"} and body.count_ops()["cx"] == 2**k
    got = Operator(body).reverse_qargs().data
    np.testing.assert_allclose(got, mcry_table(theta, ctrl_state), atol=1e-12)


def test_qasm3_theta_inputs_map_to_their_slots():
    text = """OPENQASM 3.0;
include "stdgates.inc";
input float[64] theta_3;
input float[64] theta_1;
qubit[2] q;
ry(theta_3) q[0];
ry(theta_1) q[1];
cz q[0], q[1];
"""
    circ, angles = from_qasm(text)
    assert angles is None and circ.n_params == 4
    assert circ.gates == (Gate("ry", (0,), 3), Gate("ry", (1,), 1), Gate("cz", (0, 1)))


def test_comments_before_the_header_are_fine():
    text = "// made by hand\n" + to_qasm2(pyramid(2), [0.5])
    assert qasm_version(text) == 2
    assert from_qasm(text)[1].tolist() == [0.5]
    text = "/* block\ncomment */ // and a line\n" + to_qasm3(pyramid(2), [0.5])  # OpenQASM 3 only
    assert qasm_version(text) == 3
    assert from_qasm(text)[1].tolist() == [0.5]


def test_qasm3_loaded_by_qiskit_runs_on_aer_like_the_dense_reference():
    aer = pytest.importorskip("qiskit_aer")
    from qiskit import QuantumCircuit, transpile

    for circ in (butterfly(4), pauli(12, 1)):
        th = RNG.uniform(-np.pi, np.pi, circ.n_params)
        qc = qasm3.loads(to_qasm3(circ))  # symbolic inputs theta_i
        bound = qc.assign_parameters({p: th[int(p.name.split("_")[1])] for p in qc.parameters})
        n = circ.n_qubits
        ins = sector_indices(n, 1) if circ.meta["layout"] != "pauli" else code_indices(circ.meta["N"])
        sim = aer.AerSimulator(method="statevector")
        body = transpile(bound, sim)
        runs = []
        for idx in ins:
            prep = QuantumCircuit(n)
            for q in range(n):
                if (idx >> (n - 1 - q)) & 1:
                    prep.x(q)
            prep.compose(body, inplace=True)
            prep.save_statevector()
            runs.append(prep)
        res = sim.run(runs).result()
        rev = [int(format(i, f"0{n}b")[::-1], 2) for i in ins]  # Aer is little-endian
        got = np.stack([np.asarray(res.data(j)["statevector"])[rev] for j in range(len(ins))], axis=1)
        assert np.max(np.abs(got.imag)) < 1e-12
        np.testing.assert_allclose(got.real, dense_block(circ, th, ins, ins), atol=1e-12)


def test_qasm3_agrees_with_the_exact_engine():
    engine = pytest.importorskip("quicq.engine")
    torch = pytest.importorskip("torch")
    circ = butterfly(8)
    th = RNG.uniform(-np.pi, np.pi, circ.n_params)
    back, _ = from_qasm3(to_qasm3(circ))
    for k in (1, 2):
        want = engine.sector_block(circ, torch.tensor(th), k).numpy()
        idx = sector_indices(8, k)
        np.testing.assert_allclose(dense_block(back, th, idx, idx), want, atol=1e-12)


# ---- bad input ---------------------------------------------------------------------------------

QASM2_HEAD = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\n'
QASM3_HEAD = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[3] q;\n'


@pytest.mark.parametrize(
    "text,match",
    [
        (QASM2_HEAD + "h q[0]\n", r"line|4,|';'"),  # missing semicolon
        (QASM2_HEAD + "foo q[0];\n", "foo"),  # unknown gate
        (QASM2_HEAD + "cz q[0];\n", "quantum arguments"),  # wrong arity
        (QASM2_HEAD + "cx q[0], q[1];\n", "unsupported gate 'cx'"),  # valid QASM, not a quicq gate
        (QASM2_HEAD + "rx(0.1) q[0];\n", "unsupported gate 'rx'"),
        ('include "qelib1.inc";\nqreg q[1];\nh q[0];\n', "missing OpenQASM header"),
        ("", "missing OpenQASM header"),
        ("OPENQASM 4.0;\nqubit q;\n", "unsupported OpenQASM version 4"),
        (QASM3_HEAD + "h q[0]\n", r"syntax error \(line 5, column 1, near '<EOF>'\)"),  # missing semicolon
        (QASM3_HEAD + "h q[0] $ ;\n", r"L4:C7: token recognition error"),  # lexer error
        (QASM3_HEAD + "ry(0.1) q[5];\n", "index out of range"),
        (QASM3_HEAD + "foo q[0];\n", "foo"),
        (QASM3_HEAD + "cz q[0];\n", "qubit"),
        (QASM3_HEAD + "ry(2*0.1) q[0]; reset q[1];\n", "reset"),
    ],
)
def test_malformed_qasm_raises_qasm_error(text, match):
    with pytest.raises(QasmError, match=match) as info:
        from_qasm(text)
    assert isinstance(info.value, CircuitError)


def test_version_mismatch_and_type():
    with pytest.raises(QasmError, match="expected an OpenQASM 3"):
        from_qasm3(to_qasm2(pyramid(2), [0.1]))
    with pytest.raises(QasmError, match="expected an OpenQASM 2"):
        from_qasm2(to_qasm3(pyramid(2)))
    with pytest.raises(QasmError, match="must be a str"):
        from_qasm(b"OPENQASM 2.0;")


def test_rbs_body_with_the_other_sign_convention_is_rejected():
    good = to_qasm2(pyramid(3), [0.2, 0.3, 0.4])
    flipped = good.replace("ry(theta) a; ry(-theta) b;", "ry(-theta) a; ry(theta) b;")
    assert flipped != good
    with pytest.raises(QasmError, match="named like quicq's rbs"):
        from_qasm2(flipped)
    good3 = to_qasm3(pauli(6, 1))
    bad3 = good3.replace("ry(-theta/2) t;", "ry(theta/2) t;", 1)
    assert bad3 != good3
    with pytest.raises(QasmError, match="named like quicq's mcry"):
        from_qasm3(bad3)


def test_symbolic_expression_in_qasm3_is_rejected():
    text = 'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float[64] theta_0;\nqubit[1] q;\nry(2*theta_0) q[0];\n'
    with pytest.raises(QasmError, match="expression"):
        from_qasm(text)


def test_export_errors():
    with pytest.raises(QasmError, match="OpenQASM 2 cannot hold free parameters"):
        to_qasm2(pyramid(3), None)
    with pytest.raises(CircuitError, match="non-finite"):
        to_qasm2(pyramid(3), [0.1, float("inf"), 0.2])
    with pytest.raises(CircuitError, match="non-finite"):
        to_qasm3(pyramid(3), [0.1, float("nan"), 0.2])
    with pytest.raises(CircuitError, match="expected shape"):
        to_qasm3(pyramid(3), [0.1, 0.2])


def test_export_needs_no_qiskit():
    """Writing OpenQASM is pure quicq: it must work where Qiskit is not installed."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['qiskit'] = None\n"  # any 'import qiskit' now fails
        "from quicq.circuits import butterfly, pauli\n"
        "from quicq.circuits.qasm import to_qasm2, to_qasm3\n"
        "print(len(to_qasm2(butterfly(4), [0.1] * 4)) > 0, len(to_qasm3(pauli(6, 1))) > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True True"


def test_dense_reference_sanity():
    """The helper the QASM tests lean on is itself orthogonal and identity at zero angles."""
    circ = butterfly(4)
    np.testing.assert_allclose(dense_unitary(circ, np.zeros(4)), np.eye(16), atol=0)
    u = dense_unitary(circ, RNG.uniform(-3, 3, 4))
    np.testing.assert_allclose(u @ u.T, np.eye(16), atol=1e-12)


def test_to_qasm2_without_angles_is_a_quicq_error():
    with pytest.raises(QasmError, match="OpenQASM 2 cannot hold free parameters"):
        to_qasm2(pyramid(3))
    with pytest.raises(QasmError, match="quicq Circuit"):
        to_qasm3("not a circuit")


def test_pauli_code_space_is_kept_by_qasm_or_the_circuit_differs():
    from quicq.engine import pauli_columns

    circ = pauli(6, 1)
    assert circ.code_space is not None and circ.code_space.indices == tuple(code_indices(6))
    th = RNG.uniform(-2, 2, circ.n_params)
    text = to_qasm3(circ, th)
    assert "// quicq code_space: " + " ".join(map(str, code_indices(6))) in text
    back, angles = from_qasm(text)
    assert back == circ and back.code_space == circ.code_space and back.meta["N"] == 6
    np.testing.assert_allclose(pauli_columns(back, angles, 2), pauli_columns(circ, th, 2))
    # Without quicq's comments the same gates are a different circuit (no code space), not an equal one
    bare = "\n".join(line for line in text.splitlines() if not line.startswith("// quicq "))
    stripped, _ = from_qasm(bare)
    assert stripped.gates == circ.gates and stripped != circ and stripped.code_space is None
    # A code space that does not fit the register, or disagrees with N, is refused
    with pytest.raises(QasmError, match="not a basis state"):
        from_qasm(text.replace("// quicq code_space: 0", "// quicq code_space: 999"))
    with pytest.raises(QasmError, match="disagrees"):
        from_qasm(text.replace('"N": 6', '"N": 5'))
    with pytest.raises(QasmError, match="quicq meta"):
        from_qasm(text.replace('"N": 6', '"N": [[[[6]]]]'))


def test_code_space_is_compared_hashed_and_kept_by_qiskit_metadata():
    from quicq.circuits import CodeSpace
    from quicq.circuits.qiskit_io import from_qiskit, to_qiskit

    circ = pauli(12, 1)
    plain = Circuit(circ.n_qubits, circ.gates, circ.n_params)
    assert plain != circ and hash(plain) != hash(circ)
    assert Circuit(circ.n_qubits, circ.gates, circ.n_params, code_space=circ.code_space) == circ
    assert from_qiskit(to_qiskit(circ))[0] == circ
    assert circ.with_prefix([Gate("x", (0,))]).code_space == circ.code_space
    with pytest.raises(CircuitError, match="different code spaces"):
        plain.compose(circ)
    with pytest.raises(CircuitError, match="repeat"):
        CodeSpace((0, 1, 1))
    full = Circuit(2, (), 0, code_space=CodeSpace((0, 1, 2, 3)))
    assert full.code_space is None  # every basis state in order is no code space at all
