"""Read Qiskit circuits back into the quicq IR (also the last step of OpenQASM import).

Gates are recognised by type (``RBSGate``, ``FBSGate``, ``XXPlusYYGate`` with beta = ±π/2, ``RYGate``
and its controlled forms, ``CZ``/``Z``/``X``/``H``) or, for gates Qiskit's OpenQASM parsers build
from a file's definitions, by the names quicq writes (``rbs``, ``fbs_<w>``, ``mcry_<bits>``), whose
bodies are then checked against quicq's matrices (:mod:`quicq.circuits._verify`). The conventions
are those of :mod:`quicq.circuits.qiskit_export` (docs/conventions.md).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from quicq._optional import require

require("qiskit", "qiskit")  # a clear install hint instead of a bare ModuleNotFoundError

from qiskit.circuit import (  # noqa: E402
    AnnotatedOperation,
    ControlledGate,
    ControlModifier,
    Parameter,
    ParameterExpression,
    ParameterVectorElement,
    QuantumCircuit,
)
from qiskit.circuit.library import RYGate, XXPlusYYGate  # noqa: E402

from quicq.circuits._verify import check_named_like_ours  # noqa: E402
from quicq.circuits.bitorder import control_state_bits  # noqa: E402
from quicq.circuits.codespace import CodeSpace  # noqa: E402
from quicq.circuits.ir import Circuit, CircuitError, Gate  # noqa: E402
from quicq.circuits.qasm_scan import DEFAULT_LIMITS, Limits  # noqa: E402
from quicq.circuits.qiskit_export import (  # noqa: E402
    _FIXED,
    CODE_SPACE_KEY,
    SUPPORTED_QISKIT_GATES,
    FBSGate,
    RBSGate,
    mcry_gate,
)

__all__ = ["from_qiskit", "read_angle"]

_FBS_NAME = re.compile(r"^fbs(?:_(\d+))?$")
_MCRY_NAME = re.compile(r"^mcry_([01]+)$")
_INDEXED_NAME = re.compile(r"^(.*?)(?:\[(\d+)\]|_(\d+))$")


class _Angle:
    """A gate angle read from Qiskit: a bound float or a bare free Parameter."""

    __slots__ = ("param", "value")

    def __init__(self, value: float | None = None, param: Parameter | None = None) -> None:
        self.value, self.param = value, param

    def negated(self) -> _Angle:
        assert self.value is not None, "only bound angles can be negated"
        return _Angle(value=-self.value)


def read_angle(p: Any, where: str) -> _Angle:
    """A gate parameter → _Angle; expressions other than a bare parameter are rejected."""
    if isinstance(p, Parameter):
        return _Angle(param=p)
    if isinstance(p, ParameterExpression):
        if p.parameters:
            raise CircuitError(
                f"{where}: angle expression {p} is not supported; every angle must be a number "
                f"or a bare Parameter (one parameter slot), not an expression of one"
            )
        p = complex(p)
        if abs(p.imag) > 0:
            raise CircuitError(f"{where}: complex angle {p}")
        p = p.real
    try:
        value = float(p)
    except (TypeError, ValueError) as exc:
        raise CircuitError(f"{where}: cannot read angle {p!r}") from exc
    if not math.isfinite(value):
        raise CircuitError(f"{where}: non-finite angle {value}")
    return _Angle(value=value)


def _read_half_angle(p: Any, where: str) -> _Angle:
    """XXPlusYY(φ, β) has φ = 2θ: return θ (φ/2, or p for the expression 2·p)."""
    if isinstance(p, ParameterExpression) and p.parameters:
        params = list(p.parameters)
        if len(params) == 1 and p == 2 * params[0]:
            return _Angle(param=params[0])
        raise CircuitError(
            f"{where}: xx_plus_yy angle {p} is not 2·(bare parameter), so it is no single RBS slot"
        )
    a = read_angle(p, where)
    return _Angle(value=a.value / 2)


def _oriented(angle: _Angle, forward: bool, where: str, kind: str) -> _Angle:
    """The angle of the IR gate on (min, max) qubits: negated when the gate was applied reversed.

    rbs/fbs on (b, a) equal rbs/fbs on (a, b) of the negated angle; a negated *free*
    parameter is not a slot, so that case is an error.
    """
    if forward:
        return angle
    if angle.param is not None:
        raise CircuitError(
            f"{where}: {kind} with the larger qubit first equals {kind}(−θ) on the sorted "
            f"qubits, and θ={angle.param} is a free parameter (−θ is not a slot); bind the "
            f"angles or put the smaller qubit first"
        )
    return angle.negated()


def from_qiskit(
    qc: QuantumCircuit, *, n_params: int | None = None, limits: Limits = DEFAULT_LIMITS
) -> tuple[Circuit, np.ndarray | None]:
    """Read a Qiskit circuit back into the IR.

    Returns ``(circuit, angles)``:

    * If the circuit has free parameters, every distinct parameter becomes one slot and
      ``angles`` is ``None``. Slot order: the element index when all parameters belong to one
      ``ParameterVector`` (its length is the slot count, so unused slots survive); else the
      index i when all names look like ``<prefix>[i]`` or ``<prefix>_i`` with one prefix
      (OpenQASM 3 inputs ``theta_i``; slot count max i + 1); else Qiskit's parameter order
      (sorted by name). Every angle must be a bare parameter; expressions are rejected.
    * If everything is bound, each parametric gate gets its own slot, in gate order, and the
      values are returned as a float64 array. Shared slots cannot be recovered from numbers.

    ``n_params`` raises the slot count (e.g. for trailing slots no gate reads).

    Gates: see :data:`SUPPORTED_QISKIT_GATES`. ``rbs``/``fbs``/``xx_plus_yy`` applied with the
    qubit order reversed, and ``xx_plus_yy`` with beta = −π/2, equal RBS/FBS of the negated
    angle: fine for bound angles, rejected for free ones (−θ is not a slot). Barriers and
    measurements are dropped (the IR is unitary; measurement is chosen by the block estimator).
    A nonzero global phase is rejected: it would change block signs.

    ``limits`` bounds the qubit and instruction counts (checked first) and the work spent
    checking the bodies of gates named like quicq's (:mod:`quicq.circuits._verify`). A code
    space recorded by :func:`to_qiskit` in ``qc.metadata`` is restored.
    """
    if not isinstance(qc, QuantumCircuit):
        raise CircuitError(f"from_qiskit expects a qiskit QuantumCircuit, got {type(qc).__name__}")
    if not isinstance(limits, Limits):
        raise CircuitError(f"limits must be a quicq Limits, got {type(limits).__name__}")
    if qc.num_qubits > limits.max_qubits or qc.num_qubits < 1:
        raise CircuitError(
            f"circuit {qc.name!r} has {qc.num_qubits:,} qubits; quicq reads 1 to {limits.max_qubits:,} "
            f"(Limits.max_qubits)"
        )
    if len(qc.data) > limits.max_gates:
        raise CircuitError(
            f"circuit {qc.name!r} has {len(qc.data):,} instructions, more than the limit "
            f"{limits.max_gates:,} (Limits.max_gates)"
        )
    code_space = _read_code_space(qc, limits)
    try:
        phase = float(qc.global_phase)
    except TypeError as exc:
        raise CircuitError(f"circuit {qc.name!r} has a symbolic global phase {qc.global_phase}") from exc
    if not math.isclose(math.remainder(phase, 2 * math.pi), 0.0, abs_tol=1e-12):
        raise CircuitError(
            f"circuit {qc.name!r} has global phase {phase}; the IR has none (a phase of π would "
            f"flip every block sign)"
        )

    parsed: list[tuple[str, tuple[int, ...], _Angle | None, tuple[int, ...] | None]] = []
    seen: set = set()
    for pos, inst in enumerate(qc.data):
        op = inst.operation
        name = op.name
        qubits = tuple(qc.find_bit(q).index for q in inst.qubits)
        where = f"instruction {pos} ({name} on qubits {list(qubits)})"
        if name in ("barrier", "measure"):
            continue
        # foreign gates named like ours (OpenQASM imports); their bodies are checked below
        one_angle = len(op.params) == 1
        fbs_match = _FBS_NAME.match(name)
        named_fbs = bool(fbs_match) and one_angle and op.num_qubits >= 2 and (
            fbs_match.group(1) is None or int(fbs_match.group(1)) == op.num_qubits)
        mcry_match = _MCRY_NAME.match(name)
        named_mcry = bool(mcry_match) and one_angle and op.num_qubits == len(mcry_match.group(1)) + 1

        if isinstance(op, RBSGate) or (name == "rbs" and one_angle and op.num_qubits == 2):
            if not isinstance(op, RBSGate):
                check_named_like_ours(op, "rbs", RBSGate, seen, where, limits)
            angle = read_angle(op.params[0], where)
            a, b = qubits
            parsed.append(("rbs", (min(a, b), max(a, b)), _oriented(angle, a < b, where, "rbs"), None))

        elif isinstance(op, FBSGate) or named_fbs:
            w = op.num_qubits
            if not isinstance(op, FBSGate):
                check_named_like_ours(op, "fbs", lambda t, w=w: FBSGate(t, w), seen, where, limits)
            first, last = qubits[0], qubits[-1]
            a, b = min(first, last), max(first, last)
            if set(qubits[1:-1]) != set(range(a + 1, b)):
                raise CircuitError(
                    f"{where}: an fbs gate must act on its end qubits a, b first and last and on "
                    f"exactly the qubits strictly between them in the middle"
                )
            angle = read_angle(op.params[0], where)
            parsed.append(("fbs", (a, b), _oriented(angle, first < last, where, "fbs"), None))

        elif isinstance(op, RYGate):
            parsed.append(("ry", qubits, read_angle(op.params[0], where), None))

        elif (isinstance(op, ControlledGate) and isinstance(op.base_gate, RYGate)
              and op.num_qubits == op.num_ctrl_qubits + 1):
            k = op.num_ctrl_qubits
            cs = control_state_bits(op.ctrl_state, k)
            parsed.append(("mcry", qubits, read_angle(op.base_gate.params[0], where), cs))

        elif _annotated_controlled_ry(op):
            (mod,) = op.modifiers
            cs = control_state_bits(int(mod.ctrl_state), mod.num_ctrl_qubits)
            parsed.append(("mcry", qubits, read_angle(op.base_op.params[0], where), cs))

        elif named_mcry:
            cs = tuple(int(c) for c in mcry_match.group(1))
            check_named_like_ours(op, "mcry", lambda t, cs=cs: mcry_gate(t, cs), seen, where, limits)
            parsed.append(("mcry", qubits, read_angle(op.params[0], where), cs))

        elif isinstance(op, XXPlusYYGate):
            beta = read_angle(op.params[1], where).value
            if beta is None:
                raise CircuitError(f"{where}: xx_plus_yy needs a bound beta (±π/2), got {op.params[1]}")
            if math.isclose(beta, math.pi / 2, abs_tol=1e-12):
                sign = 1
            elif math.isclose(beta, -math.pi / 2, abs_tol=1e-12):
                sign = -1  # XXPlusYY(2θ, −π/2) = RBS(−θ): the docs/conventions.md trap
            else:
                raise CircuitError(
                    f"{where}: xx_plus_yy with beta={beta} is complex; only beta = ±π/2 is an RBS"
                )
            a, b = qubits
            if a > b:  # swapping the qubits flips beta
                sign = -sign
            angle = _read_half_angle(op.params[0], where)
            if sign < 0:
                if angle.param is not None:
                    raise CircuitError(
                        f"{where}: xx_plus_yy(2θ, beta={beta}) on qubits {list(qubits)} equals "
                        f"RBS_{min(a, b)}{max(a, b)}(−θ); a negated free parameter is not a slot. "
                        f"Bind the angles, or use beta=+π/2 with the smaller qubit first."
                    )
                angle = angle.negated()
            parsed.append(("rbs", (min(a, b), max(a, b)), angle, None))

        elif name in _FIXED and isinstance(op, _FIXED[name]):
            parsed.append((name, qubits, None, None))

        else:
            raise CircuitError(f"{where}: unsupported gate {name!r}; supported: {SUPPORTED_QISKIT_GATES}")

    free = set(qc.parameters)
    n_bound = sum(1 for _, _, a, _ in parsed if a is not None and a.value is not None)
    if free and n_bound:
        raise CircuitError(
            f"circuit {qc.name!r} mixes bound angles ({n_bound} gates) and free parameters "
            f"({sorted(p.name for p in free)}); bind all of them or none"
        )

    meta = {"source": "qiskit", "name": qc.name}
    gates: list[Gate] = []
    if free:
        slot_of, count = _slot_order(qc, free)
        if n_params is not None:
            if n_params < count:
                raise CircuitError(f"n_params={n_params} is less than the {count} slots found")
            count = n_params
        for name, qubits, angle, cs in parsed:
            gates.append(Gate(name, qubits, None if angle is None else slot_of[angle.param], cs))
        return Circuit(qc.num_qubits, tuple(gates), count, meta, code_space), None

    values: list[float] = []
    for name, qubits, angle, cs in parsed:
        slot = None
        if angle is not None:
            slot = len(values)
            values.append(angle.value)
        gates.append(Gate(name, qubits, slot, cs))
    count = len(values)
    if n_params is not None:
        if n_params < count:
            raise CircuitError(f"n_params={n_params} is less than the {count} bound angles found")
        values += [0.0] * (n_params - count)
        count = n_params
    return Circuit(qc.num_qubits, tuple(gates), count, meta, code_space), np.asarray(values, dtype=np.float64)


def _read_code_space(qc: QuantumCircuit, limits: Limits) -> CodeSpace | None:
    """The code space :func:`to_qiskit` recorded in ``qc.metadata``, validated."""
    meta = qc.metadata
    if not isinstance(meta, dict) or CODE_SPACE_KEY not in meta:
        return None
    raw = meta[CODE_SPACE_KEY]
    if not isinstance(raw, (list, tuple)) or len(raw) > (1 << min(qc.num_qubits, 40)):
        raise CircuitError(f"circuit {qc.name!r}: metadata[{CODE_SPACE_KEY!r}] is not a list of basis indices")
    return CodeSpace(tuple(raw))


def _annotated_controlled_ry(op: Any) -> bool:
    """``RYGate(θ).control(k, annotated=True)``: an annotation with one control modifier."""
    return (
        isinstance(op, AnnotatedOperation)
        and isinstance(op.base_op, RYGate)
        and len(op.modifiers) == 1
        and isinstance(op.modifiers[0], ControlModifier)
    )


def _slot_order(qc: QuantumCircuit, free: set) -> tuple[dict[Any, int], int]:
    """Map each free parameter to a slot (rules in :func:`from_qiskit`)."""
    params = list(qc.parameters)  # Qiskit order: sorted by name, vector elements by index
    if all(isinstance(p, ParameterVectorElement) for p in params):
        vectors = {id(p.vector) for p in params}
        if len(vectors) == 1:
            return {p: p.index for p in params}, len(params[0].vector)
    matches = [_INDEXED_NAME.match(p.name) for p in params]
    if all(matches):
        prefixes = {m.group(1) for m in matches}
        idx = [int(m.group(2) or m.group(3)) for m in matches]
        if len(prefixes) == 1 and len(set(idx)) == len(idx):
            return dict(zip(params, idx)), max(idx) + 1
    return {p: i for i, p in enumerate(params)}, len(params)
