"""Compile the quicq IR to Qiskit and read Qiskit circuits back.

Conventions (docs/conventions.md):

* IR qubit j is Qiskit qubit j. Qiskit's statevectors and ``Operator`` matrices are
  little-endian (qubit 0 is the *least* significant bit) while quicq writes qubit 0 first;
  compare through ``Operator(qc).reverse_qargs()`` or by indexing states explicitly.
* ``rbs`` and ``fbs`` become the named gates :class:`RBSGate` and :class:`FBSGate`, whose
  definitions are built from :data:`quicq.circuits.gates.RBS_DECOMPOSITION` (h, cz, ry), so
  drawings read "rbs"/"fbs" and ``transpile`` can lower them to any basis.
  ``RBSGate(θ)`` on qubits [a, b] equals ``XXPlusYYGate(2θ, beta=+π/2)`` on [a, b].
* An IR ``fbs`` on (a, b) becomes one :class:`FBSGate` of width w = b − a + 1 applied to the
  qubits a, a+1, …, b *in increasing order*: its first argument is a, its last is b, the ones
  in between only contribute the parity sign. FBS_ab(θ) = P · RBS_ab(θ) · P with
  P = ∏_{a<c<b} CZ(c, a).
* ``mcry`` on (*controls, target) with control values (v_0, …, v_{k−1}) becomes
  ``RYGate(θ).control(k, ctrl_state=Σ v_i·2^i)``: in Qiskit's integer control state bit i is
  control i (the rightmost character of the equivalent bit string is the first control).
  An ``mcry`` with no controls is exported as a plain ``RYGate`` (same matrix) and therefore
  reads back as ``ry``.
* Parameter slot i is ``ParameterVector("θ", n_params)[i]``; gates sharing a slot share the
  parameter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
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
    ParameterVector,
    ParameterVectorElement,
    QuantumCircuit,
)
from qiskit.circuit import Gate as QiskitGate  # noqa: E402
from qiskit.circuit.library import CZGate, HGate, RYGate, XGate, XXPlusYYGate, ZGate  # noqa: E402

from quicq.circuits._angles import angle_vector  # noqa: E402
from quicq.circuits._verify import check_named_like_ours  # noqa: E402
from quicq.circuits.codespace import CodeSpace  # noqa: E402
from quicq.circuits.bitorder import control_state_bits, control_state_int, qiskit_permutation  # noqa: E402
from quicq.circuits.gates import RBS_DECOMPOSITION, fbs_decomposition, rbs_matrix  # noqa: E402
from quicq.circuits.ir import Circuit, CircuitError, Gate  # noqa: E402
from quicq.circuits.qasm_scan import DEFAULT_LIMITS, Limits  # noqa: E402

__all__ = ["SUPPORTED_QISKIT_GATES", "FBSGate", "RBSGate", "from_qiskit", "mcry_gate", "to_qiskit"]

SUPPORTED_QISKIT_GATES = (
    "rbs, fbs (also fbs_<w> from OpenQASM), ry, controlled ry (cry / RYGate.control(k), "
    "mcry_<bits> from OpenQASM), cz, z, x, h, xx_plus_yy(2θ, beta=±π/2); "
    "barrier and measure are ignored"
)

# Where a Qiskit circuit records quicq's code space (QuantumCircuit.metadata survives copies,
# transpilation and pickling; the OpenQASM exporters drop it, quicq's own writes it as a comment).
CODE_SPACE_KEY = "quicq_code_space"


class RBSGate(QiskitGate):
    """quicq's RBS(θ) as a named 2-qubit Qiskit gate (docs/conventions.md).

    On qubits [a, b]: identity on |00⟩, |11⟩ and [[cos θ, sin θ], [−sin θ, cos θ]] on
    span{|01⟩, |10⟩} with qubit a written first; equal to ``XXPlusYYGate(2θ, π/2)``.
    """

    def __init__(self, theta: Any, label: str | None = None) -> None:
        super().__init__("rbs", 2, [theta], label=label)

    def _define(self) -> None:
        theta = self.params[0]
        qc = QuantumCircuit(2, name=self.name)
        for name, qubits, mult in RBS_DECOMPOSITION:
            if name == "ry":
                qc.append(RYGate(mult * theta), list(qubits))
            else:
                qc.append(_FIXED[name](), list(qubits))
        self.definition = qc

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """The exact matrix in Qiskit's little-endian order (qubit a is bit 0), bound angles only."""
        theta = read_angle(self.params[0], "rbs")
        if theta.value is None:
            raise TypeError("an RBSGate with a free parameter has no matrix")
        perm = qiskit_permutation(2)
        m = rbs_matrix(theta.value)[np.ix_(perm, perm)]
        return m.astype(dtype) if dtype is not None else m

    def inverse(self, annotated: bool = False) -> RBSGate:
        """RBS(θ)⁻¹ = RBS(−θ)."""
        return RBSGate(-self.params[0])


class FBSGate(QiskitGate):
    """quicq's FBS(θ) across ``num_qubits`` consecutive qubits [a, a+1, …, b].

    RBS on the two end qubits whose off-diagonal terms carry (−1)^(parity of the qubits in
    between); built as P · RBS(θ) · P with P = ∏ CZ(c, a) over the middle qubits c. Width 2
    is exactly RBS (it keeps the name "fbs" so the IR gate survives a round trip).
    """

    def __init__(self, theta: Any, num_qubits: int = 2, label: str | None = None) -> None:
        if not isinstance(num_qubits, (int, np.integer)) or num_qubits < 2:
            raise CircuitError(f"an fbs gate spans at least 2 qubits, got num_qubits={num_qubits!r}")
        super().__init__("fbs", int(num_qubits), [theta], label=label)

    def _define(self) -> None:
        theta = self.params[0]
        qc = QuantumCircuit(self.num_qubits, name=self.name)
        for name, qubits, mult in fbs_decomposition(self.num_qubits):
            qc.append(RBSGate(mult * theta) if name == "rbs" else _FIXED[name](), list(qubits))
        self.definition = qc

    def inverse(self, annotated: bool = False) -> FBSGate:
        """FBS(θ)⁻¹ = FBS(−θ)."""
        return FBSGate(-self.params[0], self.num_qubits)


_FIXED: dict[str, type[QiskitGate]] = {"cz": CZGate, "z": ZGate, "x": XGate, "h": HGate}


def mcry_gate(theta: Any, ctrl_state: Sequence[int]) -> QiskitGate:
    """The Qiskit gate of an IR ``mcry``: RY(θ) on the last qubit, controlled on the others.

    ``ctrl_state[i]`` is the value control i must have; Qiskit's integer control state has
    control i at bit i. With no controls this is a plain ``RYGate``.
    """
    k = len(ctrl_state)
    if k == 0:
        return RYGate(theta)
    state = control_state_int(ctrl_state)
    # annotated=False: a concrete ControlledGate (Qiskit ≥ 3 would default to an annotation)
    return RYGate(theta).control(k, ctrl_state=state, annotated=False)


def to_qiskit(circuit: Circuit, angles: Any = None, *, name: str | None = None) -> QuantumCircuit:
    """Compile ``circuit`` to a Qiskit ``QuantumCircuit`` on ``circuit.n_qubits`` qubits.

    Args:
        circuit: the IR circuit.
        angles: ``None`` for a parametrised circuit (slot i ↦ ``θ[i]`` of one
            ``ParameterVector``), or one vector of ``n_params`` finite floats to bind.
        name: circuit name; defaults to the layout name.

    Gate mapping and qubit order: see the module docstring.
    """
    if not isinstance(circuit, Circuit):
        raise CircuitError(f"to_qiskit expects a quicq Circuit, got {type(circuit).__name__}")
    if angles is None:
        theta: Any = ParameterVector("θ", circuit.n_params)
    else:
        theta = angle_vector(circuit, angles).tolist()
    qc = QuantumCircuit(circuit.n_qubits, name=name or str(circuit.meta.get("layout", "quicq")))
    if circuit.code_space is not None:
        qc.metadata = {CODE_SPACE_KEY: list(circuit.code_space.indices)}
    for g in circuit.gates:
        arg = None if g.param is None else theta[g.param]
        if g.name == "rbs":
            qc.append(RBSGate(arg), list(g.qubits))
        elif g.name == "fbs":
            a, b = g.qubits
            qc.append(FBSGate(arg, b - a + 1), list(range(a, b + 1)))
        elif g.name == "ry":
            qc.append(RYGate(arg), list(g.qubits))
        elif g.name == "mcry":
            qc.append(mcry_gate(arg, g.ctrl_state or ()), list(g.qubits))
        elif g.name in _FIXED:
            qc.append(_FIXED[g.name](), list(g.qubits))
        else:  # pragma: no cover - Circuit validation only admits known gates
            raise CircuitError(f"to_qiskit: no Qiskit mapping for gate {g.name!r}")
    return qc


# ---------------------------------------------------------------------------------------------
# Qiskit → IR
# ---------------------------------------------------------------------------------------------

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
