"""Qiskit for quicq circuits: compile the IR to Qiskit (:mod:`~quicq.circuits.qiskit_export`) and
read Qiskit circuits back (:mod:`~quicq.circuits.qiskit_import`).

This module is the stable import path for both. The conventions (qubit j is Qiskit qubit j,
Qiskit's little-endian statevectors, the named ``rbs``/``fbs`` gates, ``mcry`` control states,
one ``ParameterVector`` element per slot) are documented in :mod:`~quicq.circuits.qiskit_export`
and docs/conventions.md.
"""

from __future__ import annotations

from quicq._optional import require

require("qiskit", "qiskit")  # a clear install hint instead of a bare ModuleNotFoundError

from quicq.circuits.qiskit_export import (  # noqa: E402
    CODE_SPACE_KEY,
    SUPPORTED_QISKIT_GATES,
    FBSGate,
    RBSGate,
    mcry_gate,
    to_qiskit,
)
from quicq.circuits.qiskit_import import from_qiskit, read_angle  # noqa: E402

__all__ = ["CODE_SPACE_KEY", "SUPPORTED_QISKIT_GATES", "FBSGate", "RBSGate", "from_qiskit", "mcry_gate",
           "read_angle", "to_qiskit"]
