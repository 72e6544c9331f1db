"""OpenQASM 2.0 / 3.0 import, through Qiskit's parsers, into quicq's IR.

Import first checks the raw text against :class:`~quicq.circuits.qasm_scan.Limits` (length,
register sizes, gate count, nesting; :func:`~quicq.circuits.qasm_scan.scan_qasm`), then parses
with ``qiskit.qasm2.loads`` / ``qiskit.qasm3.loads`` and reads the result with
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
from quicq.circuits.codespace import CodeSpace
from quicq.circuits.ir import Circuit, CircuitError
from quicq.circuits.qasm_scan import DEFAULT_LIMITS, Limits, QasmError, _strip, scan_qasm
from quicq.circuits.qasm_write import META_KEYS

__all__ = ["from_qasm", "from_qasm2", "from_qasm3", "qasm_version"]

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
            k in META_KEYS and isinstance(v, (str, int)) and not isinstance(v, bool) for k, v in raw.items()
        ):
            raise QasmError(
                f"bad '// quicq meta:' comment: expected a JSON object of {list(META_KEYS)} with "
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
