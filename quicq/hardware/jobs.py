"""Jobs: many tomography plans in one primitive call, split only where the backend's limits force it.

A training step of an adapted model needs the blocks of every adapted layer (forward) and every
shifted or perturbed binding of every layer (backward). :func:`run_plans` submits the circuits
of any number of tomography plans, each at its own angle bindings, in **one**
:meth:`~quicq.hardware.backends.Backend.sample` call — one primitive job — and reduces each
plan's outcomes to its own :class:`~quicq.hardware.tomography.TomographyResult`.

Where one job would exceed the backend's limits (:class:`JobLimits`; IBM Runtime Sampler: at most
10 M executions — circuit bindings × shots — per job, and a job must finish within 3 h), the
task list is split into the fewest jobs that fit, splitting a task's bindings where needed, and
the outcomes are joined back: callers see one result per plan either way. An IBM backend in
``mode="batch"`` sends those jobs into one Runtime Batch. A single execution that cannot fit
(shots alone over the limit) raises :class:`JobLimitError` before anything is submitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from quicq.circuits.ir import Circuit
from quicq.hardware.backends import DEFAULT_SHOTS, Backend, as_angle_batch, check_shots
from quicq.hardware.limits import IBM_SAMPLER_LIMITS, JobLimitError, JobLimits
from quicq.hardware.outcome import Outcome
from quicq.hardware.tomography import Tomography, TomographyResult, mitigation_report, readout_mitigator

__all__ = ["IBM_SAMPLER_LIMITS", "JobLimitError", "JobLimits", "JobReport", "limits_for", "run_plans",
           "sample_within_limits"]



def limits_for(backend: Backend) -> JobLimits:
    """The job limits of a backend: its ``job_limits`` (IBM Runtime's, also for its fake devices
    and when packed; none for simulators)."""
    limits = getattr(backend, "job_limits", None)
    return limits if isinstance(limits, JobLimits) else JobLimits()


@dataclass
class JobReport:
    """What one :func:`sample_within_limits` call submitted."""

    jobs: int = 0
    executions: int = 0  # executions as submitted (wide executions on a packed backend)


def _executions(backend: Backend, tasks: Sequence[tuple[Circuit, np.ndarray]]) -> int:
    count = getattr(backend, "executions", None)
    return int(count(tasks)) if callable(count) else sum(int(a.shape[0]) for _, a in tasks)


def _chunks(backend: Backend, tasks: list[tuple[Circuit, np.ndarray]], cap: int
            ) -> list[list[tuple[int, slice]]]:
    """Greedy split of (task, binding rows) into jobs of at most ``cap`` submitted executions."""
    jobs: list[list[tuple[int, slice]]] = [[]]

    def cost(parts: list[tuple[int, slice]]) -> int:
        return _executions(backend, [(tasks[t][0], tasks[t][1][s]) for t, s in parts])

    for t, (_, a) in enumerate(tasks):
        start, B = 0, a.shape[0]
        while start < B:
            cur = jobs[-1]
            lo, hi = 0, B - start  # largest n with cost(cur + rows[start:start+n]) <= cap
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if cost(cur + [(t, slice(start, start + mid))]) <= cap:
                    lo = mid
                else:
                    hi = mid - 1
            if lo == 0:
                if not cur:  # pragma: no cover - max_rows() guarantees one execution fits
                    raise JobLimitError("one execution does not fit a job")
                jobs.append([])
                continue
            cur.append((t, slice(start, start + lo)))
            start += lo
    return [j for j in jobs if j]


def sample_within_limits(backend: Backend, tasks: Sequence[tuple[Circuit, Any]], shots: Any = DEFAULT_SHOTS,
                         limits: JobLimits | None = None, report: JobReport | None = None) -> list[Outcome]:
    """``backend.sample(tasks, shots)`` as one job, or as the fewest jobs within ``limits``.

    Args:
        limits: default :func:`limits_for` the backend.
        report: filled with the number of jobs and executions submitted.
    """
    shots = backend.shots if shots is DEFAULT_SHOTS else shots
    shots = check_shots(shots, allow_exact=backend.supports_exact, where=f"{backend.name}: shots")
    checked = [(c, as_angle_batch(c, a, f"task {i}")) for i, (c, a) in enumerate(tasks)]
    limits = limits_for(backend) if limits is None else limits
    cap = limits.max_rows(shots) if shots is not None else None
    report = report if report is not None else JobReport()
    if not checked:
        return []
    if cap is None or _executions(backend, checked) <= cap:
        out = backend.sample(checked, shots)
        report.jobs += 1
        report.executions += _executions(backend, checked)
        return out
    pieces: list[list[Outcome]] = [[] for _ in checked]
    for job in _chunks(backend, checked, cap):
        sub = [(checked[t][0], checked[t][1][s]) for t, s in job]
        outs = backend.sample(sub, shots)
        report.jobs += 1
        report.executions += _executions(backend, sub)
        for (t, _), o in zip(job, outs):
            pieces[t].append(o)
    return [p[0] if len(p) == 1 else _join(p) for p in pieces]


def _join(parts: list[Outcome]) -> Outcome:
    """Outcomes of consecutive binding rows of one circuit → one Outcome."""
    first = parts[0]
    if first.exact:
        return Outcome(first.n_qubits, None, probs=np.concatenate([p.probs for p in parts]))
    return Outcome(first.n_qubits, first.shots, indices=np.concatenate([p.indices for p in parts]))


def run_plans(backend: Backend, requests: Sequence[tuple[Tomography, Any]], shots: Any = DEFAULT_SHOTS, *,
              limits: JobLimits | None = None, report: JobReport | None = None) -> list[TomographyResult]:
    """Estimate several plans, each at its own (B, n_params) bindings, in one backend call.

    Every circuit of every plan at its bindings goes into one task list, sampled by
    :func:`sample_within_limits` (one job unless the limits force more); each plan reduces its
    own outcomes (readout-corrected first when the plan asks for ``readout="m3"``, as
    ``plan.run`` does). Results hold (B, rows, cols) blocks, as ``plan.run`` with 2-D angles.
    """
    shots_used = backend.shots if shots is DEFAULT_SHOTS else shots
    tasks: list[tuple[Circuit, np.ndarray]] = []
    spans, flats = [], []
    for plan, angles in requests:
        th = angles.detach().cpu().numpy() if hasattr(angles, "detach") else angles
        flat = as_angle_batch(plan.circuit, np.asarray(th, dtype=np.float64), f"{plan.method} angles")
        flats.append(flat)
        start = len(tasks)
        tasks.extend(plan.tasks(flat))
        spans.append((start, len(tasks)))
    # readout mitigation: every plan asking for it is checked (and refused) before any job
    mitigators = [readout_mitigator(plan, backend, shots_used) for plan, _ in requests]
    outcomes = sample_within_limits(backend, tasks, shots_used, limits, report)
    results = []
    for (plan, _), flat, (a, b), mit in zip(requests, flats, spans, mitigators):
        outs = outcomes[a:b] if mit is None else [mit.correct(o) for o in outcomes[a:b]]
        red = plan.reduce(outs, flat, shots_used)
        results.append(TomographyResult(
            blocks=red["blocks"], stderr=red["stderr"], raw=red["raw"], kept_fraction=red["kept"],
            n_circuits=len(plan.circuits), circuit_labels=plan.labels, shots=shots_used,
            backend=backend.name, method=plan.method, details=dict(red.get("details", {})),
            mitigation=mitigation_report(plan, backend, mit)))
    return results
