"""The public surface shared by quicq's Qiskit-based backends (Aer, IBM Runtime).

:class:`QiskitBackend` is what wrappers such as :class:`~quicq.hardware.packing.PackedBackend`
and the cost planner build on, instead of reaching into a backend's internals:

* :attr:`~QiskitBackend.device` — the Qiskit device whose coupling map, basis, durations and
  readout the backend models (a fake device or an IBM backend), ``None`` for a simulator
  without one (ideal Aer, a bare noise model);
* :attr:`~QiskitBackend.transpile_backend` — what circuits are transpiled for (Aer: its
  simulator, which carries the device's Target; IBM: the device);
* :attr:`~QiskitBackend.transpile_cache` — each IR circuit structure transpiled once;
* :meth:`~QiskitBackend.sampler` — the ``SamplerV2`` the next job runs on, with a fresh
  simulator seed where quicq seeds it (never on a sampler you passed in);
* :meth:`~QiskitBackend.run_pubs` — one primitive job from ready PUBs, awaited under the
  backend's timeout; :meth:`~QiskitBackend.fit_shots` — exactly the shots asked for.

A subclass implements :attr:`device`, :attr:`transpile_backend`, :meth:`sampler` and may
override :meth:`fit_shots`; :meth:`_run_shots` (the shot path of ``sample``) is shared.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from typing import Any

import numpy as np

from quicq.hardware._qiskit import CompileCache, pub_indices, sampler_pubs
from quicq.hardware.backends import Backend, Task, await_job
from quicq.hardware.errors import BackendError
from quicq.hardware.outcome import Outcome

__all__ = ["QiskitBackend"]

logger = logging.getLogger(__name__)


class QiskitBackend(Backend):
    """A quicq backend that transpiles IR circuits with Qiskit and samples them with a ``SamplerV2``.

    Not instantiated directly: use :class:`~quicq.hardware.aer.AerBackend` or
    :class:`~quicq.hardware.ibm.IBMRuntimeBackend`.
    """

    #: log level of the one line per submitted job (IBM: INFO, so a user sees job ids)
    job_log_level: int = logging.DEBUG
    _cache: CompileCache

    @property
    @abstractmethod
    def device(self) -> Any:
        """The Qiskit device modelled (coupling map, Target, readout), or ``None`` (no device)."""

    @property
    @abstractmethod
    def transpile_backend(self) -> Any:
        """The Qiskit backend circuits are transpiled for (its Target and coupling map)."""

    @property
    def transpile_cache(self) -> CompileCache:
        """The per-backend cache of transpiled circuit structures."""
        return self._cache

    @abstractmethod
    def sampler(self, seed: int | None = None) -> Any:
        """The sampler the next job runs on (built once, reused).

        Args:
            seed: the simulator seed for that job (simulators and local fake devices only);
                ``None`` draws the next one from the backend's seeded stream. A sampler you
                passed to the backend is returned as is: quicq sets no seed on it.
        """

    def run_pubs(self, pubs: list[tuple], shots: int, *, seed: int | None = None) -> Any:
        """Submit ``pubs`` as one primitive job on :meth:`sampler` and return its ``PrimitiveResult``.

        The job is awaited under the backend's ``timeout`` (and cancelled when it runs out).
        No retries here: :meth:`~quicq.hardware.backends.Backend.sample` retries transient
        failures around the whole call.
        """
        job = self.sampler(seed).run(pubs, shots=shots)
        if logger.isEnabledFor(self.job_log_level):
            logger.log(self.job_log_level, "%s: submitted %d PUBs as job %s", self.name, len(pubs), _job_id(job))
        return await_job(job, self.timeout)

    def fit_shots(self, per_shot: np.ndarray, shots: int) -> np.ndarray:
        """Per-shot results of one PUB, (B, shots', ...) → exactly ``shots`` shots per binding.

        The base version only checks the count; a sampler that rounds shots up (IBM Runtime
        with twirling) overrides it.
        """
        if per_shot.shape[1] != shots:
            raise BackendError(f"{self.name}: the sampler returned {per_shot.shape[1]} shots, {shots} were asked for")
        return per_shot

    def _run_shots(self, tasks: list[Task], shots: int) -> list[Outcome]:
        """Every task as PUBs of one job, bits back in quicq's qubit order, with measured qubits."""
        compiled = [self._cache.get(c, "measure") for c, _ in tasks]
        pubs, used = sampler_pubs(compiled, [a for _, a in tasks])
        result = self.run_pubs(pubs, shots)
        indices = pub_indices(result, used, [c.n_qubits for c, _ in tasks])
        return [Outcome(c.n_qubits, shots, indices=self.fit_shots(idx, shots), physical_qubits=comp.measured_qubits)
                for (c, _), idx, comp in zip(tasks, indices, compiled)]


def _job_id(job: Any) -> str:
    try:
        return str(job.job_id())
    except Exception:  # noqa: BLE001 - an id is only for the log line
        return "?"
