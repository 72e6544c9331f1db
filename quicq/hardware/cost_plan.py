"""The cost planner's answer: :class:`CostPlan` (totals and a table), per unit and per circuit.

Plain frozen dataclasses, built by :func:`quicq.hardware.planner.plan_cost`; the time model they
report is described there.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from quicq.errors import QuicqError

__all__ = ["CircuitCost", "CostPlan", "PlanError", "PlanUnit"]


class PlanError(QuicqError, ValueError):
    """A plan cannot be made (unknown backend, circuit too wide, unsupported circuit…)."""


@dataclass(frozen=True)
class CircuitCost:
    """One transpiled tomography circuit: two-qubit gates, depth and duration (if known)."""

    label: str
    two_qubit_gates: int
    depth: int
    duration_s: float | None


@dataclass(frozen=True)
class PlanUnit:
    """One circuit whose blocks are estimated: a QuIC layer, or U / V of a Quantum-PEFT layer.

    ``bindings`` angle sets go through every tomography circuit (N' blocks of a QuIC layer);
    ``circuits`` is the tomography plan's circuit count, ``gradient_circuits`` that of the plan the
    hybrid bridge uses for shifted estimates (signed circuits only); ``transpiled`` the costs of the
    forward plan's circuits;
    ``seconds_per_estimate`` is t_forward and ``seconds_per_step`` t_step of the time model.
    """

    name: str
    n_qubits: int
    n_params: int
    bindings: int
    what: str  # "orders {1,2}" or "K=4 columns"
    logical_two_qubit_gates: int
    circuits: int
    gradient_circuits: int  # circuits of one backward-pass estimate (the gradient plan)
    transpiled: tuple[CircuitCost, ...]
    estimates_per_step: int
    seconds_per_estimate: float | None
    seconds_per_step: float | None

    @property
    def jobs_per_step(self) -> int:
        """Jobs of one training step: the forward estimate, plus one for a quantum backward pass."""
        return 1 + (self.estimates_per_step > 1)

    @property
    def executions(self) -> int:
        """Circuit executions of one estimate (circuits × bindings)."""
        return self.circuits * self.bindings


@dataclass(frozen=True)
class CostPlan:
    """Everything the planner found; see the module docstring for the time model.

    Per forward every unit runs one estimate (one job); per step every unit runs
    ``1 + backward`` estimates in 1 or 2 jobs. Totals are summed over units.
    """

    backend: str
    backend_qubits: int | None
    units: tuple[PlanUnit, ...]
    gradient: str
    shots: int
    magnitudes: bool
    method: str
    circuits_per_forward: int  # circuit executions (circuits × bindings), all units
    shots_per_forward: int
    jobs_per_forward: int
    circuits_per_step: int
    shots_per_step: int
    jobs_per_step: int
    two_qubit_gates_max: int
    depth_max: int
    circuit_duration_s: float | None  # longest circuit (None: the backend has no durations)
    rep_delay_s: float | None
    qpu_seconds_per_forward: float | None
    qpu_seconds_per_step: float | None
    job_overhead_s: float
    circuit_overhead_s: float
    packing: Any = None  # a quicq.hardware.packing.PackingPlan with pack=True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return json.loads(json.dumps(asdict(self)))

    def table(self) -> str:
        """The plan as a plain-text table: one row per unit, then the totals."""
        def secs(v: float | None) -> str:
            if v is None:
                return "n/a (simulator: no gate durations)"
            return f"{v:.3g} s" + (f" = {v / 3600:.2f} h" if v >= 3600 else f" = {v / 60:.1f} min" if v >= 60 else "")

        head = ("unit", "qubits", "angles", "blocks", "estimates", "circuits fwd/grad", "2q logical→device",
                "depth", "duration µs", "est./step")
        rows = [head]
        for u in self.units:
            dur = [c.duration_s for c in u.transpiled if c.duration_s is not None]
            rows.append((u.name, str(u.n_qubits), str(u.n_params), str(u.bindings), u.what,
                         f"{u.circuits}/{u.gradient_circuits}",
                         f"{u.logical_two_qubit_gates}→{max(c.two_qubit_gates for c in u.transpiled)}",
                         str(max(c.depth for c in u.transpiled)),
                         f"{max(dur) * 1e6:.2f}" if dur else "n/a", str(u.estimates_per_step)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines = [fmt.format(*r) for r in rows]
        rule = "-" * max(len(x) for x in lines)
        scheme = "n signed + n magnitude circuits" if self.magnitudes else "n signed circuits"
        if self.method == "direct":
            scheme = "direct weight-k blocks" + (" with magnitudes" if self.magnitudes else "")
        if all(u.what.startswith("K=") for u in self.units):
            scheme = "Pauli column tomography (magnitudes, row and column signs)"
        title = (f"cost plan on {self.backend}" + (f" ({self.backend_qubits} qubits)" if self.backend_qubits else "")
                 + f", {self.shots:,} shots per circuit, gradient {self.gradient}, {scheme}")
        out = [title, rule, lines[0], rule,
               *lines[1:], rule,
               (f"forward : {self.circuits_per_forward:,} circuit executions, {self.shots_per_forward:,} shots, "
                f"{self.jobs_per_forward} job(s); est. QPU time {secs(self.qpu_seconds_per_forward)}"),
               (f"step    : {self.circuits_per_step:,} circuit executions, {self.shots_per_step:,} shots, "
                f"{self.jobs_per_step} job(s); est. QPU time {secs(self.qpu_seconds_per_step)}")]
        if self.packing is not None:
            pk = self.packing
            out += [rule,
                    (f"model bridge, packed {pk.slots} × {pk.width} qubits on disjoint chains"
                     f"{' (spacing 1)' if pk.spacing else ''}; crosstalk between chains is not modelled:"),
                    (f"  forward: {pk.unpacked_executions_per_forward:,} → {pk.executions_per_forward:,} executions "
                     f"({pk.reduction_forward:.1f}× fewer), {pk.jobs_per_forward} job(s); est. QPU time "
                     f"{secs(pk.qpu_seconds_per_forward)}"),
                    (f"  step   : {pk.unpacked_executions_per_step:,} → {pk.executions_per_step:,} executions "
                     f"({pk.reduction_step:.1f}× fewer), {pk.jobs_per_step} job(s); est. QPU time "
                     f"{secs(pk.qpu_seconds_per_step)}")]
        if self.qpu_seconds_per_step is not None:
            out.append(f"time model: {self.job_overhead_s:g} s per job + {self.circuit_overhead_s * 1e3:g} ms per "
                       f"circuit execution + shots × (circuit duration + rep_delay {1e6 * (self.rep_delay_s or 0):.0f} µs);"
                       " a backward pass is one job. Nothing was submitted.")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()
