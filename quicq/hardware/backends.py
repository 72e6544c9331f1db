"""One interface for every place quicq circuits can run: :class:`Backend`.

A backend *samples* quicq circuits: ``backend.sample(tasks, shots)`` takes a list of
``(Circuit, angles)`` tasks — each circuit (state preparation and basis changes included as
IR gates) with a (B, n_params) array of angle bindings — measures every qubit in the Z basis
and returns one :class:`~quicq.hardware.outcome.Outcome` per task. ``shots=None`` asks for exact
probabilities (simulators only). All tasks of one call go to the device together, so one
block estimate is one job.

The base class validates everything *before* submission (shots, angle shapes, circuit width
against the device) and wraps the backend-specific :meth:`Backend._run` in retries with
exponential backoff — for *transient* failures only (timeouts, connection errors, job failures
the service reports; :func:`~quicq.hardware.errors.is_transient`). A job that still fails raises
:class:`BackendError` naming the backend, the attempt count and the cause; a permanent failure
(a TypeError, a circuit the device rejects, …) is raised at once, unchanged, and never
resubmitted. Implementations:

* :class:`ExactBackend` (here) — the exact torch engine; multinomial sampling for shots.
* :class:`~quicq.hardware.aer.AerBackend` — Qiskit Aer, ideal or with a device noise model.
* :class:`~quicq.hardware.ibm.IBMRuntimeBackend` — IBM Runtime SamplerV2 (also fake devices).
* :class:`~quicq.hardware.pennylane.PennyLaneBackend` — PennyLane devices.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from quicq.circuits.ir import Circuit, CircuitError, check_angles
from quicq.hardware.errors import (
    BackendError,
    BackendTimeoutError,
    MitigationError,
    contains_secret,
    describe,
    is_transient,
)
from quicq.hardware.limits import JobLimits
from quicq.hardware.outcome import Outcome

logger = logging.getLogger(__name__)


class _Default:
    """Sentinel type: 'use the backend's own default shots' (one instance, DEFAULT_SHOTS)."""

    def __repr__(self) -> str:
        return "DEFAULT_SHOTS"


DEFAULT_SHOTS: Final = _Default()
"""Pass as ``shots`` to use the backend's configured shot count."""

Task = tuple[Circuit, np.ndarray]


def check_shots(shots: Any, *, allow_exact: bool = True, where: str = "shots") -> int | None:
    """Validate a shot count: a positive int, or ``None`` (exact) when ``allow_exact``."""
    if shots is None:
        if not allow_exact:
            raise ValueError(f"{where}: this backend samples shots; shots=None (exact) is not available")
        return None
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)):
        # ValueError (not TypeError) for every bad shot count: callers catch one error kind.
        raise ValueError(f"{where} must be a positive int or None (exact), got {shots!r}")  # noqa: TRY004
    if shots <= 0:
        raise ValueError(f"{where} must be a positive int or None (exact), got {shots}")
    return int(shots)


def as_angle_batch(circuit: Circuit, angles: Any, where: str) -> np.ndarray:
    """Angle bindings as a float64 (B, n_params) array ((n_params,) becomes (1, n_params))."""
    if hasattr(angles, "detach"):  # torch tensor
        angles = angles.detach().cpu().numpy()
    arr = np.asarray(angles, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise CircuitError(f"{where}: angles must have shape (B, {circuit.n_params}), got {arr.shape}")
    check_angles(circuit, arr, name=f"{where}: angles")
    if arr.shape[0] == 0:
        raise CircuitError(f"{where}: no angle bindings (B = 0)")
    return arr


def await_job(job: Any, timeout: float | None, *, poll: float = 0.02) -> Any:
    """``job.result()`` of a primitive job, raising :class:`BackendTimeoutError` after ``timeout`` s.

    Works for any job with ``done()``, ``result()`` and ``cancel()`` (Qiskit ``PrimitiveJob``,
    IBM ``RuntimeJobV2``): it polls ``done()`` with a growing interval and cancels a job that
    runs out of time, so a stuck job never blocks training forever.
    """
    if timeout is None:
        return job.result()
    deadline = time.monotonic() + timeout
    wait = poll
    while not job.done():
        left = deadline - time.monotonic()
        if left <= 0:
            try:
                job.cancel()
            except Exception as exc:  # noqa: BLE001 - best effort; the timeout is what we report
                logger.debug("could not cancel a timed-out job: %s", describe(exc))
            raise BackendTimeoutError(f"job did not finish within {timeout:g} s (cancelled)")
        time.sleep(min(wait, left))
        wait = min(wait * 2, 1.0)
    return job.result()


class Backend(ABC):
    """Samples quicq circuits; subclasses implement :meth:`_run`.

    Args:
        shots: default shot count (``None`` = exact probabilities, where supported).
        retries: total attempts per job (≥ 1) before :class:`BackendError` is raised.
        retry_delay: delay before the first retry in seconds; doubles on every further retry.
        timeout: seconds to wait for one asynchronous job (``None``: no limit); a timeout
            counts as a failed attempt.
    """

    #: Human-readable backend name used in errors and results.
    name: str = "backend"
    #: Whether ``shots=None`` (exact probabilities) is supported.
    supports_exact: bool = True
    #: Per-job limits the job runner splits requests under (none for simulators).
    job_limits: JobLimits = JobLimits()

    def __init__(self, shots: int | None = 1024, *, retries: int = 3, retry_delay: float = 1.0,
                 timeout: float | None = None) -> None:
        self.shots = check_shots(shots, allow_exact=self.supports_exact, where=f"{type(self).__name__}: shots")
        if isinstance(retries, bool) or not isinstance(retries, (int, np.integer)) or retries < 1:
            raise ValueError(f"retries must be an int ≥ 1 (total attempts), got {retries!r}")
        if not retry_delay >= 0:
            raise ValueError(f"retry_delay must be ≥ 0 seconds, got {retry_delay!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
        self.retries = int(retries)
        self.retry_delay = float(retry_delay)
        self.timeout = timeout

    # ---- properties subclasses may override --------------------------------------------------
    @property
    def max_qubits(self) -> int | None:
        """Largest circuit the backend can run (``None``: no fixed limit)."""
        return None

    def readout_mitigator(self) -> Any:
        """The backend's :class:`~quicq.hardware.mitigation.ReadoutMitigator` (built once).

        Raises:
            MitigationError: this backend has no measured physical qubits to calibrate (the
                exact engine, PennyLane devices); nothing is submitted.
        """
        raise MitigationError(
            f"{self.name}: readout mitigation (M3) needs a Qiskit backend with physical qubits "
            f"(AerBackend, IBMRuntimeBackend); {type(self).__name__} has no readout to calibrate"
        )

    def mitigation_report(self) -> dict[str, Any]:
        """Error-suppression settings the backend applies itself (runtime options); {} if none."""
        return {}

    # ---- the public entry point ---------------------------------------------------------------
    def sample(self, tasks: Sequence[tuple[Circuit, Any]], shots: int | None | _Default = DEFAULT_SHOTS
               ) -> list[Outcome]:
        """Run every task in one job and return one :class:`Outcome` per task, in order.

        Args:
            tasks: ``(circuit, angles)`` pairs, angles of shape (B, n_params) or (n_params,).
            shots: shots per binding; ``None`` for exact probabilities; default: ``self.shots``.

        Raises:
            ValueError / CircuitError: invalid shots, angles or circuits (nothing submitted).
            BackendError: the circuit is wider than the device (nothing submitted), or the job
                failed on every attempt.
        """
        shots = self.shots if shots is DEFAULT_SHOTS else check_shots(
            shots, allow_exact=self.supports_exact, where=f"{self.name}: shots")
        checked = self._check_tasks(tasks)
        if not checked:
            return []
        outcomes = self._with_retries(checked, shots)
        self._check_outcomes(checked, shots, outcomes)
        return outcomes

    def _check_tasks(self, tasks: Sequence[tuple[Circuit, Any]]) -> list[Task]:
        if isinstance(tasks, tuple) and len(tasks) == 2 and isinstance(tasks[0], Circuit):
            raise TypeError("sample() takes a list of (circuit, angles) tasks; wrap a single task in a list")
        out: list[Task] = []
        limit = self.max_qubits
        # A plan's circuits share one angle array: validate (and convert) it once per slot count.
        seen: dict[tuple[int, int], np.ndarray] = {}
        for i, task in enumerate(tasks):
            try:
                circuit, angles = task
            except (TypeError, ValueError):
                raise TypeError(f"task {i}: expected a (Circuit, angles) pair, got {type(task).__name__}") from None
            if not isinstance(circuit, Circuit):
                raise TypeError(f"task {i}: expected a quicq Circuit, got {type(circuit).__name__}")
            if limit is not None and circuit.n_qubits > limit:
                raise BackendError(
                    f"{self.name}: task {i} needs {circuit.n_qubits} qubits but the backend has only "
                    f"{limit}; nothing was submitted"
                )
            key = (id(angles), circuit.n_params)  # ``tasks`` keeps every array alive: ids are unique
            if key not in seen:
                seen[key] = as_angle_batch(circuit, angles, f"task {i}")
            out.append((circuit, seen[key]))
        return out

    def _with_retries(self, tasks: list[Task], shots: int | None) -> list[Outcome]:
        last: BaseException | None = None
        for attempt in range(1, self.retries + 1):
            try:
                return self._run(tasks, shots)
            except Exception as exc:
                if not is_transient(exc):
                    # Resubmitting cannot help (and costs device time): fail now, with the message.
                    if contains_secret(exc):
                        raise BackendError(f"{self.name}: job failed: {describe(exc)}") from None
                    raise
                last = exc
                if attempt == self.retries:
                    break
                delay = self.retry_delay * 2 ** (attempt - 1)
                logger.warning("%s: attempt %d/%d failed (%s); retrying in %.3g s",
                               self.name, attempt, self.retries, describe(exc), delay)
                time.sleep(delay)
        assert last is not None
        kind = "timed out" if isinstance(last, BackendTimeoutError) else "failed"
        err = BackendError(
            f"{self.name}: job {kind} after {self.retries} attempt(s); last error: {describe(last)}"
        )
        if contains_secret(last):
            raise err from None
        raise err from last

    def _check_outcomes(self, tasks: list[Task], shots: int | None, outcomes: list[Outcome]) -> None:
        if len(outcomes) != len(tasks):
            raise BackendError(f"{self.name}: returned {len(outcomes)} results for {len(tasks)} circuits")
        for i, ((circuit, angles), res) in enumerate(zip(tasks, outcomes)):
            if res.batch != angles.shape[0] or res.n_qubits != circuit.n_qubits or res.shots != shots:
                raise BackendError(
                    f"{self.name}: result {i} has batch {res.batch}, {res.n_qubits} qubits, shots "
                    f"{res.shots}; expected {angles.shape[0]}, {circuit.n_qubits}, {shots}"
                )

    @abstractmethod
    def _run(self, tasks: list[Task], shots: int | None) -> list[Outcome]:
        """Execute validated tasks as one job (called again on retry)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, shots={self.shots})"


class ExactBackend(Backend):
    """The exact torch engine as a backend: the fast reference every other backend is checked against.

    Exact probabilities come from :func:`quicq.engine.simulate` on |0…0⟩ (the circuit carries
    its own state preparation). With shots, outcomes are drawn from a multinomial with a numpy
    ``Generator`` seeded by ``seed``: successive calls continue the same random stream, so
    repeated estimates are independent yet the whole run is reproducible.
    """

    name = "exact"

    def __init__(self, shots: int | None = None, *, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(shots, **kwargs)
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    @property
    def max_qubits(self) -> int:
        return 24  # the engine's statevector limit

    def _run(self, tasks: list[Task], shots: int | None) -> list[Outcome]:
        import torch

        from quicq.engine import simulate

        out = []
        for circuit, angles in tasks:
            with torch.no_grad():
                psi = simulate(circuit, torch.as_tensor(angles, dtype=torch.float64), [0])[:, 0, :]
            probs = (psi**2).numpy()
            probs = probs / probs.sum(-1, keepdims=True)
            if shots is None:
                out.append(Outcome(circuit.n_qubits, None, probs=probs))
                continue
            idx = np.empty((probs.shape[0], shots), dtype=np.int64)
            basis = np.arange(probs.shape[1], dtype=np.int64)
            for b, p in enumerate(probs):
                counts = self._rng.multinomial(shots, p)
                idx[b] = self._rng.permutation(np.repeat(basis, counts))
            out.append(Outcome(circuit.n_qubits, shots, indices=idx))
        return out

    def __repr__(self) -> str:
        return f"ExactBackend(shots={self.shots}, seed={self.seed})"
