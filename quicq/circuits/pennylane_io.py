"""PennyLane export: a quicq :class:`~quicq.circuits.ir.Circuit` as a PennyLane quantum function.

Compiled straight from the IR, never through Qiskit: ``qml.from_qiskit`` turns gates PennyLane
lacks (``XXPlusYYGate``) into matrices without reversing Qiskit's qubit order, which flips the
sign of every RBS angle (docs/design.md#environment).

Gate mapping (docs/conventions.md; each line is checked numerically in tests/test_conventions_pennylane.py):

* ``rbs(a, b)(θ)`` → ``qml.SingleExcitation(−2θ, wires=[a, b])``. PennyLane's
  SingleExcitation(φ) has the block [[cos φ/2, −sin φ/2], [sin φ/2, cos φ/2]] on (|01⟩, |10⟩),
  so φ = −2θ gives RBS's [[cos θ, sin θ], [−sin θ, cos θ]]; φ = +2θ would be RBS(−θ).
* ``fbs(a, b)(θ)`` → P · RBS_ab(θ) · P with P = ∏_{a<c<b} CZ(c, a). On |1_a 0_b⟩ P gives the
  parity sign (−1)^(set qubits strictly between), on |0_a 1_b⟩ nothing, so the two off-diagonal
  terms pick up that sign once and the diagonal ones twice (no sign); |00⟩, |11⟩ are untouched.
* ``ry`` → ``qml.RY``; ``cz`` → ``qml.CZ``; ``z``, ``x``, ``h`` → ``PauliZ``, ``PauliX``,
  ``Hadamard``.
* ``mcry(*controls, target)`` with ``ctrl_state`` → ``qml.ctrl(qml.RY(θ, target), controls,
  control_values=ctrl_state)`` (plain RY when there are no controls).

Wire order: qubit 0 is the most significant bit in both quicq and PennyLane, so
``qml.state()[basis_index(S, n)]`` is the amplitude of the state with qubits S set.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from quicq._optional import require
from quicq.circuits.gates import fbs_decomposition
from quicq.circuits.ir import Circuit, CircuitError, check_angles

# Gates of quicq.circuits.gates.GATES this compiler maps (tests check it covers all of them).
_MAPPED = frozenset({"rbs", "fbs", "ry", "mcry", "cz", "z", "x", "h"})


def _import_pennylane():
    """PennyLane, or :class:`~quicq._optional.MissingDependencyError` with the pip line."""
    return require("pennylane", "pennylane")


def _as_indexable(angles: Any) -> Any:
    """Keep tensors from autodiff frameworks (torch, autograd, jax) as they are; lists → numpy."""
    if hasattr(angles, "shape") and hasattr(angles, "__getitem__"):
        return angles
    return np.asarray(angles, dtype=float)


def to_pennylane(circuit: Circuit, *, wires: Sequence[Hashable] | None = None) -> Callable[[Any], None]:
    """Compile ``circuit`` into a PennyLane quantum function ``qfunc(angles) -> None``.

    Call ``qfunc`` inside a QNode (or ``qml.tape``/``qml.matrix``); it queues the circuit's
    gates in order and returns nothing, so the QNode chooses its own measurements.

    Args:
        circuit: the quicq circuit.
        wires: the PennyLane wire of each qubit (qubit i → ``wires[i]``); default
            ``range(circuit.n_qubits)``.

    The returned function takes ``angles`` of shape (..., n_params): a numpy array, a list,
    or a tensor of the QNode's interface (a torch tensor with ``requires_grad`` gives torch
    gradients). Angle ``slot`` is read as ``angles[..., slot]``, so a leading batch dimension
    becomes PennyLane parameter broadcasting. Angles are validated on every call
    (:func:`~quicq.circuits.ir.check_angles`: shape and finiteness).
    """
    qml = _import_pennylane()
    if not isinstance(circuit, Circuit):
        raise CircuitError(f"to_pennylane expects a quicq Circuit, got {type(circuit).__name__}")
    n = circuit.n_qubits
    wire_list = list(range(n)) if wires is None else list(wires)
    if len(wire_list) != n:
        raise CircuitError(f"to_pennylane: {n}-qubit circuit needs {n} wires, got {len(wire_list)}")
    if len(set(wire_list)) != n:
        raise CircuitError(f"to_pennylane: wires must be distinct, got {wire_list}")
    unknown = {g.name for g in circuit.gates} - _MAPPED
    if unknown:  # only if GATES grows a gate this compiler does not know yet
        raise CircuitError(f"to_pennylane: no PennyLane mapping for gates {sorted(unknown)}")
    gates = circuit.gates

    def rbs(theta: Any, a: Hashable, b: Hashable) -> None:
        qml.SingleExcitation(-2 * theta, wires=[a, b])

    def qfunc(angles: Any) -> None:
        angles = _as_indexable(angles)
        check_angles(circuit, angles)
        for g in gates:
            w = [wire_list[q] for q in g.qubits]
            theta = angles[..., g.param] if g.param is not None else None
            if g.name == "rbs":
                rbs(theta, w[0], w[1])
            elif g.name == "fbs":
                span = wire_list[g.qubits[0] : g.qubits[1] + 1]
                for name, local, mult in fbs_decomposition(len(span)):
                    if name == "rbs":
                        rbs(mult * theta, span[local[0]], span[local[1]])
                    else:
                        qml.CZ(wires=[span[local[0]], span[local[1]]])
            elif g.name == "ry":
                qml.RY(theta, wires=w[0])
            elif g.name == "mcry":
                if len(w) == 1:
                    qml.RY(theta, wires=w[0])
                else:
                    qml.ctrl(qml.RY(theta, wires=w[-1]), control=w[:-1],
                             control_values=[bool(v) for v in g.ctrl_state])
            elif g.name == "cz":
                qml.CZ(wires=w)
            elif g.name == "z":
                qml.PauliZ(wires=w[0])
            elif g.name == "x":
                qml.PauliX(wires=w[0])
            elif g.name == "h":
                qml.Hadamard(wires=w[0])
            else:  # pragma: no cover - guarded at compile time above
                raise CircuitError(f"to_pennylane: no PennyLane mapping for gate {g.name!r}")

    qfunc.__name__ = f"quicq_{circuit.meta.get('layout', 'circuit')}"
    qfunc.__doc__ = f"PennyLane quantum function of {circuit}; call as qfunc(angles)."
    return qfunc
