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

from collections.abc import Sequence
from typing import Any

from quicq.circuits.ir import Circuit, CircuitError, check_orders

# The plan's data types and the device description live in their own modules; they are
# re-exported here, where they were first defined, so existing imports keep working.
from quicq.hardware.cost_plan import CircuitCost, CostPlan, PlanError, PlanUnit
from quicq.hardware.plan_device import (
    DEFAULT_REP_DELAY_S,
    PlanDevice,
    critical_path_s,
    resolve_device,
    two_qubit_count,
)

__all__ = ["DEFAULT_CIRCUIT_OVERHEAD_S", "DEFAULT_JOB_OVERHEAD_S", "DEFAULT_REP_DELAY_S", "GRADIENTS", "CircuitCost",
           "CostPlan", "PlanError", "PlanUnit", "backward_estimates", "plan_cost", "plan_layout", "tomography_plan"]

#: Backward-pass estimates per step for each gradient method, as a function of the slot count P.
GRADIENTS: dict[str, str] = {
    "parameter_shift": "2 estimates per angle slot",
    "spsa": "2 estimates per step",
    "surrogate": "0 (forward on hardware, backward on the exact engine)",
}
DEFAULT_JOB_OVERHEAD_S = 2.0
DEFAULT_CIRCUIT_OVERHEAD_S = 5e-3


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


def _logical_2q(c: Circuit) -> int:
    return sum(1 for g in c.gates if len(g.qubits) >= 2)


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
    device = resolve_device(backend, shots=shots, optimization_level=optimization_level,
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
        dur = critical_path_s(tq, device.target) if device.target is not None else None
        cache[tc] = CircuitCost(label, two_qubit_count(tq), int(tq.depth()), dur)
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


def _packing(device: PlanDevice, units: Sequence[PlanUnit], raw_units: Sequence[tuple], grad_plans: Sequence[Any],
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
