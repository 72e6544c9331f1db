"""OpenQASM 2.0 / 3.0 export, written by quicq itself from the IR (no Qiskit needed).

Writing the text directly keeps the output stable, readable and exact:

* every gate quicq uses that the standard libraries lack is *defined* in the file from
  standard gates: ``rbs(theta) a, b`` (from :data:`quicq.circuits.gates.RBS_DECOMPOSITION`),
  ``fbs_<w>(theta)`` on w consecutive qubits a..b (one definition per span width used:
  FBS = P · RBS(a, b) · P with P = ∏ CZ(c, a) over the middle qubits), and
  ``mcry_<bits>(theta) c_0, …, c_{k−1}, t`` (one per control state used; ``bits[i]`` is the
  value control i must have);
* bound angles are printed with ``repr`` precision (shortest exact decimal), so
  IR → QASM → IR returns bit-identical angles;
* OpenQASM 3 output without angles declares one ``input float[64] theta_<i>;`` per slot;
* a circuit's code space (Pauli circuits) is written as the comment
  ``// quicq code_space: <indices>`` and its layout as ``// quicq meta: <json>``; parsers
  ignore comments, quicq reads them back, so the round trip keeps the code space;
* ``flavour="pennylane"`` (OpenQASM 3 only) writes what ``qml.from_qasm3`` reads: no
  ``include``, no gate definitions (every gate expanded into standard gates), one named
  qubit ``q<i>`` per qubit (``wire_map={f"q{i}": i}`` gives PennyLane wires 0..n−1).

The ``mcry`` body is an exact, ancilla-free, real decomposition (no global phase): with
Π the projector onto the control state s, C-RY(θ) = exp(−iθ/2 · Y_t ⊗ Π) and
Π = 2^−k Σ_S (−1)^{|S ∩ s|} Z_S, so it is a product of exp(−iθ_S/2 · Y_t Z_S) =
CX_S · RY_t(θ_S) · CX_S with θ_S = ±θ/2^k; visiting the subsets S in Gray-code order leaves
one CX between consecutive RYs (2^k RY and 2^k CX in all).
"""

from __future__ import annotations

import json
import re
from typing import Any

from quicq.circuits._angles import angle_vector
from quicq.circuits.bitorder import control_state_int
from quicq.circuits.gates import RBS_DECOMPOSITION, fbs_decomposition
from quicq.circuits.ir import Circuit, Gate
from quicq.circuits.qasm_scan import QasmError

__all__ = ["FLAVOURS", "META_KEYS", "to_qasm2", "to_qasm3"]

FLAVOURS = ("qiskit", "pennylane")
"""OpenQASM 3 dialects :func:`to_qasm3` writes: ``qiskit`` (default, gate definitions, read back
by quicq and ``qiskit.qasm3.loads``) and ``pennylane`` (expanded, for ``qml.from_qasm3``)."""


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------


def _fmt_angle(value: float) -> str:
    """Shortest exact decimal of ``value`` (``repr``), always with a '.' as OpenQASM 2 requires."""
    text = repr(float(value))
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exp = text.split("e")
        text = f"{mantissa}.0e{exp}"
    elif "e" not in text and "." not in text:  # pragma: no cover - repr(float) always has one
        text += ".0"
    return text


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def _paren(symbol: str) -> str:
    """``symbol`` as an operand: a name as it is, anything else (a number) in parentheses."""
    return symbol if _IDENTIFIER.fullmatch(symbol) else f"({symbol})"


def _scaled(symbol: str, mult: float) -> str:
    """``symbol`` times a multiplier, spelled as an OpenQASM expression."""
    if mult == 1:
        return symbol
    if mult == -1:
        return f"-{_paren(symbol)}"
    return f"{_fmt_angle(mult)}*{_paren(symbol)}"


def _rbs_body(theta: str, a: str, b: str) -> list[str]:
    names = (a, b)
    body = []
    for gate, qubits, mult in RBS_DECOMPOSITION:
        args = ", ".join(names[q] for q in qubits)
        body.append(f"{gate}({_scaled(theta, mult)}) {args};" if gate == "ry" else f"{gate} {args};")
    return body


def _rbs_definition() -> str:
    return f"gate rbs(theta) a, b {{ {' '.join(_rbs_body('theta', 'a', 'b'))} }}"


def _fbs_qubit_names(width: int) -> list[str]:
    return ["a"] + [f"m{i}" for i in range(1, width - 1)] + ["b"]


def _fbs_body(theta: str, names: list[str], expand_rbs: bool) -> list[str]:
    body = []
    for gate, qubits, mult in fbs_decomposition(len(names)):
        a, b = (names[q] for q in qubits)
        if gate != "rbs":
            body.append(f"{gate} {a}, {b};")
        elif expand_rbs:
            body += _rbs_body(_scaled(theta, mult), a, b)
        else:
            body.append(f"rbs({_scaled(theta, mult)}) {a}, {b};")
    return body


def _fbs_definition(width: int) -> str:
    names = _fbs_qubit_names(width)
    return f"gate fbs_{width}(theta) {', '.join(names)} {{ {' '.join(_fbs_body('theta', names, False))} }}"


def _mcry_name(ctrl_state: tuple[int, ...]) -> str:
    return "mcry_" + "".join(str(v) for v in ctrl_state)


def _mcry_body(theta: str, ctrls: list[str], t: str, ctrl_state: tuple[int, ...]) -> list[str]:
    """Gray-code decomposition of RY(θ) on t controlled on c_i = ctrl_state[i] (module docstring)."""
    k = len(ctrl_state)
    ones = control_state_int(ctrl_state)  # bit i ↔ control i
    body = []
    m = 1 << k
    for j in range(m):
        subset = j ^ (j >> 1)  # Gray code: the CX mask currently folded onto the target
        sign = -1 if (subset & ones).bit_count() % 2 else 1
        body.append(f"ry({'-' if sign < 0 else ''}{_paren(theta)}/{m}) {t};")
        nxt = (j + 1) % m
        flipped = (subset ^ (nxt ^ (nxt >> 1))).bit_length() - 1
        body.append(f"cx {ctrls[flipped]}, {t};")
    return body


def _mcry_definition(ctrl_state: tuple[int, ...]) -> str:
    ctrls = [f"c{i}" for i in range(len(ctrl_state))]
    body = _mcry_body("theta", ctrls, "t", ctrl_state)
    return f"gate {_mcry_name(ctrl_state)}(theta) {', '.join(ctrls + ['t'])} {{ {' '.join(body)} }}"


def _definitions(circuit: Circuit) -> list[str]:
    """Definitions of every non-standard gate the circuit uses, each before its first use."""
    names = {g.name for g in circuit.gates}
    widths = sorted({g.qubits[1] - g.qubits[0] + 1 for g in circuit.gates if g.name == "fbs"})
    states = sorted(
        {g.ctrl_state for g in circuit.gates if g.name == "mcry" and g.ctrl_state},
        key=lambda s: (len(s), s),
    )
    out = []
    if "rbs" in names or "fbs" in names:
        out.append(_rbs_definition())
    out += [_fbs_definition(w) for w in widths]
    out += [_mcry_definition(s) for s in states]
    return out


def _statement(g: Gate, angle: str | None) -> str:
    q = [f"q[{j}]" for j in g.qubits]
    if g.name == "rbs":
        return f"rbs({angle}) {q[0]}, {q[1]};"
    if g.name == "fbs":
        a, b = g.qubits
        return f"fbs_{b - a + 1}({angle}) {', '.join(f'q[{j}]' for j in range(a, b + 1))};"
    if g.name == "mcry":
        if not g.ctrl_state:
            return f"ry({angle}) {q[-1]};"
        return f"{_mcry_name(g.ctrl_state)}({angle}) {', '.join(q)};"
    if g.name == "ry":
        return f"ry({angle}) {q[0]};"
    return f"{g.name} {', '.join(q)};"


def _expanded(g: Gate, angle: str | None, q: list[str]) -> list[str]:
    """One IR gate in standard gates only (the PennyLane flavour): the same decompositions."""
    if g.name == "rbs":
        return _rbs_body(angle, q[g.qubits[0]], q[g.qubits[1]])
    if g.name == "fbs":
        a, b = g.qubits
        return _fbs_body(angle, q[a : b + 1], True)
    if g.name == "mcry" and g.ctrl_state:
        return _mcry_body(angle, [q[c] for c in g.qubits[:-1]], q[g.qubits[-1]], g.ctrl_state)
    if g.name in ("ry", "mcry"):
        return [f"ry({angle}) {q[g.qubits[-1]]};"]
    return [f"{g.name} {', '.join(q[j] for j in g.qubits)};"]


def _header_comment(circuit: Circuit) -> list[str]:
    """A readable summary, then what quicq reads back: the code space and scalar layout fields."""
    lines = ["// quicq " + str(circuit).replace("\n", " ")]
    if circuit.code_space is not None:
        lines.append(f"// quicq code_space: {circuit.code_space.to_text()}")
    scalars = {k: v for k, v in circuit.meta.items() if k in META_KEYS and isinstance(v, (str, int))
               and not isinstance(v, bool)}
    if scalars:
        lines.append("// quicq meta: " + json.dumps(scalars, ensure_ascii=True, sort_keys=True))
    return lines


# Layout fields an OpenQASM file carries back (display and engine hints; never gates).
META_KEYS = ("layout", "n", "N", "n_layers", "gate", "m", "p")


def _bound_angles(circuit: Circuit, angles: Any) -> list[str]:
    return [_fmt_angle(v) for v in angle_vector(circuit, angles)]


def to_qasm2(circuit: Circuit, angles: Any = None) -> str:
    """OpenQASM 2.0 text of ``circuit`` with the angles bound (OpenQASM 2 has no free parameters).

    ``angles``: one vector of ``n_params`` finite floats (numpy, torch or sequence).
    """
    _need_circuit(circuit, "to_qasm2")
    if angles is None:
        raise QasmError(
            "OpenQASM 2 cannot hold free parameters: pass one angle vector of "
            f"{circuit.n_params} values, or use to_qasm3(circuit) for a symbolic program"
        )
    values = _bound_angles(circuit, angles)
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', *_header_comment(circuit)]
    lines += _definitions(circuit)
    lines.append(f"qreg q[{circuit.n_qubits}];")
    lines += [_statement(g, None if g.param is None else values[g.param]) for g in circuit.gates]
    return "\n".join(lines) + "\n"


def to_qasm3(circuit: Circuit, angles: Any = None, *, flavour: str = "qiskit") -> str:
    """OpenQASM 3.0 text of ``circuit``.

    With ``angles=None`` the program is symbolic: slot i is ``input float[64] theta_<i>;``.
    Otherwise the angles are bound as exact decimals. ``flavour``: ``"qiskit"`` (default;
    custom gate definitions, read back by :func:`from_qasm3` and ``qiskit.qasm3.loads``) or
    ``"pennylane"`` (for ``qml.from_qasm3``: no include, every gate expanded into standard
    gates, qubits named ``q0``, ``q1``, …; pass symbolic inputs as ``theta_<i>=`` keywords).
    """
    _need_circuit(circuit, "to_qasm3")
    if flavour not in FLAVOURS:
        raise QasmError(f"unknown OpenQASM 3 flavour {flavour!r}; choose one of {FLAVOURS}")
    pennylane = flavour == "pennylane"
    lines = ["OPENQASM 3.0;"] + ([] if pennylane else ['include "stdgates.inc";']) + _header_comment(circuit)
    if angles is None:
        values = [f"theta_{i}" for i in range(circuit.n_params)]
        lines += [f"input float[64] {v};" for v in values]
    else:
        values = _bound_angles(circuit, angles)
    if pennylane:
        q = [f"q{i}" for i in range(circuit.n_qubits)]
        lines += [f"qubit {name};" for name in q]
        for g in circuit.gates:
            lines += _expanded(g, None if g.param is None else values[g.param], q)
        return "\n".join(lines) + "\n"
    lines += _definitions(circuit)
    lines.append(f"qubit[{circuit.n_qubits}] q;")
    lines += [_statement(g, None if g.param is None else values[g.param]) for g in circuit.gates]
    return "\n".join(lines) + "\n"


def _need_circuit(circuit: Any, fn: str) -> None:
    if not isinstance(circuit, Circuit):
        raise QasmError(f"{fn} expects a quicq Circuit, got {type(circuit).__name__}")
