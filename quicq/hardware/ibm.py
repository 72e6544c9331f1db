"""IBM Quantum (Qiskit Runtime) backend (fake devices and credentials: :mod:`.ibm_account`).

:class:`IBMRuntimeBackend` runs quicq circuits through ``qiskit_ibm_runtime.SamplerV2`` in one
of the three execution modes (``"job"``: the backend itself; ``"batch"`` / ``"session"``: a
``Batch`` / ``Session`` opened on first use and kept until :meth:`IBMRuntimeBackend.close`). The
same code runs offline on ``qiskit_ibm_runtime.fake_provider`` devices: Runtime's local testing
mode then simulates them with Aer (and rebuilds the noise model per call — for fast noisy
simulation prefer ``AerBackend(noise=fake)``).

Credentials (:class:`RuntimeAccount`): the token is read from ``QISKIT_IBM_TOKEN`` at connect
time and handed straight to ``QiskitRuntimeService``; quicq keeps no copy of it. Otherwise a
saved account (``QiskitRuntimeService.save_account``) is used. ``QISKIT_IBM_INSTANCE`` and
``QISKIT_IBM_CHANNEL`` (default ``ibm_quantum_platform``) select instance and channel. No repr,
log message or error text of this module contains the token (errors are redacted through
:func:`quicq.hardware.errors.redact`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from quicq._optional import require

require("qiskit_ibm_runtime", "qiskit")  # first: without the extra, name the pip line
from quicq.hardware._qiskit import CompileCache, check_layout, layout_transpiler
from quicq.hardware.backends import Task
from quicq.hardware.errors import (
    BackendError,
    MitigationError,
    describe,
)
from quicq.hardware.ibm_account import (  # noqa: F401 - re-exported: quicq.hardware.ibm's public names
    CHANNEL_ENV,
    DEFAULT_CHANNEL,
    INSTANCE_ENV,
    TOKEN_ENV,
    RuntimeAccount,
    fake_backend,
    is_fake_name,
)
from quicq.hardware.limits import IBM_SAMPLER_LIMITS
from quicq.hardware.mitigation import ReadoutMitigator
from quicq.hardware.outcome import Outcome
from quicq.hardware.qiskit_backend import QiskitBackend


_MODES = ("job", "batch", "session")


class IBMRuntimeBackend(QiskitBackend):
    """IBM Runtime's sampler as a quicq backend (real devices, or fake devices offline).

    Its public surface for wrappers (packing) and the planner is :class:`~quicq.hardware.
    qiskit_backend.QiskitBackend`'s: :attr:`device` (= :attr:`transpile_backend`),
    :meth:`sampler`, :meth:`run_pubs`, :meth:`fit_shots`.

    **Which sampler.** qiskit-ibm-runtime 0.50 deprecated the server-side ``SamplerV2`` in favour
    of the client-side ``qiskit_ibm_runtime.executor_sampler.Sampler``: it turns PUBs into an
    Executor program on the client (twirling randomisations, dynamical-decoupling sequences)
    and runs it through the same Backend / Batch / Session modes. It also runs in local mode on
    fake devices — and there, unlike the legacy sampler (whose local mode ignores twirling and
    DD with a warning), twirling and DD are really applied before Aer simulates the circuits.
    ``sampler="executor"`` (the default where installed) uses it; ``sampler="legacy"`` the old
    ``SamplerV2`` (its deprecation warning is *not* silenced: it is Runtime telling you
    something true); or pass your own sampler instance (used as is: quicq sets no options
    or seeds on it).

    Args:
        backend: a device name (``"ibm_brisbane"``: needs credentials), a fake device name
            (``"FakeManilaV2"`` / ``"fake_manila"``: offline) or a ``BackendV2`` instance.
        mode: ``"job"``, ``"batch"`` or ``"session"`` (Runtime execution modes).
        shots: default shots per binding (exact mode is not available on a device).
        seed: fake devices only: seeds the per-call simulator seeds (reproducible runs).
        optimization_level, seed_transpiler: preset pass manager settings; each circuit
            structure is transpiled once for the device.
        account: where credentials come from (default :meth:`RuntimeAccount.from_env`).
        service: an existing ``QiskitRuntimeService`` to use instead of ``account``.
        sampler: ``"executor"``, ``"legacy"`` or a sampler instance (see above).
        options: sampler options as a dict, validated now, e.g.
            ``{"twirling": {"enable_gates": True, "enable_measure": True},
            "dynamical_decoupling": {"enable": True, "sequence_type": "XY4"}}``. The backend's
            ``shots`` is the default shot count. Twirling/DD with the legacy sampler on a
            fake device raise :class:`~quicq.hardware.errors.MitigationError` (its local mode
            would ignore them).
        pass_manager: your own pass manager instead of the preset one; ``initial_layout``:
            physical qubits of IR qubits 0, 1, … for the preset one. Not both.
        calibration_shots: shots per M3 calibration circuit (``readout="m3"`` plans).
        retries, retry_delay, timeout: see :class:`~quicq.hardware.backends.Backend`.
    """

    supports_exact = False
    job_limits = IBM_SAMPLER_LIMITS  # also for fake devices: the limits of the service they stand for
    job_log_level = logging.INFO

    def __init__(self, backend: Any = "FakeManilaV2", *, mode: str = "job", shots: int = 4096,
                 seed: int | None = None, optimization_level: int = 1, seed_transpiler: int = 1234,
                 account: RuntimeAccount | None = None, service: Any = None, sampler: Any = None,
                 options: dict[str, Any] | None = None, pass_manager: Any = None, initial_layout: Any = None,
                 calibration_shots: int | None = None, **kwargs: Any) -> None:
        super().__init__(shots, **kwargs)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if pass_manager is not None and not callable(getattr(pass_manager, "run", None)):
            raise TypeError(f"pass_manager must have run(circuit), got {type(pass_manager).__name__}")
        if pass_manager is not None and initial_layout is not None:
            raise ValueError("give either pass_manager or initial_layout, not both")
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"options must be a dict of sampler options, got {type(options).__name__}")
        from qiskit.providers import BackendV2
        from qiskit.transpiler import generate_preset_pass_manager

        self.mode = mode
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._service = None
        if isinstance(backend, BackendV2):
            self._device = backend
        elif isinstance(backend, str) and is_fake_name(backend):
            self._device = fake_backend(backend)
        elif isinstance(backend, str):
            self._service = service if service is not None else (account or RuntimeAccount.from_env()).connect()
            try:
                self._device = self._service.backend(backend)
            except Exception as exc:  # noqa: BLE001
                raise BackendError(f"IBM Quantum backend {backend!r} is not available: {describe(exc)}") from None
        else:
            raise TypeError(f"backend must be a name or a BackendV2 instance, got {type(backend).__name__}")
        self.local = not _is_ibm_device(self._device)
        self.name = f"ibm[{self._device.name}]" + ("(local)" if self.local else "")
        self._context = None  # open Batch / Session
        self._max_qubits = int(self._device.num_qubits)
        self.initial_layout = check_layout(initial_layout, self._max_qubits, self.name)
        self.calibration_shots = calibration_shots
        self._mitigator = None
        self.sampler_kind, self._user_sampler = _sampler_kind(sampler)
        if self._user_sampler is not None and options:
            raise ValueError("options go on your own sampler (sampler.options); do not pass both")
        self.options = dict(options or {})
        self._options_obj = _validated_options(self.sampler_kind, self.options, shots) \
            if self._user_sampler is None else None
        self._suppression = _suppression(self.options)
        if self.local and self.sampler_kind == "legacy" and self._suppression:
            raise MitigationError(
                f"{self.name}: {sorted(self._suppression)} would be ignored: the legacy SamplerV2's "
                f"local testing mode does not apply twirling or dynamical decoupling. Use "
                f"sampler='executor' (applies both client-side, also on fake devices)"
            )
        self._sampler_obj = self._user_sampler
        if pass_manager is not None:
            transpile = pass_manager.run
        else:
            transpile = layout_transpiler(
                lambda layout: generate_preset_pass_manager(
                    backend=self._device, optimization_level=optimization_level,
                    seed_transpiler=seed_transpiler, initial_layout=layout),
                self.initial_layout)
        self._cache = CompileCache(transpile)

    @property
    def max_qubits(self) -> int:
        return self._max_qubits

    def readout_mitigator(self) -> ReadoutMitigator:
        """M3 calibrations on this device (fake devices: seeded, run by Aer), built on first use.

        On a real device mthree submits its calibration circuits itself (in the open Batch /
        Session when there is one).
        """
        if self._mitigator is None:
            self._mitigator = ReadoutMitigator(
                self._device, shots=self.calibration_shots, simulator=self.local,
                seed=None if self.seed is None else self.seed + 7919)
        return self._mitigator

    def mitigation_report(self) -> dict[str, Any]:
        """Sampler kind and the error suppression Runtime applies (twirling, DD)."""
        return {"sampler": self.sampler_kind, "local": self.local, **self._suppression}

    @property
    def device(self) -> Any:
        """The Qiskit backend object (an ``IBMBackend`` or a fake device)."""
        return self._device

    @property
    def transpile_backend(self) -> Any:
        """The device: circuits are transpiled for its Target and coupling map."""
        return self._device

    def _execution_mode(self) -> Any:
        if self.mode == "job":
            return self._device
        if self._context is None:
            from qiskit_ibm_runtime import Batch, Session

            self._context = (Batch if self.mode == "batch" else Session)(backend=self._device)
        return self._context

    def sampler(self, seed: int | None = None) -> Any:
        """The Runtime sampler (built once per execution mode), seeded for the next job.

        Local runs (fake devices) get a fresh simulator seed per job, drawn from the seeded
        stream unless ``seed`` is given; a device run takes no seed. Your own sampler is
        returned untouched.
        """
        if self._sampler_obj is None:
            mode = self._execution_mode()
            if self.sampler_kind == "executor":
                from qiskit_ibm_runtime.executor_sampler import Sampler

                self._sampler_obj = Sampler(mode=mode, options=self._options_obj.model_copy(deep=True))
            else:
                from qiskit_ibm_runtime import SamplerV2

                self._sampler_obj = SamplerV2(mode=mode, options=self._options_obj)
        if self.local and self._user_sampler is None:
            self._sampler_obj.options.simulator.seed_simulator = (
                int(self._rng.integers(1, 2**31 - 1)) if seed is None else int(seed))
        return self._sampler_obj

    def _run(self, tasks: list[Task], shots: int | None) -> list[Outcome]:
        assert shots is not None  # checked by Backend.sample (supports_exact is False)
        return self._run_shots(tasks, shots)

    def fit_shots(self, per_shot: np.ndarray, shots: int) -> np.ndarray:
        """Exactly ``shots`` shots per binding.

        With twirling the sampler rounds shots up to whole randomisations (1000 → 16 × 64).
        The extra shots are dropped by a uniformly random choice, so every randomisation keeps
        its expected share.
        """
        if per_shot.shape[1] < shots:
            return super().fit_shots(per_shot, shots)  # fewer than asked: an error
        if per_shot.shape[1] == shots:
            return per_shot
        keep = np.sort(self._rng.permutation(per_shot.shape[1])[:shots])
        return per_shot[:, keep]

    def close(self) -> None:
        """Close an open Batch/Session (no-op in job mode)."""
        if self._context is not None:
            try:
                self._context.close()
            finally:
                self._context = None

    def __enter__(self) -> IBMRuntimeBackend:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"IBMRuntimeBackend(name={self.name!r}, mode={self.mode!r}, shots={self.shots}, "
                f"local={self.local})")


def _sampler_kind(sampler: Any) -> tuple[str, Any]:
    """("executor" | "legacy" | "user", the user's instance or None)."""
    if sampler is None:
        try:
            import qiskit_ibm_runtime.executor_sampler  # noqa: F401 - availability check
        except ImportError:  # qiskit-ibm-runtime < 0.50
            return "legacy", None
        return "executor", None
    if sampler in ("executor", "legacy"):
        return sampler, None
    if isinstance(sampler, str):
        raise ValueError(f"sampler must be 'executor', 'legacy' or a sampler instance, got {sampler!r}")
    if not callable(getattr(sampler, "run", None)):
        raise TypeError(f"sampler must be a SamplerV2-like object with run(pubs), got {type(sampler).__name__}")
    return "user", sampler


def _validated_options(kind: str, options: dict[str, Any], shots: int) -> Any:
    """The sampler's options object, built (and validated) now: a typo fails before any job."""
    merged = {"default_shots": shots, **options}
    try:
        if kind == "executor":
            from qiskit_ibm_runtime.options_models import SamplerOptions
        else:
            from qiskit_ibm_runtime.options import SamplerOptions
        return SamplerOptions(**merged)
    except Exception as exc:  # pydantic ValidationError / TypeError: name the bad option
        raise ValueError(f"invalid {kind} sampler options {options!r}: {describe(exc)}") from None


def _suppression(options: dict[str, Any]) -> dict[str, Any]:
    """The twirling / DD settings that are switched on, by option name."""
    out: dict[str, Any] = {}
    tw = options.get("twirling") or {}
    if isinstance(tw, dict) and (tw.get("enable_gates") or tw.get("enable_measure")):
        out["twirling"] = dict(tw)
    dd = options.get("dynamical_decoupling") or {}
    if isinstance(dd, dict) and dd.get("enable"):
        out["dynamical_decoupling"] = dict(dd)
    return out


def _is_ibm_device(device: Any) -> bool:
    try:
        from qiskit_ibm_runtime import IBMBackend
    except ImportError:  # pragma: no cover
        return False
    return isinstance(device, IBMBackend)
