"""What the cost planner needs to know about a backend: how it transpiles, its durations, its graph.

:func:`resolve_device` turns a backend spec string, a quicq backend or a Qiskit backend into a
:class:`PlanDevice`; :func:`critical_path_s` and :func:`two_qubit_count` measure a transpiled
circuit against it. Nothing here submits anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quicq._optional import require
from quicq.circuits.ir import Circuit
from quicq.hardware.cost_plan import PlanError

__all__ = ["DEFAULT_REP_DELAY_S", "PlanDevice", "coupling_graph", "critical_path_s", "preset_transpiler",
           "resolve_device", "two_qubit_count", "with_durations"]

#: Delay between shots assumed when a device does not report ``default_rep_delay``.
DEFAULT_REP_DELAY_S = 250e-6


@dataclass
class PlanDevice:
    """What the planner needs from a backend: a name, how it transpiles, and (maybe) a Target."""

    name: str
    num_qubits: int | None
    target: Any  # qiskit Target with durations, or None for an ideal simulator
    transpile: Callable[[Circuit], Any]  # IR circuit → the transpiled, measured QuantumCircuit
    rep_delay_s: float | None
    graph: Any = None  # undirected coupling graph (None: all-to-all)


def preset_transpiler(backend: Any, optimization_level: int, seed_transpiler: int) -> Callable[[Circuit], Any]:
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


def with_durations(target: Any) -> Any:
    """``target`` if it knows gate durations (a device model), else None (an ideal simulator)."""
    if target is None:
        return None
    for name in ("cx", "ecr", "cz", "sx"):
        if name in target.operation_names:
            props = next(iter(target[name].values()), None)
            if props is not None and props.duration:
                return target
    return None


def resolve_device(backend: Any, *, shots: int, optimization_level: int, seed_transpiler: int) -> PlanDevice:
    """A device description from a spec string, a quicq backend or a Qiskit backend.

    Spec strings are built with :func:`quicq.hardware.spec.backend_from_spec` (``aer``,
    ``aer-noisy:<fake>``, ``fake:<fake>``, ``ibm:<device>`` — credentials needed, nothing is
    submitted — ``exact``, ``pennylane:<device>``); a bare fake name such as ``fake_manila`` means
    ``fake:fake_manila``. A quicq Aer or IBM backend transpiles through its own compile cache,
    so the planner counts exactly the circuits it would run. Backends without a transpiler
    (exact engine, PennyLane) are planned as ideal Aer.
    """
    if isinstance(backend, str):
        from quicq.hardware.spec import backend_from_spec, backend_kind_ok

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
    if _is_qiskit_backend(backend):  # a quicq Aer / IBM Runtime backend: its own compile cache
        cache = backend.transpile_cache
        device = backend.device
        target = with_durations(device.target if device is not None else backend.transpile_backend.target)
        rep = getattr(device, "default_rep_delay", None) if device is not None else None
        return PlanDevice(str(backend.name), backend.max_qubits, target,
                          lambda c: cache.get(c, "measure").circuit,
                          (float(rep) if rep is not None else DEFAULT_REP_DELAY_S) if target is not None else None,
                          coupling_graph(device if device is not None else backend.transpile_backend.target))
    if hasattr(backend, "target") and hasattr(backend, "num_qubits"):  # a Qiskit BackendV2
        rep = getattr(backend, "default_rep_delay", None)
        target = with_durations(backend.target)
        return PlanDevice(str(backend.name), int(backend.num_qubits), target,
                          preset_transpiler(backend, optimization_level, seed_transpiler),
                          (float(rep) if rep is not None else DEFAULT_REP_DELAY_S) if target is not None else None,
                          coupling_graph(backend))
    require("qiskit_aer", "qiskit")
    from qiskit_aer import AerSimulator  # exact engine, PennyLane: plan for ideal Aer's gate set

    return PlanDevice(str(getattr(backend, "name", "simulator")), getattr(backend, "max_qubits", None), None,
                      preset_transpiler(AerSimulator(), optimization_level, seed_transpiler), None)


def _is_qiskit_backend(backend: Any) -> bool:
    """True for a quicq Qiskit backend; none can exist unless its module was imported (no import here)."""
    import sys

    mod = sys.modules.get("quicq.hardware.qiskit_backend")
    return mod is not None and isinstance(backend, mod.QiskitBackend)


def coupling_graph(device: Any) -> Any:
    """The device's undirected coupling graph, or None (no device / all-to-all)."""
    if device is None:
        return None
    from quicq.hardware.packing import device_graph

    return device_graph(device)


def critical_path_s(qc: Any, target: Any) -> float:
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


def two_qubit_count(qc: Any) -> int:
    """Two-qubit gates of a transpiled circuit (barriers excluded)."""
    return sum(1 for inst in qc.data if inst.operation.num_qubits == 2 and inst.operation.name != "barrier")
