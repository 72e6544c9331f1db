"""Mutation fuzzing of quicq's OpenQASM readers, shared by tests/test_fuzz_qasm.py and benchmarks/fuzz.py.

Seeds are quicq's own exports (every layout, OpenQASM 2 and 3, bound and symbolic). Each case
applies 1–3 mutations (byte flips, truncations, swapped tokens and lines, huge numbers, NaN/inf
and division-by-zero angles, unknown gates, wrong arity, redefined gates and registers, deep
nesting) and feeds the result to :func:`quicq.circuits.qasm.from_qasm`. The contract: the
reader either returns a circuit that survives its own round trip (export → read → equal), or
raises :class:`QasmError`. Any other exception is a bug, reported with the text.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field

import numpy as np

from quicq.circuits import brick, butterfly, pauli, pyramid, x_layout
from quicq.circuits.ir import Circuit, Gate
from quicq.circuits.qasm import QasmError, from_qasm, to_qasm2, to_qasm3

HUGE = ["2147483648", "10000000", "99999999999999999999999", "1e400", "-1e400", "1e-400",
        "4294967296", "9" * 60, "0", "-1", "65"]
BAD_ANGLES = ["nan", "inf", "-inf", "NaN", "1/0", "pi/0", "0/0", "1e999", "(1", "pi*", "theta_99"]
GATE_NAMES = ["rbs", "fbs_2", "fbs_3", "fbs_5", "ry", "cz", "h", "x", "z", "cx", "u3", "foo", "mcry_0",
              "mcry_01", "measure", "reset", "barrier", "gate", "qreg", "U", "CX", "rz", "ccx", "swap"]
INSERTS = [
    "gate rbs(theta) a, b { }\n",
    "gate rbs(theta) a, b { ry(theta) a; }\n",
    "gate fbs_3(theta) a, m1, b { rbs(theta) a, b; }\n",
    "gate ry(t) a { }\n",
    "qreg q[5];\n", "qubit[3] q;\n", "qreg q[2147483648];\n", "qubit[10000000] r;\n",
    "creg c[2147483648];\n", "bit[99999999999] b;\n",
    "h q;\n", "ry(" + "(" * 200 + "1" + ")" * 200 + ") q[0];\n",
    "rbs(0.1) q[1], q[0];\n", "rbs(0.1) q[0], q[0];\n", "cz q[0], q[99];\n",
    "for int i in [0:100000000] { h q[0]; }\n", "while (true) { }\n",
    "input float[64] theta_0;\n", "x $7;\n", "\x00", "π", "/*", "//", '"', "{", "}", ";",
    "measure q[0] -> c[0];\n", "barrier q;\n", "reset q[0];\n",
    "gate g0 a { h a; }\ngate g1 a { g0 a; g0 a; }\ngate g2 a { g1 a; g1 a; }\n",
]

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z_0-9]*|\d+\.?\d*(?:e-?\d+)?|\S")
_NUMBER = re.compile(r"-?\d+\.?\d*(?:e-?\d+)?")


def seed_texts() -> list[str]:
    """quicq's own exports: the corpus every mutation starts from."""
    rng = np.random.default_rng(7)
    circuits = [pyramid(3), pyramid(3, "fbs"), x_layout(3), butterfly(4), brick(3, 2),
                pauli(4, 1), pauli(6, 1), pauli(12, 1),
                Circuit(3, (Gate("mcry", (0, 1, 2), 0, (1, 0)), Gate("h", (0,)), Gate("x", (1,))), 1)]
    texts = []
    for c in circuits:
        th = rng.uniform(-3, 3, c.n_params)
        texts += [to_qasm2(c, th), to_qasm3(c, th), to_qasm3(c)]
    return texts


def mutate(text: str, rnd: random.Random) -> str:
    """One random mutation of ``text``."""
    kind = rnd.randrange(12)
    n = len(text)
    if kind == 0 and n:  # byte flip
        i = rnd.randrange(n)
        return text[:i] + chr(rnd.choice([rnd.randrange(32, 127), rnd.randrange(0, 0x3000)])) + text[i + 1:]
    if kind == 1:  # truncation
        return text[: rnd.randrange(n + 1)]
    if kind == 2 and n:  # delete a span
        i = rnd.randrange(n)
        return text[:i] + text[i + rnd.randrange(1, 40):]
    lines = text.split("\n")
    if kind == 3 and len(lines) > 1:  # swap, duplicate or drop lines
        i, j = rnd.randrange(len(lines)), rnd.randrange(len(lines))
        op = rnd.randrange(3)
        if op == 0:
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 1:
            lines.insert(j, lines[i])
        else:
            del lines[i]
        return "\n".join(lines)
    toks = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
    if kind == 4 and len(toks) > 1:  # swap two tokens
        (a0, a1), (b0, b1) = sorted(rnd.sample(toks, 2))
        return text[:a0] + text[b0:b1] + text[a1:b0] + text[a0:a1] + text[b1:]
    nums = [(m.start(), m.end()) for m in _NUMBER.finditer(text)]
    if kind == 5 and nums:  # huge numbers
        a, b = rnd.choice(nums)
        return text[:a] + rnd.choice(HUGE) + text[b:]
    if kind == 6:  # NaN / inf / division by zero angles
        spots = [m.span(1) for m in re.finditer(r"\(([^()\n]*)\)", text)]
        if spots:
            a, b = rnd.choice(spots)
            return text[:a] + rnd.choice(BAD_ANGLES) + text[b:]
    if kind == 7:  # unknown or other gates (often the wrong arity)
        names = [m.span() for m in re.finditer(r"^\s*([a-z_0-9]+)", text, re.M)]
        if names:
            a, b = rnd.choice(names)
            return text[:a] + rnd.choice(GATE_NAMES) + text[b:]
    if kind == 8:  # operands: drop or add one (wrong arity), or point outside the register
        ops = [m.span() for m in re.finditer(r"q\[\d+\]", text)]
        if ops:
            a, b = rnd.choice(ops)
            choice = rnd.randrange(3)
            rep = "" if choice == 0 else (text[a:b] + ", q[1]" if choice == 1 else f"q[{rnd.randrange(100)}]")
            return text[:a] + rep + text[b:]
    if kind == 9 or kind == 10:  # redefinitions, registers, hostile statements
        i = rnd.choice([m.end() for m in re.finditer("\n", text)] or [n])
        return text[:i] + rnd.choice(INSERTS) + text[i:]
    if kind == 11:  # header
        return re.sub(r"OPENQASM \d\.\d", rnd.choice(["OPENQASM 4.0", "OPENQASM 2.0", "OPENQASM 3.0",
                                                      "OPENQASM 99999999999999999999.0", ""]), text, 1)
    return text + rnd.choice(INSERTS)


@dataclass
class FuzzResult:
    cases: int = 0
    accepted: int = 0
    refused: int = 0
    foreign: list[tuple[str, str]] = field(default_factory=list)  # (exception, text)
    bad_round_trips: list[str] = field(default_factory=list)
    slowest: float = 0.0
    slowest_text: str = ""
    by_error: dict[str, int] = field(default_factory=dict)


def check_one(text: str, result: FuzzResult) -> None:
    """Run one case and record its outcome (never raises for a wrong outcome, records it)."""
    t0 = time.perf_counter()
    result.cases += 1
    try:
        circuit, angles = from_qasm(text)
    except QasmError as exc:
        result.refused += 1
        key = str(exc).split(":")[0][:60]
        result.by_error[key] = result.by_error.get(key, 0) + 1
    except BaseException as exc:  # noqa: BLE001 - exactly what the fuzzer looks for
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        result.foreign.append((f"{type(exc).__module__}.{type(exc).__name__}: {exc}"[:300], text))
    else:
        result.accepted += 1
        try:
            again = to_qasm3(circuit, angles) if angles is None else to_qasm2(circuit, angles)
            back, back_angles = from_qasm(again)
            same = back == circuit and (
                (angles is None and back_angles is None)
                or (angles is not None and np.array_equal(back_angles, angles))
            )
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            same = False
        if not same:
            result.bad_round_trips.append(text)
    dt = time.perf_counter() - t0
    if dt > result.slowest:
        result.slowest, result.slowest_text = dt, text


def run(n_cases: int, seed: int, *, qasm3_share: float = 0.25) -> FuzzResult:
    """``n_cases`` mutated programs from a fixed seed (QASM 3 parsing is ~20× slower than QASM 2,
    so ``qasm3_share`` of the seeds are OpenQASM 3)."""
    rnd = random.Random(seed)
    seeds = seed_texts()
    two = [t for t in seeds if t.startswith("OPENQASM 2")]
    three = [t for t in seeds if t.startswith("OPENQASM 3")]
    result = FuzzResult()
    for _ in range(n_cases):
        text = rnd.choice(three if rnd.random() < qasm3_share else two)
        for _ in range(rnd.randint(1, 3)):
            text = mutate(text, rnd)
        check_one(text, result)
    return result
