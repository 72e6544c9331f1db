"""OpenQASM 2.0 / 3.0 export (written by quicq from the IR) and import (via Qiskit's parsers).

Export writes the text itself (no Qiskit needed), so the output is stable, readable and exact:

* every gate quicq uses that the standard libraries lack is *defined* in the file from
  standard gates: ``rbs(theta) a, b`` (from :data:`quicq.circuits.gates.RBS_DECOMPOSITION`),
  ``fbs_<w>(theta)`` on w consecutive qubits a..b (one definition per span width used:
  FBS = P · RBS(a, b) · P with P = ∏ CZ(c, a) over the middle qubits), and
  ``mcry_<bits>(theta) c_0, …, c_{k−1}, t`` (one per control state used; ``bits[i]`` is the
  value control i must have);
* bound angles are printed with ``repr`` precision (shortest exact decimal), so
  IR → QASM → IR returns bit-identical angles;
* OpenQASM 3 output without angles declares one ``input float[64] theta_<i>;`` per slot.

The ``mcry`` body is an exact, ancilla-free, real decomposition (no global phase): with
Π the projector onto the control state s, C-RY(θ) = exp(−iθ/2 · Y_t ⊗ Π) and
Π = 2^−k Σ_S (−1)^{|S ∩ s|} Z_S, so it is a product of exp(−iθ_S/2 · Y_t Z_S) =
CX_S · RY_t(θ_S) · CX_S with θ_S = ±θ/2^k; visiting the subsets S in Gray-code order leaves
one CX between consecutive RYs (2^k RY and 2^k CX in all).

Import parses with ``qiskit.qasm2.loads`` / ``qiskit.qasm3.loads`` and reads the result with
:func:`quicq.circuits.qiskit_io.from_qiskit`. Qiskit keeps user-defined gates as named gates
with their bodies (it does not inline them), so gates named ``rbs``/``fbs_<w>``/``mcry_<bits>``
are recognised by name *and their bodies are checked* against quicq's matrices (a file with
another RBS sign convention is rejected instead of silently flipping angles). OpenQASM 3 inputs
``theta_<i>`` map back to slot i. Every parse or conversion problem raises :class:`QasmError`.
"""

from __future__ import annotations

import contextlib
import io
import re
from typing import Any

import numpy as np

from quicq._optional import require
from quicq.circuits._angles import angle_vector
from quicq.circuits.gates import RBS_DECOMPOSITION
from quicq.circuits.ir import Circuit, CircuitError, Gate

__all__ = ["QasmError", "from_qasm", "from_qasm2", "from_qasm3", "qasm_version", "to_qasm2", "to_qasm3"]


class QasmError(CircuitError):
    """OpenQASM text could not be written or read; the message says what and, when known, where."""


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


def _scaled(symbol: str, mult: float) -> str:
    """``symbol`` times a multiplier, spelled as an OpenQASM expression."""
    if mult == 1:
        return symbol
    if mult == -1:
        return f"-{symbol}"
    return f"{_fmt_angle(mult)}*{symbol}"


def _rbs_definition() -> str:
    names = ("a", "b")
    body = []
    for gate, qubits, mult in RBS_DECOMPOSITION:
        args = ", ".join(names[q] for q in qubits)
        body.append(f"{gate}({_scaled('theta', mult)}) {args};" if gate == "ry" else f"{gate} {args};")
    return f"gate rbs(theta) a, b {{ {' '.join(body)} }}"


def _fbs_qubit_names(width: int) -> list[str]:
    return ["a"] + [f"m{i}" for i in range(1, width - 1)] + ["b"]


def _fbs_definition(width: int) -> str:
    names = _fbs_qubit_names(width)
    parity = [f"cz {m}, a;" for m in names[1:-1]]
    body = parity + ["rbs(theta) a, b;"] + parity
    return f"gate fbs_{width}(theta) {', '.join(names)} {{ {' '.join(body)} }}"


def _mcry_name(ctrl_state: tuple[int, ...]) -> str:
    return "mcry_" + "".join(str(v) for v in ctrl_state)


def _mcry_definition(ctrl_state: tuple[int, ...]) -> str:
    """Gray-code decomposition of RY(θ) on t controlled on c_i = ctrl_state[i] (module docstring)."""
    k = len(ctrl_state)
    ones = sum(v << i for i, v in enumerate(ctrl_state))  # bit i ↔ control i
    ctrls = [f"c{i}" for i in range(k)]
    body = []
    m = 1 << k
    for j in range(m):
        subset = j ^ (j >> 1)  # Gray code: the CX mask currently folded onto the target
        sign = -1 if (subset & ones).bit_count() % 2 else 1
        body.append(f"ry({'-' if sign < 0 else ''}theta/{m}) t;")
        nxt = (j + 1) % m
        flipped = (subset ^ (nxt ^ (nxt >> 1))).bit_length() - 1
        body.append(f"cx {ctrls[flipped]}, t;")
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


def _header_comment(circuit: Circuit) -> str:
    return "// quicq " + str(circuit).replace("\n", " ")


def _bound_angles(circuit: Circuit, angles: Any) -> list[str]:
    return [_fmt_angle(v) for v in angle_vector(circuit, angles)]


def to_qasm2(circuit: Circuit, angles: Any) -> str:
    """OpenQASM 2.0 text of ``circuit`` with the angles bound (OpenQASM 2 has no free parameters).

    ``angles``: one vector of ``n_params`` finite floats (numpy, torch or sequence).
    """
    if angles is None:
        raise QasmError(
            "OpenQASM 2 cannot hold free parameters: pass one angle vector of "
            f"{circuit.n_params} values, or use to_qasm3(circuit) for a symbolic program"
        )
    values = _bound_angles(circuit, angles)
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', _header_comment(circuit)]
    lines += _definitions(circuit)
    lines.append(f"qreg q[{circuit.n_qubits}];")
    lines += [_statement(g, None if g.param is None else values[g.param]) for g in circuit.gates]
    return "\n".join(lines) + "\n"


def to_qasm3(circuit: Circuit, angles: Any = None) -> str:
    """OpenQASM 3.0 text of ``circuit``.

    With ``angles=None`` the program is symbolic: slot i is ``input float[64] theta_<i>;``.
    Otherwise the angles are bound as exact decimals.
    """
    lines = ["OPENQASM 3.0;", 'include "stdgates.inc";', _header_comment(circuit)]
    if angles is None:
        values = [f"theta_{i}" for i in range(circuit.n_params)]
        lines += [f"input float[64] {v};" for v in values]
    else:
        values = _bound_angles(circuit, angles)
    lines += _definitions(circuit)
    lines.append(f"qubit[{circuit.n_qubits}] q;")
    lines += [_statement(g, None if g.param is None else values[g.param]) for g in circuit.gates]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------

_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_HEADER = re.compile(r"\s*OPENQASM\s+([0-9]+)(?:\.([0-9]+))?\s*;")


def qasm_version(text: str) -> int:
    """Major version from the ``OPENQASM x.y;`` header (which must be the first statement)."""
    if not isinstance(text, str):
        raise QasmError(f"OpenQASM input must be a str, got {type(text).__name__}")
    m = _HEADER.match(_COMMENTS.sub(" ", text))
    if m is None:
        raise QasmError(
            "missing OpenQASM header: the program must start with 'OPENQASM 2.0;' or 'OPENQASM 3.0;'"
        )
    major = int(m.group(1))
    if major not in (2, 3):
        raise QasmError(f"unsupported OpenQASM version {m.group(1)}.{m.group(2) or 0}; quicq reads 2 and 3")
    return major


def _to_ir(qc: Any, version: int) -> tuple[Circuit, np.ndarray | None]:
    from quicq.circuits.qiskit_io import from_qiskit

    try:
        circuit, angles = from_qiskit(qc)
    except CircuitError as exc:
        raise QasmError(f"OpenQASM {version} program is not a quicq circuit: {exc}") from exc
    meta = {**circuit.meta, "source": f"openqasm{version}"}
    return Circuit(circuit.n_qubits, circuit.gates, circuit.n_params, meta), angles


def from_qasm2(text: str) -> tuple[Circuit, np.ndarray]:
    """Read an OpenQASM 2.0 program: returns ``(circuit, angles)``, one slot per angle in gate order."""
    version = qasm_version(text)
    if version != 2:
        raise QasmError(f"expected an OpenQASM 2 program, the header says version {version}")
    require("qiskit", "qiskit")
    from qiskit import qasm2

    try:
        qc = qasm2.loads(text)
    except qasm2.QASM2Error as exc:
        raise QasmError(f"invalid OpenQASM 2: {exc}") from exc
    circuit, angles = _to_ir(qc, 2)
    assert angles is not None  # OpenQASM 2 has no free parameters
    return circuit, angles


def _antlr_location(exc: BaseException) -> str:
    """Best-effort 'line L, column C near TOKEN' from an ANTLR error chained under ``exc``."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        tok = getattr(e, "offendingToken", None)
        if tok is not None and getattr(tok, "line", None) is not None:
            return f"line {tok.line}, column {tok.column + 1}, near {tok.text!r}"
        stack += [getattr(e, "__cause__", None), getattr(e, "__context__", None)]
        stack += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
    return ""


def from_qasm3(text: str) -> tuple[Circuit, np.ndarray | None]:
    """Read an OpenQASM 3.0 program: ``(circuit, None)`` if it has inputs, else ``(circuit, angles)``.

    Inputs named ``theta_<i>`` become slot i (other names: sorted by name, see
    :func:`quicq.circuits.qiskit_io.from_qiskit`). Needs ``qiskit-qasm3-import``.
    """
    version = qasm_version(text)
    if version != 3:
        raise QasmError(f"expected an OpenQASM 3 program, the header says version {version}")
    require("qiskit", "qiskit")
    from qiskit import qasm3
    from qiskit.exceptions import MissingOptionalLibraryError, QiskitError

    captured = io.StringIO()  # the ANTLR parser prints its diagnostics to stderr
    try:
        with contextlib.redirect_stderr(captured):
            qc = qasm3.loads(text)
    except MissingOptionalLibraryError as exc:
        raise QasmError(
            "reading OpenQASM 3 needs the qiskit-qasm3-import package (pip install 'quicq[qiskit]')"
        ) from exc
    except (QiskitError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        # QiskitError covers the importer's own errors; the rest come from the openqasm3
        # reference parser (QASM3ParsingError is a plain Exception subclass, below).
        raise QasmError(_qasm3_message(exc, captured.getvalue())) from exc
    except Exception as exc:  # noqa: BLE001 - openqasm3.parser.QASM3ParsingError and kin
        if type(exc).__module__.split(".")[0] not in ("openqasm3", "antlr4", "qiskit_qasm3_import"):
            raise
        raise QasmError(_qasm3_message(exc, captured.getvalue())) from exc
    return _to_ir(qc, 3)


def _qasm3_message(exc: BaseException, stderr: str) -> str:
    """One readable line: the parser's message (or its stderr diagnostics) and the location."""
    require("qiskit", "qiskit")
    from qiskit.exceptions import QiskitError

    detail = str(exc).strip()
    if detail and not isinstance(exc, QiskitError):
        detail = f"{type(exc).__name__}: {detail}"
    if not detail:
        diag = "; ".join(line.strip() for line in stderr.splitlines() if line.strip())
        detail = diag or "syntax error"
    where = _antlr_location(exc)
    return f"invalid OpenQASM 3: {detail}" + (f" ({where})" if where else "")


def from_qasm(text: str) -> tuple[Circuit, np.ndarray | None]:
    """Read OpenQASM 2.0 or 3.0, chosen by the ``OPENQASM`` header."""
    return from_qasm2(text) if qasm_version(text) == 2 else from_qasm3(text)
