"""Circuit IR, layouts and compilers. See :mod:`quicq.circuits.ir` for the conventions."""

from quicq.circuits.codespace import CodeSpace
from quicq.circuits.gates import GATES, HW_PRESERVING_GATES, GateSpec, fbs_decomposition, shift_rule
from quicq.circuits.ir import (
    Circuit,
    CircuitError,
    Gate,
    basis_index,
    check_angles,
    check_orders,
    sector_dim,
    sector_indices,
    subsets,
)
from quicq.circuits.givens import givens_decompose
from quicq.circuits.layouts import LAYOUTS, brick, build_layout, butterfly, pyramid, x_layout
from quicq.circuits.pauli import code_indices, pauli, pauli_param_count, split_dimension
from quicq.circuits.qasm import QasmError, from_qasm, to_qasm2, to_qasm3

# The Qiskit and PennyLane compilers (quicq.circuits.qiskit_io, quicq.circuits.pennylane_io)
# are imported explicitly: they pull in optional frameworks.

__all__ = [
    "GATES", "HW_PRESERVING_GATES", "GateSpec", "fbs_decomposition", "shift_rule", "CodeSpace", "Circuit", "CircuitError", "Gate", "basis_index",
    "check_angles", "check_orders", "sector_dim", "sector_indices", "subsets", "LAYOUTS",
    "brick", "build_layout", "butterfly", "pyramid", "x_layout", "code_indices", "pauli",
    "pauli_param_count", "split_dimension", "givens_decompose", "QasmError", "from_qasm",
    "to_qasm2", "to_qasm3",
]
