"""Size limits for circuits read from outside, checked on the raw text before any parser runs.

OpenQASM text can ask for work out of all proportion to its length: ``qreg q[2147483648];``
makes a parser allocate two billion qubits, an integer literal wider than 64 bits panics
Qiskit's Rust parser, deep parentheses exhaust Python's recursion in the ANTLR parser, and
one broadcast statement ``h q;`` is a gate per qubit. :func:`scan_qasm` reads the text once
with regular expressions (C speed, no recursion) and refuses such input with a
:class:`QasmError` naming the limit before Qiskit sees it. :class:`Limits` holds the bounds;
pass your own to read larger programs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

import numpy as np

from quicq.circuits.ir import CircuitError

__all__ = ["DEFAULT_LIMITS", "Limits", "QasmError", "QasmScan", "scan_qasm"]


class QasmError(CircuitError):
    """OpenQASM text could not be written or read; the message says what and, when known, where."""


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what an imported circuit may ask for (all checked before parsing).

    Attributes:
        max_chars: length of the OpenQASM text.
        max_qubits: qubits declared in total (classical bits are bounded by the same number).
        max_gates: gate applications, a broadcast over a register counted once per qubit.
        max_nesting: depth of nested (), [] and {}.
        max_definition_ops: gates in one custom gate's body, nested definitions expanded.
        max_verify_work: amplitude updates spent checking one gate body numerically
            (gates × 2^width); wider bodies must pass the structural check or are refused.
    """

    max_chars: int = 64 * 1024 * 1024
    max_qubits: int = 4096
    max_gates: int = 2_000_000
    max_nesting: int = 64
    max_definition_ops: int = 100_000
    max_verify_work: int = 1 << 26

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise CircuitError(f"Limits.{f.name} must be a positive int, got {v!r}")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class QasmScan:
    """What the scan found: qubits and bits declared, an upper bound on gate applications."""

    n_qubits: int
    n_bits: int
    n_gates: int


_NOISE = re.compile(r'//[^\n]*|/\*.*?(?:\*/|\Z)|"[^"\n]*"?', re.S)
_IDENT = r"[A-Za-z_][A-Za-z_0-9]*"
_OLD_REG = re.compile(rf"\b(qreg|creg)\s+({_IDENT})\s*\[([^\]]*)\]")
_NEW_REG = re.compile(rf"\b(qubit|bit)\s*\[([^\]]*)\]\s*({_IDENT})")
_SCALAR_REG = re.compile(rf"\b(qubit|bit)\s+({_IDENT})")
_HARDWARE = re.compile(r"\$(\d+)")
_LONG_INT = re.compile(r"(?<![\w.])\d{19,}(?![\w.])")
_SIZE = re.compile(r"\s*(\d{1,9})\s*")
_BRACKETS = np.frombuffer(b"([{)]}", dtype=np.uint8)
_GATE_DEF = re.compile(rf"\bgate\s+({_IDENT})[^{{;]*\{{([^{{}}]*)\}}")
_WORD = re.compile(_IDENT)


def _strip(text: str) -> str:
    """The text with comments blanked (strings kept: a ``//`` inside ``"…"`` is no comment)."""
    return _NOISE.sub(lambda m: m.group(0) if m.group(0).startswith('"') else " ", text)


def _nesting(clean: str) -> int:
    """Deepest nesting of (), [], {} (unbalanced closers are left to the parser)."""
    raw = np.frombuffer(clean.encode("utf-8", "replace"), dtype=np.uint8)
    step = np.isin(raw, _BRACKETS[:3]).astype(np.int64) - np.isin(raw, _BRACKETS[3:])
    return int(np.cumsum(step).max(initial=0))


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _definition_sizes(clean: str, limits: Limits) -> dict[str, int]:
    """Gates in each custom gate's body with nested definitions expanded, bounded before parsing.

    Qiskit's OpenQASM 3 importer copies a definition into every call, so a chain of gates each
    calling the previous one twice costs 2^depth copies inside the parser (20 levels: minutes and
    many GB) before quicq's own checks could run. A statement that names an earlier gate counts
    that gate's size (the largest, if it names several), any other statement counts 1: an upper
    bound, never an evaluation.
    """
    sizes: dict[str, int] = {}
    for m in _GATE_DEF.finditer(clean):
        name, body = m.group(1), m.group(2)
        total = 0
        for stmt in body.split(";"):
            if not stmt.strip():
                continue
            total += max((sizes[w] for w in _WORD.findall(stmt) if w in sizes), default=1)
            if total > limits.max_definition_ops:
                raise QasmError(
                    f"gate {name!r} (line {_line_of(clean, m.start())}): its body expands to more than "
                    f"{limits.max_definition_ops:,} gates (Limits.max_definition_ops)"
                )
        sizes[name] = total
    return sizes


def scan_qasm(text: str, limits: Limits = DEFAULT_LIMITS) -> QasmScan:
    """Check OpenQASM 2/3 text against ``limits`` before parsing; raise :class:`QasmError`.

    Register sizes must be decimal integer literals (what quicq and Qiskit write): a size given
    by an expression cannot be bounded without evaluating it, so it is refused.
    """
    if not isinstance(text, str):
        raise QasmError(f"OpenQASM input must be a str, got {type(text).__name__}")
    if not isinstance(limits, Limits):
        raise QasmError(f"limits must be a quicq Limits, got {type(limits).__name__}")
    if len(text) > limits.max_chars:
        raise QasmError(
            f"OpenQASM text has {len(text):,} characters, more than the limit {limits.max_chars:,} "
            f"(pass limits=Limits(max_chars=...) to read it)"
        )
    if "\x00" in text:
        raise QasmError(f"OpenQASM text contains a NUL character (line {_line_of(text, text.index(chr(0)))})")
    clean = _strip(text)
    depth = _nesting(clean)
    if depth > limits.max_nesting:
        raise QasmError(f"OpenQASM text nests brackets {depth} deep, more than the limit {limits.max_nesting}")
    m = _LONG_INT.search(clean)
    if m:
        raise QasmError(
            f"integer literal {m.group(0)[:24]}… on line {_line_of(clean, m.start())} has "
            f"{len(m.group(0))} digits; quicq reads integers of at most 18"
        )

    sizes: dict[str, int] = {}
    totals = {"q": 0, "c": 0}

    def declare(kind: str, name: str, size_text: str | None, pos: int) -> None:
        if size_text is None:
            size = 1
        else:
            sm = _SIZE.fullmatch(size_text)
            if sm is None:
                raise QasmError(
                    f"register {name!r} on line {_line_of(clean, pos)} has size [{size_text.strip()[:40]}]; "
                    f"quicq reads register sizes written as decimal integers of at most 9 digits"
                )
            size = int(sm.group(1))
        quantum = kind in ("qreg", "qubit")
        totals["q" if quantum else "c"] += size
        if quantum:
            sizes[name] = max(sizes.get(name, 0), size)
        total = totals["q" if quantum else "c"]
        if total > limits.max_qubits:
            what = "qubits" if quantum else "classical bits"
            raise QasmError(
                f"the program declares {total:,} {what} (line {_line_of(clean, pos)}), more than the "
                f"limit {limits.max_qubits:,} (pass limits=Limits(max_qubits=...) to read it)"
            )

    for m in _OLD_REG.finditer(clean):
        declare(m.group(1), m.group(2), m.group(3), m.start())
    for m in _NEW_REG.finditer(clean):
        declare(m.group(1), m.group(3), m.group(2), m.start())
    for m in _SCALAR_REG.finditer(clean):
        declare(m.group(1), m.group(2), None, m.start())
    for m in _HARDWARE.finditer(clean):
        digits = m.group(1)
        if len(digits) > 9 or int(digits) >= limits.max_qubits:
            raise QasmError(
                f"hardware qubit ${digits[:12]} on line {_line_of(clean, m.start())} is beyond the "
                f"limit of {limits.max_qubits:,} qubits"
            )

    _definition_sizes(clean, limits)

    # Gate applications: one per statement, plus a broadcast over a whole register (or a
    # slice of one) counted as the register's size. An upper bound, cheap to compute.
    n_gates = clean.count(";")
    wide = sorted((n for n, s in sizes.items() if s > 1), key=len, reverse=True)
    if wide:
        pattern = re.compile(rf"\b({'|'.join(map(re.escape, wide))})\b\s*(\[[^\]]*\])?")
        for m in pattern.finditer(clean):
            index = m.group(2)
            if index is None or any(c in index for c in ":{,"):
                n_gates += sizes[m.group(1)]
            if n_gates > limits.max_gates:
                break
    if n_gates > limits.max_gates:
        raise QasmError(
            f"the program applies up to {n_gates:,} gates (broadcasts counted per qubit), more than "
            f"the limit {limits.max_gates:,} (pass limits=Limits(max_gates=...) to read it)"
        )
    return QasmScan(totals["q"], totals["c"], n_gates)
