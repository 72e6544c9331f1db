"""Compile the quicq IR to Qiskit: named RBS / FBS gates, controlled RY, one parameter per slot.

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

from collections.abc import Sequence
from typing import Any

import numpy as np

from quicq._optional import require

require("qiskit", "qiskit")  # a clear install hint instead of a bare ModuleNotFoundError

from qiskit.circuit import ParameterVector, QuantumCircuit  # noqa: E402
from qiskit.circuit import Gate as QiskitGate  # noqa: E402
from qiskit.circuit.library import CZGate, HGate, RYGate, XGate, ZGate  # noqa: E402

from quicq.circuits._angles import angle_vector  # noqa: E402
from quicq.circuits.bitorder import control_state_int, qiskit_permutation  # noqa: E402
from quicq.circuits.gates import RBS_DECOMPOSITION, fbs_decomposition, rbs_matrix  # noqa: E402
from quicq.circuits.ir import Circuit, CircuitError  # noqa: E402

__all__ = ["CODE_SPACE_KEY", "SUPPORTED_QISKIT_GATES", "FBSGate", "RBSGate", "mcry_gate", "to_qiskit"]

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
        from quicq.circuits.qiskit_import import read_angle  # the reader imports this module

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
