"""Per-job limits of a backend (executions, run time) and the error for requests beyond them.

A backend declares its limits as ``job_limits`` (:class:`~quicq.hardware.backends.Backend`: none;
:class:`~quicq.hardware.ibm.IBMRuntimeBackend`: IBM's); :mod:`quicq.hardware.jobs` splits
requests under them. Kept apart from the job runner so backends can import it without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

from quicq.errors import QuicqError
from quicq.hardware.errors import BackendError

__all__ = ["IBM_SAMPLER_LIMITS", "JobLimitError", "JobLimits"]


class JobLimitError(BackendError, QuicqError):
    """A request cannot be split into jobs within the backend's limits; nothing was submitted."""


@dataclass(frozen=True)
class JobLimits:
    """Per-job limits of a backend (``None``: no limit).

    Attributes:
        max_executions: circuit executions × shots per job (IBM Sampler: 10,000,000).
        max_seconds: estimated run time per job (IBM: 3 h); enforced only when
            ``seconds_per_shot`` is known (e.g. from :func:`quicq.hardware.planner.plan_cost`).
        seconds_per_shot: estimated device time of one shot of one execution.
    """

    max_executions: int | None = None
    max_seconds: float | None = None
    seconds_per_shot: float | None = None

    def max_rows(self, shots: int) -> int | None:
        """Largest number of executions (bindings) one job may hold at ``shots`` shots."""
        caps = []
        if self.max_executions is not None:
            caps.append(self.max_executions // shots)
        if self.max_seconds is not None and self.seconds_per_shot:
            caps.append(int(self.max_seconds // (self.seconds_per_shot * shots)))
        if not caps:
            return None
        cap = min(caps)
        if cap < 1:
            raise JobLimitError(
                f"one execution at {shots:,} shots exceeds the per-job limit ({self}); lower the shots; "
                "nothing was submitted")
        return cap


#: IBM Runtime Sampler limits (10 M executions per job, 3 h per job).
IBM_SAMPLER_LIMITS = JobLimits(max_executions=10_000_000, max_seconds=3 * 3600.0)
