"""OpenQASM 2.0 / 3.0 for quicq circuits: export (:mod:`~quicq.circuits.qasm_write`, written by quicq
from the IR, no Qiskit needed) and import (:mod:`~quicq.circuits.qasm_read`, via Qiskit's parsers,
bounded by :class:`~quicq.circuits.qasm_scan.Limits` before parsing).

This module is the stable import path for both; the conventions of the files quicq writes (gate
definitions, exact angles, the ``// quicq`` comments that carry a code space, the PennyLane
flavour) are documented in :mod:`~quicq.circuits.qasm_write`, and how files are read back (and
why foreign gate bodies are checked) in :mod:`~quicq.circuits.qasm_read`.
"""

from __future__ import annotations

from quicq.circuits.qasm_read import from_qasm, from_qasm2, from_qasm3, qasm_version
from quicq.circuits.qasm_scan import Limits, QasmError
from quicq.circuits.qasm_write import FLAVOURS, _fmt_angle, to_qasm2, to_qasm3  # noqa: F401  (_fmt_angle: tests)

__all__ = [
    "FLAVOURS", "Limits", "QasmError", "from_qasm", "from_qasm2", "from_qasm3", "qasm_version",
    "to_qasm2", "to_qasm3",
]
