"""The hardware path: run quicq circuits on simulators and devices, estimate blocks, differentiate.

* Backends (one interface, :class:`Backend`): :class:`ExactBackend` (torch engine),
  :class:`AerBackend` (Qiskit Aer, ideal or device noise), :class:`IBMRuntimeBackend` (IBM
  Runtime SamplerV2: real devices or fake devices offline), :class:`PennyLaneBackend`.
  The two Qiskit ones share a public surface for wrappers (:class:`QiskitBackend`: ``device``,
  ``transpile_backend``, ``sampler()``, ``run_pubs()``), which :class:`PackedBackend` builds on.
  Each ``sample(tasks, shots)`` call is one job; transient failures are retried with backoff,
  then :class:`BackendError`; permanent ones (TypeError, a rejected circuit) fail at once.
* Mitigation (:mod:`quicq.hardware.mitigation`): Hamming-weight post-selection, M3 readout
  correction (``readout="m3"``), zero-noise extrapolation by RBS folding (``zne=True``) as
  tomography options; twirling / dynamical decoupling as ``IBMRuntimeBackend(options=...)``.
* Tomography plans: :class:`BlockTomography` (signed weight-k blocks of HW-preserving circuits,
  vacuum reference, post-selection, polar projection) and :class:`PauliTomography` (signed
  columns of Pauli circuits); ``plan.run(backend, angles)`` → :class:`TomographyResult`.
* :class:`HardwareBlock`: blocks from a backend as a torch module, with parameter-shift, SPSA
  or exact-surrogate gradients.

Backends that need optional packages import them on construction, so ``import quicq.hardware``
works with only the core dependencies installed.
"""

from __future__ import annotations

from typing import Any

from quicq.hardware.backends import DEFAULT_SHOTS, Backend, ExactBackend, check_shots
from quicq.hardware.errors import (
    BackendError,
    BackendTimeoutError,
    CredentialsError,
    HardwareError,
    MitigationError,
    TransientBackendError,
    redact,
)
from quicq.hardware.mitigation import ZNE, ReadoutMitigator, fold
from quicq.hardware.hybrid import GRADIENTS, HardwareBlock, hardware_blocks, shift_table
from quicq.hardware.outcome import Outcome
from quicq.hardware.pauli_tomography import PauliTomography
from quicq.hardware.tomography import (
    BlockTomography,
    Tomography,
    TomographyResult,
    compound_with_errors,
    polar,
)

_LAZY = {
    "AerBackend": "quicq.hardware.aer",
    "PennyLaneBackend": "quicq.hardware.pennylane",
    "IBMRuntimeBackend": "quicq.hardware.ibm",
    "RuntimeAccount": "quicq.hardware.ibm",
    "fake_backend": "quicq.hardware.ibm",
    "PackedBackend": "quicq.hardware.packing",
    "QiskitBackend": "quicq.hardware.qiskit_backend",
    "ModelHardwareBridge": "quicq.hardware.model_bridge",
}


def __getattr__(name: str) -> Any:
    """Import the optional-dependency backends on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'quicq.hardware' has no attribute {name!r}")


__all__ = [
    "DEFAULT_SHOTS",
    "GRADIENTS",
    "AerBackend",
    "Backend",
    "BackendError",
    "BackendTimeoutError",
    "BlockTomography",
    "CredentialsError",
    "ExactBackend",
    "HardwareBlock",
    "HardwareError",
    "IBMRuntimeBackend",
    "MitigationError",
    "ReadoutMitigator",
    "TransientBackendError",
    "ZNE",
    "fold",
    "ModelHardwareBridge",
    "Outcome",
    "PackedBackend",
    "PauliTomography",
    "PennyLaneBackend",
    "QiskitBackend",
    "RuntimeAccount",
    "Tomography",
    "TomographyResult",
    "check_shots",
    "compound_with_errors",
    "fake_backend",
    "hardware_blocks",
    "polar",
    "redact",
    "shift_table",
]
