"""Check that a foreign gate named like one of quicq's (``rbs``, ``fbs_<w>``, ``mcry_<bits>``) is one.

A file may define ``gate rbs(theta) a, b { … }`` with another sign convention, or an
``fbs_40`` with an empty body; trusting the name would silently change every block. Each body
is checked against quicq's gate, for every width:

* numerically, when affordable (gates × 2^width ≤ ``Limits.max_verify_work``): both the body
  and quicq's gate act on a fixed random complex state; they agree only if their unitaries
  are equal (U − V annihilates a generic vector with probability 0);
* structurally for wider ``fbs``: the body must be diagonal gates (cz, z), then a part acting
  on the two end qubits only, then diagonal gates. The end part is checked numerically as a
  4×4 RBS; the diagonal parts exactly, as phase polynomials over GF(2): FBS = D₂·RBS·D₁ iff
  D₁ = D₂ and D₁ flips the sign of the off-diagonal terms by the parity of the middle qubits;
* anything else too wide to simulate is refused, never trusted.

Nested definitions are expanded here (not by Qiskit), under ``Limits.max_definition_ops``
and a depth bound, so a body that doubles at each level cannot hang the import.
"""

from __future__ import annotations

import cmath
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from quicq._optional import require
from quicq.circuits.bitorder import qiskit_axis
from quicq.circuits.gates import SIGN_GATES
from quicq.circuits.ir import CircuitError
from quicq.circuits.qasm_scan import Limits

_VERIFY_ANGLES = (0.3719, -1.2087)
_ATOL = 1e-9
_MAX_DEPTH = 32


def _definition(op: Any, where: str) -> Any:
    """``op.definition``; a foreign body that fails to build (Qiskit builds them lazily) is refused."""
    try:
        return op.definition
    except Exception as exc:  # noqa: BLE001 - a body we cannot build cannot be trusted
        raise CircuitError(f"{where}: cannot build the definition of gate {op.name!r}: {exc}") from exc


def _flatten(qc: Any, where: str, limits: Limits) -> tuple[list[tuple[Any, tuple[int, ...]]], float]:
    """Primitive (standard-library) gates of ``qc`` on its own qubit indices, and the total phase."""
    from quicq.circuits.qiskit_io import RBSGate  # exact matrix, no need to expand it

    out: list[tuple[Any, tuple[int, ...]]] = []
    phase = 0.0

    def walk(circ: Any, qmap: tuple[int, ...], depth: int) -> None:
        nonlocal phase
        if depth > _MAX_DEPTH:
            raise CircuitError(f"{where}: gate definitions nest more than {_MAX_DEPTH} levels deep")
        gp = circ.global_phase
        try:
            phase += float(gp)
        except TypeError as exc:
            raise CircuitError(f"{where}: a gate definition has a symbolic global phase {gp}") from exc
        for inst in circ.data:
            op = inst.operation
            qs = tuple(qmap[circ.find_bit(q).index] for q in inst.qubits)
            if op.name == "barrier":
                continue
            if inst.clbits or op.name in ("measure", "reset"):
                raise CircuitError(f"{where}: a gate body may not contain {op.name!r}")
            if getattr(op, "_standard_gate", None) is not None or (
                type(op) is RBSGate and not getattr(op.params[0], "parameters", None)
            ):
                out.append((op, qs))
                if len(out) > limits.max_definition_ops:
                    raise CircuitError(
                        f"{where}: the gate's body expands to more than {limits.max_definition_ops:,} "
                        f"gates (Limits.max_definition_ops)"
                    )
                continue
            definition = _definition(op, where)
            if definition is None:
                raise CircuitError(f"{where}: gate {op.name!r} inside the body has no definition")
            walk(definition, qs, depth + 1)

    _check_expanded_size(qc, where, limits, RBSGate)
    walk(qc, tuple(range(qc.num_qubits)), 0)
    return out, phase


def _check_expanded_size(qc: Any, where: str, limits: Limits, rbs_type: type) -> None:
    """Refuse a body whose full expansion exceeds ``limits.max_definition_ops`` *before* expanding
    it: sizes are memoised per gate name, so a doubling chain of k definitions costs k definition
    builds, not 2^k (Qiskit builds each instance's definition anew, ~2 ms each)."""
    memo: dict[tuple[str, int], int] = {}

    def size(circ: Any, depth: int) -> int:
        if depth > _MAX_DEPTH:
            raise CircuitError(f"{where}: gate definitions nest more than {_MAX_DEPTH} levels deep")
        total = 0
        for inst in circ.data:
            op = inst.operation
            if op.name in ("barrier", "measure", "reset"):
                continue
            if getattr(op, "_standard_gate", None) is not None or (
                type(op) is rbs_type and not getattr(op.params[0], "parameters", None)
            ):
                total += 1
            else:
                key = (op.name, op.num_qubits)
                if key not in memo:
                    definition = _definition(op, where)
                    memo[key] = 1 if definition is None else size(definition, depth + 1)
                total += memo[key]
            if total > limits.max_definition_ops:
                raise CircuitError(
                    f"{where}: the gate's body expands to more than {limits.max_definition_ops:,} "
                    f"gates (Limits.max_definition_ops)"
                )
        return total

    size(qc, 0)


@lru_cache(maxsize=32)
def _probe(n_qubits: int) -> np.ndarray:
    rng = np.random.default_rng(20240607 + n_qubits)
    v = rng.normal(size=1 << n_qubits) + 1j * rng.normal(size=1 << n_qubits)
    v /= np.linalg.norm(v)
    v.flags.writeable = False
    return v


def _evolve(ops: list, phase: float, n_qubits: int, where: str) -> np.ndarray:
    """Apply ``ops`` to the probe state with numpy (Qiskit's order: qubit i is bit i)."""
    state = _probe(n_qubits).reshape((2,) * n_qubits)  # axis n−1−i is qubit i
    try:
        for op, qs in ops:
            k = len(qs)
            mat = np.asarray(op.to_matrix(), dtype=complex).reshape((2,) * (2 * k))
            # matrix axes: outputs (q_{k−1} … q_0), then inputs (q_{k−1} … q_0)
            axes = [qiskit_axis(q, n_qubits) for q in reversed(qs)]
            state = np.tensordot(mat, state, axes=(list(range(k, 2 * k)), axes))
            state = np.moveaxis(state, list(range(k)), axes)
    except Exception as exc:  # noqa: BLE001 - a body we cannot evaluate cannot be trusted
        raise CircuitError(f"{where}: cannot evaluate the gate's definition: {exc}") from exc
    return state.reshape(-1) * cmath.exp(1j * phase)


def _bodies(op: Any) -> tuple[tuple, list[tuple[float, Any]]]:
    """(cache key, [(θ, definition at θ)]): two generic angles for a symbolic gate, else its own."""
    require("qiskit", "qiskit")
    from qiskit.circuit import ParameterExpression

    from quicq.circuits.qiskit_io import read_angle

    p = op.params[0]
    definition = _definition(op, op.name)
    if isinstance(p, ParameterExpression) and p.parameters:
        if definition is None:
            return (op.name, op.num_qubits), []
        return (op.name, op.num_qubits), [
            (t, definition.assign_parameters({q: t for q in p.parameters}, strict=False))
            for t in _VERIFY_ANGLES
        ]
    value = read_angle(p, op.name).value
    return (op.name, op.num_qubits, value), ([] if definition is None else [(value, definition)])


def _fbs_structure(ops: list, phase: float, width: int, core_expected: Any, where: str) -> str | None:
    """None if ``ops`` is FBS of ``width`` (see module docstring), else the reason it is not."""
    require("qiskit", "qiskit")
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Operator

    a, b = 0, width - 1
    active = [i for i, (op, _) in enumerate(ops) if op.name not in SIGN_GATES]
    if not active:
        return "its body has no rotation (only diagonal gates)"
    first, last = active[0], active[-1]
    core = QuantumCircuit(2, global_phase=phase)
    for op, qs in ops[first : last + 1]:
        if not set(qs) <= {a, b}:
            return f"its rotation part also acts on qubit {sorted(set(qs) - {a, b})[0]} between the ends"
        core.append(op, [0 if q == a else 1 for q in qs])

    def poly(part: list) -> frozenset:
        terms: set[frozenset] = set()
        for op, qs in part:
            terms ^= {frozenset(qs)}
        return frozenset(terms)

    f1, f2 = poly(ops[:first]), poly(ops[last + 1 :])
    if f1 != f2:
        return "its diagonal gates before and after the rotation differ"
    const = sum(1 for t in f1 if t in ({a}, {b})) % 2
    coeff = {c: sum(1 for t in f1 if t in ({a, c}, {b, c})) % 2 for c in range(1, width - 1)}
    if const or not all(coeff.values()):
        return "its diagonal gates are not the parity of the qubits between the ends"
    err = float(np.max(np.abs(Operator(core).data - Operator(core_expected).data)))
    if err > _ATOL:
        return f"its rotation on the end qubits is not quicq's RBS (max deviation {err:.3g})"
    return None


def check_named_like_ours(
    op: Any, kind: str, expected: Callable[[float], Any], seen: set, where: str, limits: Limits
) -> None:
    """Raise :class:`CircuitError` unless foreign gate ``op`` equals quicq's ``kind`` (any width).

    ``expected(θ)`` builds quicq's own gate; ``seen`` caches what this import already checked.
    """
    require("qiskit", "qiskit")
    from qiskit import QuantumCircuit

    from quicq.circuits.qiskit_io import RBSGate

    if (op.name, op.num_qubits) in seen:
        return
    key, checks = _bodies(op)
    if key in seen:
        return
    if not checks:
        raise CircuitError(f"{where}: gate {op.name!r} is named like quicq's {kind} but has no definition to check")
    w = op.num_qubits
    for t, definition in checks:
        ops, phase = _flatten(definition, where, limits)
        work = max(len(ops), 1) << w if w < 62 else 1 << 62
        if work <= limits.max_verify_work:
            mine = QuantumCircuit(w)
            mine.append(expected(t), list(range(w)))
            want, want_phase = _flatten(mine, where, Limits(max_definition_ops=1 << 40))
            got = _evolve(ops, phase, w, where)
            err = float(np.max(np.abs(got - _evolve(want, want_phase, w, where))))
            if err > _ATOL:
                raise CircuitError(
                    f"{where}: gate {op.name!r} is named like quicq's {kind} but its definition is a "
                    f"different operation (max deviation {err:.3g} at θ={t}); quicq's RBS is "
                    f"XXPlusYY(2θ, +π/2). Rename the gate or fix its body."
                )
        elif kind == "fbs":
            why = _fbs_structure(ops, phase, w, RBSGate(t), where)
            if why is not None:
                raise CircuitError(
                    f"{where}: gate {op.name!r} is named like quicq's fbs but is not one: {why}. "
                    f"quicq's fbs is cz(m, a) for every middle qubit m, rbs(θ) a, b, then the same cz gates."
                )
        else:
            raise CircuitError(
                f"{where}: gate {op.name!r} on {w} qubits is too wide to check ({work:,} amplitude "
                f"updates > Limits.max_verify_work={limits.max_verify_work:,}); quicq does not trust "
                f"a gate by its name"
            )
    seen.add(key)
