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

Import first checks the raw text against :class:`~quicq.circuits.qasm_scan.Limits` (length,
register sizes, gate count, nesting; :func:`~quicq.circuits.qasm_scan.scan_qasm`), then parses with ``qiskit.qasm2.loads`` / ``qiskit.qasm3.loads`` and reads the result with
:func:`quicq.circuits.qiskit_io.from_qiskit`. Qiskit keeps user-defined gates as named gates
with their bodies (it does not inline them), so gates named ``rbs``/``fbs_<w>``/``mcry_<bits>``
are recognised by name *and their bodies are checked* against quicq's matrices (a file with
another RBS sign convention is rejected instead of silently flipping angles). OpenQASM 3 inputs
``theta_<i>`` map back to slot i. Every parse or conversion problem raises :class:`QasmError`,
whatever the parser itself raised.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from typing import Any

import numpy as np

from quicq._optional import require
from quicq.circuits._angles import angle_vector
from quicq.circuits.bitorder import control_state_int
from quicq.circuits.codespace import CodeSpace
from quicq.circuits.gates import RBS_DECOMPOSITION, fbs_decomposition
from quicq.circuits.ir import Circuit, CircuitError, Gate
from quicq.circuits.qasm_scan import DEFAULT_LIMITS, Limits, QasmError, _strip, scan_qasm

__all__ = [
    "FLAVOURS", "Limits", "QasmError", "from_qasm", "from_qasm2", "from_qasm3", "qasm_version",
    "to_qasm2", "to_qasm3",
]

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
    scalars = {k: v for k, v in circuit.meta.items() if k in _META_KEYS and isinstance(v, (str, int))
               and not isinstance(v, bool)}
    if scalars:
        lines.append("// quicq meta: " + json.dumps(scalars, ensure_ascii=True, sort_keys=True))
    return lines


# Layout fields an OpenQASM file carries back (display and engine hints; never gates).
_META_KEYS = ("layout", "n", "N", "n_layers", "gate", "m", "p")


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


# ---------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------

_HEADER = re.compile(r"\s*OPENQASM\s+([0-9]{1,9})(?:\.([0-9]{1,9}))?\s*;")
_CODE_LINE = re.compile(r"^// quicq code_space:([^\n]*)$", re.M)
_META_LINE = re.compile(r"^// quicq meta: ([^\n]*)$", re.M)


def _parser_failed(exc: BaseException) -> bool:
    """True for any exception a foreign parser raised on bad text, including a Rust panic
    (pyo3's PanicException derives from BaseException); never for Ctrl-C or exit."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def qasm_version(text: str) -> int:
    """Major version from the ``OPENQASM x.y;`` header (which must be the first statement)."""
    if not isinstance(text, str):
        raise QasmError(f"OpenQASM input must be a str, got {type(text).__name__}")
    m = _HEADER.match(_strip(text[: 1 << 16]))
    if m is None:
        raise QasmError(
            "missing OpenQASM header: the program must start with 'OPENQASM 2.0;' or 'OPENQASM 3.0;'"
        )
    major = int(m.group(1))
    if major not in (2, 3):
        raise QasmError(f"unsupported OpenQASM version {m.group(1)}.{m.group(2) or 0}; quicq reads 2 and 3")
    return major


def _prepare(text: str, expect: int, limits: Limits) -> None:
    """Type, limits (before any parser runs) and header version."""
    if not isinstance(text, str):
        raise QasmError(f"OpenQASM input must be a str, got {type(text).__name__}")
    if not isinstance(limits, Limits):
        raise QasmError(f"limits must be a quicq Limits, got {type(limits).__name__}")
    if len(text) > limits.max_chars:
        scan_qasm(text, limits)  # raises with the length message
    version = qasm_version(text)
    if version != expect:
        raise QasmError(f"expected an OpenQASM {expect} program, the header says version {version}")
    scan_qasm(text, limits)


def _directives(text: str, limits: Limits) -> tuple[CodeSpace | None, dict[str, Any]]:
    """The code space and layout fields quicq wrote as comments (see the module docstring)."""
    codes = _CODE_LINE.findall(text)
    metas = _META_LINE.findall(text)
    if len(codes) > 1 or len(metas) > 1:
        raise QasmError("the program repeats a '// quicq code_space:' or '// quicq meta:' comment")
    code = None
    if codes:
        try:
            code = CodeSpace.from_text(codes[0], max_dim=limits.max_gates)
        except CircuitError as exc:
            raise QasmError(f"bad '// quicq code_space:' comment: {exc}") from exc
    meta: dict[str, Any] = {}
    if metas:
        try:
            raw = json.loads(metas[0]) if len(metas[0]) <= 4096 else None
        except (ValueError, RecursionError) as exc:
            raise QasmError(f"bad '// quicq meta:' comment: not JSON ({exc})") from exc
        if not isinstance(raw, dict) or not all(
            k in _META_KEYS and isinstance(v, (str, int)) and not isinstance(v, bool) for k, v in raw.items()
        ):
            raise QasmError(
                f"bad '// quicq meta:' comment: expected a JSON object of {list(_META_KEYS)} with "
                f"string or integer values (at most 4096 characters)"
            )
        meta = raw
    return code, meta


def _to_ir(qc: Any, version: int, text: str, limits: Limits) -> tuple[Circuit, np.ndarray | None]:
    from quicq.circuits.qiskit_io import from_qiskit

    code, layout = _directives(text, limits)
    try:
        circuit, angles = from_qiskit(qc, limits=limits)
        meta = {**circuit.meta, **layout, "source": f"openqasm{version}"}
        if code is not None and layout.get("layout") == "pauli" and layout.get("N") != code.dim:
            raise CircuitError(f"meta N={layout.get('N')} disagrees with the code space of {code.dim} states")
        return Circuit(circuit.n_qubits, circuit.gates, circuit.n_params, meta, code), angles
    except CircuitError as exc:
        raise QasmError(f"OpenQASM {version} program is not a quicq circuit: {exc}") from exc


def from_qasm2(text: str, *, limits: Limits = DEFAULT_LIMITS) -> tuple[Circuit, np.ndarray]:
    """Read an OpenQASM 2.0 program: returns ``(circuit, angles)``, one slot per angle in gate order.

    ``limits`` (:class:`~quicq.circuits.qasm_scan.Limits`) bounds the text, checked before parsing.
    """
    _prepare(text, 2, limits)
    qasm2 = require("qiskit.qasm2", "qiskit")
    try:
        qc = qasm2.loads(text)
    except BaseException as exc:
        if not _parser_failed(exc):
            raise
        raise QasmError(f"invalid OpenQASM 2: {_one_line(exc)}") from exc
    circuit, angles = _to_ir(qc, 2, text, limits)
    if angles is None:  # pragma: no cover - OpenQASM 2 has no free parameters
        raise QasmError("OpenQASM 2 program has free parameters")
    return circuit, angles


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:500] or "syntax error"
    return text if type(exc).__name__.startswith("QASM") else f"{type(exc).__name__}: {text}"


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


def from_qasm3(text: str, *, limits: Limits = DEFAULT_LIMITS) -> tuple[Circuit, np.ndarray | None]:
    """Read an OpenQASM 3.0 program: ``(circuit, None)`` if it has inputs, else ``(circuit, angles)``.

    Inputs named ``theta_<i>`` become slot i (other names: sorted by name, see
    :func:`quicq.circuits.qiskit_io.from_qiskit`). Needs ``qiskit-qasm3-import``. ``limits``
    bounds the text, checked before parsing.
    """
    _prepare(text, 3, limits)
    qasm3 = require("qiskit.qasm3", "qiskit")
    from qiskit.exceptions import MissingOptionalLibraryError

    captured = io.StringIO()  # the ANTLR parser prints its diagnostics to stderr
    try:
        with contextlib.redirect_stderr(captured):
            qc = qasm3.loads(text)
    except MissingOptionalLibraryError as exc:
        raise QasmError(
            "reading OpenQASM 3 needs the qiskit-qasm3-import package:\n    pip install 'quicq[qiskit]'"
        ) from exc
    except BaseException as exc:
        # The importer's QiskitErrors, the reference parser's QASM3ParsingError, and whatever
        # its evaluator raises on hostile text (ZeroDivisionError, RecursionError, …).
        if not _parser_failed(exc):
            raise
        raise QasmError(_qasm3_message(exc, captured.getvalue())) from exc
    return _to_ir(qc, 3, text, limits)


def _qasm3_message(exc: BaseException, stderr: str) -> str:
    """One readable line: the parser's message (or its stderr diagnostics) and the location."""
    QiskitError = require("qiskit.exceptions", "qiskit").QiskitError

    detail = " ".join(str(exc).split())[:500]
    if detail and not isinstance(exc, QiskitError):
        detail = f"{type(exc).__name__}: {detail}"
    if not detail:
        diag = "; ".join(line.strip() for line in stderr.splitlines() if line.strip())
        detail = diag or "syntax error"
    where = _antlr_location(exc)
    return f"invalid OpenQASM 3: {detail}" + (f" ({where})" if where else "")


def from_qasm(text: str, *, limits: Limits = DEFAULT_LIMITS) -> tuple[Circuit, np.ndarray | None]:
    """Read OpenQASM 2.0 or 3.0, chosen by the ``OPENQASM`` header."""
    if isinstance(text, str) and isinstance(limits, Limits) and len(text) > limits.max_chars:
        scan_qasm(text, limits)  # the length error, before reading the header
    reader = from_qasm2 if qasm_version(text) == 2 else from_qasm3
    return reader(text, limits=limits)
