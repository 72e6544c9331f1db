"""Cost planner: what running an adapter on a backend will cost, before anything is submitted.

For one QuIC adapter (a model with quicq layers, or a bare layout circuit) and one backend, the
planner reports

* **circuits and shots per forward** — one block estimate per adapted layer. The tomography
  scheme of docs/design.md#tomography for Hamming-weight-preserving circuits uses n *signed* circuits (H on
  qubit j, the circuit, H on every qubit: ⟨X_i⟩ = U_ij) and, optionally, n *magnitude* circuits
  (X on qubit j, measure Z: P(e_i) = U_ij²); weight-k blocks are derived as compounds, so they
  add no circuit. Every circuit runs once per angle binding: N' bindings per layer (the
  layer's N blocks, or 1 with ``block_share``).
* **estimates per training step** — forward 1, plus the backward pass: parameter shift 2 per
  angle slot (slot j is shifted in all N' blocks of a layer at once: the blocks are independent),
  SPSA 2, exact surrogate 0 (its backward runs on the engine). Backward estimates use the
  tomography plan's *gradient plan* (:meth:`~quicq.hardware.tomography.BlockTomography.gradient_plan`:
  the n signed circuits only, the unbiased estimator), exactly as :mod:`quicq.hardware.hybrid` does.
* **two-qubit gate count and depth after transpiling** for the device, per distinct tomography
  circuit. A quicq Aer / IBM Runtime backend transpiles through its own compile cache (so the
  counts are those of the circuits it would run); a bare Qiskit backend with Qiskit's
  ``generate_preset_pass_manager`` (level 1, seed 1234, the backends' defaults). Angles stay
  symbolic, so the counts hold for every angle.
* **estimated QPU time**, from this model (every number but the device's own durations is an
  assumption you can change; nothing is measured on a device)::

      t_circuit  = critical path of the transpiled circuit, gate and measurement durations
                   from the backend Target (rz is virtual: 0 s)
      t_shot     = t_circuit + rep_delay            (device default_rep_delay, else 250 µs)
      t_run(plan) = Σ_circuits bindings · (circuit_overhead + shots · t_shot)   (one estimate)
      t_forward   = job_overhead + t_run(forward plan)            (one job per unit)
      t_step      = t_forward + job_overhead + backward · t_run(gradient plan)
                    (the hybrid bridge sends every shifted / perturbed estimate of a backward
                    pass as ONE job; a surrogate step has no quantum backward)

  ``job_overhead`` (default 2 s) stands for the fixed cost IBM Quantum charges a primitive job
  (loading, compilation on the control system); ``circuit_overhead`` (default 5 ms) for
  per-circuit set-up. Both are rough: compare plans with each other, and check a real job's
  ``usage_estimation`` before a long run.

Nothing is ever submitted: the planner only builds and transpiles circuits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from quicq._optional import require
from quicq.circuits.ir import Circuit, CircuitError, check_orders
from quicq.errors import QuicqError

__all__ = ["GRADIENTS", "CircuitCost", "CostPlan", "PlanError", "PlanUnit", "backward_estimates", "plan_cost",
           "plan_layout", "tomography_plan"]

#: Backward-pass estimates per step for each gradient method, as a function of the slot count P.
GRADIENTS: dict[str, str] = {
    "parameter_shift": "2 estimates per angle slot",
    "spsa": "2 estimates per step",
    "surrogate": "0 (forward on hardware, backward on the exact engine)",
}
DEFAULT_REP_DELAY_S = 250e-6
DEFAULT_JOB_OVERHEAD_S = 2.0
DEFAULT_CIRCUIT_OVERHEAD_S = 5e-3


class PlanError(QuicqError, ValueError):
    """A plan cannot be made (unknown backend, circuit too wide, unsupported circuit…)."""


def backward_estimates(gradient: str, n_params: int) -> int:
    """Block estimates of one backward pass for ``gradient`` on a circuit with ``n_params`` slots."""
    if gradient == "parameter_shift":
        return 2 * n_params
    if gradient == "spsa":
        return 2
    if gradient == "surrogate":
        return 0
    raise PlanError(f"unknown gradient {gradient!r}; choose one of {sorted(GRADIENTS)}")


def tomography_plan(circuit: Circuit, orders: Sequence[int] = (1,), *, magnitudes: bool = True,
                    method: str = "derived", columns: int | None = None) -> Any:
    """The tomography plan a block estimate of ``circuit`` runs (the same class the hybrid path uses).

    RBS/FBS circuits: :class:`~quicq.hardware.tomography.BlockTomography` (n signed circuits for
    the unary block, + n magnitude circuits with ``magnitudes``; ``method="direct"`` measures
    every weight-k block itself). Pauli circuits (Quantum-PEFT, ``columns`` = K):
    :class:`~quicq.hardware.pauli_tomography.PauliTomography`.
    """
    try:
        if circuit.hw_preserving:
            from quicq.hardware.tomography import BlockTomography

            return BlockTomography(circuit, orders, method=method, magnitudes=magnitudes)
        from quicq.hardware.pauli_tomography import PauliTomography

        return PauliTomography(circuit, columns if columns is not None else 1)
    except (CircuitError, ValueError) as exc:
        raise PlanError(str(exc)) from None


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


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------


@dataclass
class _Device:
    """What the planner needs from a backend: a name, how it transpiles, and (maybe) a Target."""

    name: str
    num_qubits: int | None
    target: Any  # qiskit Target with durations, or None for an ideal simulator
    transpile: Callable[[Circuit], Any]  # IR circuit → the transpiled, measured QuantumCircuit
    rep_delay_s: float | None
    graph: Any = None  # undirected coupling graph (None: all-to-all)


def _preset(backend: Any, optimization_level: int, seed_transpiler: int) -> Callable[[Circuit], Any]:
    """IR circuit → transpiled with a preset pass manager for ``backend`` (a Qiskit backend)."""
    require("qiskit", "qiskit")
    from qiskit.transpiler import generate_preset_pass_manager

    from quicq.circuits.qiskit_io import to_qiskit

    pm = generate_preset_pass_manager(backend=backend, optimization_level=optimization_level,
                                      seed_transpiler=seed_transpiler)

    def run(c: Circuit) -> Any:
        qc = to_qiskit(c)  # symbolic angles: the counts hold for every angle
        qc.measure_all()
        return pm.run(qc)

    return run


def _with_durations(target: Any) -> Any:
    """``target`` if it knows gate durations (a device model), else None (an ideal simulator)."""
    if target is None:
        return None
    for name in ("cx", "ecr", "cz", "sx"):
        if name in target.operation_names:
            props = next(iter(target[name].values()), None)
            if props is not None and props.duration:
                return target
    return None


def _resolve_device(backend: Any, *, shots: int, optimization_level: int, seed_transpiler: int) -> _Device:
    """A device description from a spec string, a quicq backend or a Qiskit backend.

    Spec strings are built with :func:`quicq.hardware.train.backend_from_spec` (``aer``,
    ``aer-noisy:<fake>``, ``fake:<fake>``, ``ibm:<device>`` — credentials needed, nothing is
    submitted — ``exact``, ``pennylane:<device>``); a bare fake name such as ``fake_manila`` means
    ``fake:fake_manila``. A quicq Aer or IBM backend transpiles through its own compile cache,
    so the planner counts exactly the circuits it would run. Backends without a transpiler
    (exact engine, PennyLane) are planned as ideal Aer.
    """
    if isinstance(backend, str):
        from quicq.hardware.train import backend_from_spec, backend_kind_ok

        spec = backend.strip()
        if spec.lower().startswith("fake") and ":" not in spec:
            spec = f"fake:{spec}"
        try:
            backend_kind_ok(spec)
        except ValueError as exc:
            raise PlanError(f"unknown backend {backend!r}: {exc}") from None
        try:
            backend = backend_from_spec(spec, shots=shots)
        except (ValueError, TypeError) as exc:
            raise PlanError(f"backend {backend!r}: {exc}") from None
    cache = getattr(backend, "transpile_cache", None)
    if cache is not None:  # a quicq Aer / IBM Runtime backend
        device = getattr(backend, "device", None)
        sim = getattr(backend, "simulator", None)
        target = _with_durations(device.target if device is not None else getattr(sim, "target", None))
        rep = getattr(device, "default_rep_delay", None) if device is not None else None
        return _Device(str(backend.name), getattr(backend, "max_qubits", None), target,
                       lambda c: cache.get(c, "measure").circuit,
                       (float(rep) if rep is not None else DEFAULT_REP_DELAY_S) if target is not None else None,
                       _graph(device if device is not None else getattr(sim, "target", None)))
    if hasattr(backend, "target") and hasattr(backend, "num_qubits"):  # a Qiskit BackendV2
        rep = getattr(backend, "default_rep_delay", None)
        target = _with_durations(backend.target)
        return _Device(str(backend.name), int(backend.num_qubits), target,
                       _preset(backend, optimization_level, seed_transpiler),
                       (float(rep) if rep is not None else DEFAULT_REP_DELAY_S) if target is not None else None,
                       _graph(backend))
    require("qiskit_aer", "qiskit")
    from qiskit_aer import AerSimulator  # exact engine, PennyLane: plan for ideal Aer's gate set

    return _Device(str(getattr(backend, "name", "simulator")), getattr(backend, "max_qubits", None), None,
                   _preset(AerSimulator(), optimization_level, seed_transpiler), None)


def _graph(device: Any) -> Any:
    """The device's undirected coupling graph, or None (no device / all-to-all)."""
    if device is None:
        return None
    from quicq.hardware.packing import device_graph

    return device_graph(device)


def _duration(qc: Any, target: Any) -> float:
    """Critical-path duration (s) of a transpiled circuit from the Target's instruction durations."""
    free: dict[int, float] = {}
    for inst in qc.data:
        name = inst.operation.name
        qubits = [qc.find_bit(q).index for q in inst.qubits]
        start = max((free.get(q, 0.0) for q in qubits), default=0.0)
        dur = 0.0
        if name != "barrier" and name in target.operation_names:
            props = target[name].get(tuple(qubits)) if target[name] else None
            if props is not None and props.duration is not None:
                dur = float(props.duration)
        for q in qubits:  # a barrier aligns its qubits at the latest of them
            free[q] = start + dur
    return max(free.values(), default=0.0)


def _two_qubit_count(qc: Any) -> int:
    return sum(1 for inst in qc.data if inst.operation.num_qubits == 2 and inst.operation.name != "barrier")


def _logical_2q(c: Circuit) -> int:
    return sum(1 for g in c.gates if len(g.qubits) >= 2)


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def _units_of(adapter: Any, orders: Sequence[int]) -> list[tuple[str, Circuit, int, Sequence[int], int | None]]:
    """(name, circuit, bindings, orders, columns) per estimated circuit of ``adapter``."""
    if isinstance(adapter, Circuit):
        return [(str(adapter.meta.get("layout", "circuit")), adapter, 1, orders, None)]
    from quicq.adapters.layer import QuantumPEFTLayer, QuICLayer

    layers = adapter.quicq_layers() if hasattr(adapter, "quicq_layers") else dict(adapter)
    out: list[tuple[str, Circuit, int, Sequence[int], int | None]] = []
    for name, layer in layers.items():
        for a in layer.adapter_names():
            tag = name if a == "default" else f"{name}[{a}]"
            if isinstance(layer, QuICLayer):
                spec = layer.quic_spec[a]
                out.append((tag, layer.circuit(a), spec.n_shared, spec.orders, None))
            elif isinstance(layer, QuantumPEFTLayer):
                rank = layer.qpeft_spec[a].rank if hasattr(layer, "qpeft_spec") else None
                for which in ("u", "v"):
                    out.append((f"{tag}.{which.upper()}", layer.circuit(a, which), 1, (1,), rank))
            else:  # pragma: no cover - quicq_layers only returns these two kinds
                raise PlanError(f"module {name!r}: unknown adapter layer {type(layer).__name__}")
    if not out:
        raise PlanError("the model has no quicq adapter layer to plan for")
    return out


def plan_layout(layout: str, n: int, *, orders: Sequence[int] = (1,), n_blocks: int = 1, n_layers: int = 2,
                backend: Any = "aer", **kwargs: Any) -> CostPlan:
    """Plan for a bare layout circuit (``pyramid``, ``x``, ``butterfly``, ``brick``) on n qubits,
    estimated at ``n_blocks`` angle bindings (the blocks of one layer)."""
    from quicq.circuits.layouts import build_layout

    extra = {"n_layers": n_layers} if layout == "brick" else {}
    try:
        c = build_layout(layout, n, **extra)
        ks = check_orders(n, orders)
    except CircuitError as exc:
        raise PlanError(str(exc)) from None
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or n_blocks < 1:
        raise PlanError(f"n_blocks must be an int ≥ 1, got {n_blocks!r}")
    return plan_cost(c, backend, orders=ks, bindings=n_blocks, **kwargs)


def plan_cost(adapter: Any, backend: Any = "aer", *, shots: int = 4096, gradient: str = "parameter_shift",
              magnitudes: bool = True, method: str = "derived", orders: Sequence[int] = (1,), bindings: int = 1,
              optimization_level: int = 1, seed_transpiler: int = 1234,
              job_overhead_s: float = DEFAULT_JOB_OVERHEAD_S,
              circuit_overhead_s: float = DEFAULT_CIRCUIT_OVERHEAD_S, progress: bool = False,
              pack: bool = False, spacing: int = 0, max_slots: int | None = None) -> CostPlan:
    """Plan the cost of running ``adapter``'s block estimates on ``backend`` (nothing is submitted).

    Args:
        adapter: a :class:`~quicq.adapters.QuicqModel` (every QuIC and Quantum-PEFT layer is
            planned), a dict name → adapter layer, or a bare :class:`~quicq.circuits.Circuit`.
        backend: a spec string (``"aer"``, ``"fake:fake_manila"``, ``"fake_sherbrooke"``,
            ``"aer-noisy:fake_manila"``, ``"ibm:<device>"``) or a quicq / Qiskit backend object.
        shots: shots per circuit execution (> 0).
        gradient: ``"parameter_shift"``, ``"spsa"`` or ``"surrogate"``.
        magnitudes: measure Z-basis magnitudes too (2n circuits instead of n).
        method: ``"derived"`` or ``"direct"`` weight-k blocks (see BlockTomography).
        orders, bindings: for a bare circuit: the orders estimated and angle bindings per estimate.
        optimization_level, seed_transpiler: transpiler settings (the backends' defaults).
        job_overhead_s, circuit_overhead_s: the time model's fixed costs (module docstring).
        progress: show a tqdm bar over the circuits being transpiled.
        pack, spacing, max_slots: also plan the model bridge's packed jobs (every unit's circuits
            side by side on disjoint qubit chains, :mod:`quicq.hardware.packing`): ``packing`` in
            the result, packed vs unpacked executions and QPU time in the table. A packed
            execution lasts as long as the longest circuit of the plan.

    Raises:
        PlanError: invalid shots/gradient, unknown backend, a circuit wider than the device, or
            a circuit no tomography plan covers.
    """
    if isinstance(shots, bool) or not isinstance(shots, int) or shots <= 0:
        raise PlanError(f"shots must be a positive int, got {shots!r}")
    backward_estimates(gradient, 1)  # validates the name
    raw_units = _units_of(adapter, orders)
    if isinstance(adapter, Circuit):
        raw_units = [(raw_units[0][0], adapter, bindings, orders, None)]
    device = _resolve_device(backend, shots=shots, optimization_level=optimization_level,
                             seed_transpiler=seed_transpiler)
    widest = max(c.n_qubits for _, c, _, _, _ in raw_units)
    if device.num_qubits is not None and widest > device.num_qubits:
        raise PlanError(
            f"backend {device.name} has {device.num_qubits} qubits but the adapter's circuits need {widest}; "
            "choose a larger device (e.g. fake:fake_sherbrooke, 127 qubits) or a smaller block_size"
        )
    if pack:  # fail before transpiling anything
        from quicq.hardware.chains import find_chains

        if not find_chains(device.graph, widest, count=1, spacing=spacing, n_qubits=device.num_qubits):
            raise PlanError(f"{device.name}: no connected chain of {widest} qubits (spacing={spacing}) to pack "
                            "the adapter's circuits on; use a larger device or smaller blocks")
    from tqdm.auto import tqdm

    plans = [tomography_plan(c, ks, magnitudes=magnitudes, method=method, columns=cols)
             for _, c, _, ks, cols in raw_units]
    # backward estimates use the plan's gradient plan (block tomography: signed circuits only)
    grad_plans = [tp.gradient_plan() for tp in plans]
    todo: dict[Circuit, str] = {}
    for tp in plans + grad_plans:
        todo.update({tc: label for tc, label in zip(tp.circuits, tp.labels) if tc not in todo})
    cache: dict[Circuit, CircuitCost] = {}  # transpile each distinct circuit once
    for tc, label in tqdm(todo.items(), desc="transpiling", disable=not progress, leave=False):
        tq = device.transpile(tc)
        dur = _duration(tq, device.target) if device.target is not None else None
        cache[tc] = CircuitCost(label, _two_qubit_count(tq), int(tq.depth()), dur)
    rep = device.rep_delay_s or 0.0

    def run_seconds(circuits: Sequence[Circuit], bindings: int) -> float | None:
        costs = [cache[tc] for tc in circuits]
        if any(x.duration_s is None for x in costs):
            return None
        return sum(bindings * (circuit_overhead_s + shots * (x.duration_s + rep)) for x in costs)  # type: ignore[operator]

    units = []
    for (name, c, b, ks, cols), tp, gp in zip(raw_units, plans, grad_plans):
        back = backward_estimates(gradient, c.n_params)
        fwd_run, back_run = run_seconds(tp.circuits, b), run_seconds(gp.circuits, b)
        fwd_s = step_s = None
        if fwd_run is not None and back_run is not None:
            fwd_s = job_overhead_s + fwd_run
            step_s = fwd_s + (job_overhead_s + back * back_run if back else 0.0)
        what = f"K={cols} columns" if cols is not None else "orders {" + ",".join(map(str, ks)) + "}"
        units.append(PlanUnit(name, c.n_qubits, c.n_params, b, what, _logical_2q(c), len(tp.circuits),
                              len(gp.circuits), tuple(cache[tc] for tc in tp.circuits), 1 + back, fwd_s, step_s))
    fwd = sum(u.executions for u in units)
    step = sum(u.executions + (u.estimates_per_step - 1) * u.gradient_circuits * u.bindings for u in units)
    known = all(u.seconds_per_estimate is not None for u in units)
    all_costs = [x for u in units for x in u.transpiled]
    durations = [x.duration_s for x in all_costs if x.duration_s is not None]
    packing = None
    if pack:
        packing = _packing(device, units, raw_units, grad_plans, gradient, shots, rep, job_overhead_s,
                           circuit_overhead_s, spacing, max_slots)
    return CostPlan(
        backend=device.name, backend_qubits=device.num_qubits, units=tuple(units), gradient=gradient,
        shots=shots, magnitudes=magnitudes, method=method,
        circuits_per_forward=fwd, shots_per_forward=fwd * shots, jobs_per_forward=len(units),
        circuits_per_step=step, shots_per_step=step * shots,
        jobs_per_step=sum(u.jobs_per_step for u in units),
        two_qubit_gates_max=max(x.two_qubit_gates for x in all_costs),
        depth_max=max(x.depth for x in all_costs),
        circuit_duration_s=max(durations) if durations and len(durations) == len(all_costs) else None,
        rep_delay_s=device.rep_delay_s,
        qpu_seconds_per_forward=float(sum(u.seconds_per_estimate for u in units)) if known else None,  # type: ignore[misc]
        qpu_seconds_per_step=float(sum(u.seconds_per_step for u in units)) if known else None,  # type: ignore[misc]
        job_overhead_s=job_overhead_s, circuit_overhead_s=circuit_overhead_s, packing=packing,
    )


def _packing(device: _Device, units: Sequence[PlanUnit], raw_units: Sequence[tuple], grad_plans: Sequence[Any],
             gradient: str, shots: int, rep: float, job_overhead_s: float, circuit_overhead_s: float,
             spacing: int, max_slots: int | None) -> Any:
    """The packed model-bridge plan: one forward job and one backward job for all units."""
    from quicq.hardware.packing import PackingError, plan_packing

    forward = [u.bindings for u in units for _ in range(u.circuits)]
    backward = []
    for u, gp in zip(units, grad_plans):
        rows = (u.estimates_per_step - 1) * u.bindings  # shifted / perturbed bindings of the unit
        backward += [rows] * len(gp.circuits) if rows else []
    from quicq.hardware.jobs import IBM_SAMPLER_LIMITS

    limit = IBM_SAMPLER_LIMITS.max_executions if device.name.startswith("ibm[") else None
    durations = [c.duration_s for u in units for c in u.transpiled]
    per_exec = None
    if durations and all(d is not None for d in durations):
        per_exec = circuit_overhead_s + shots * (max(durations) + rep)
    try:
        return plan_packing(device.graph, device.num_qubits, max(u.n_qubits for u in units), forward, backward,
                            spacing=spacing, max_slots=max_slots, seconds_per_execution=per_exec,
                            job_overhead_s=job_overhead_s, shots=shots, max_shots_per_job=limit)
    except PackingError as exc:
        raise PlanError(f"{device.name}: {exc}") from None
