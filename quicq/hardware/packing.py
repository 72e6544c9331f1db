"""Packing: many small block circuits side by side on one wide device, measured once.

An 8-qubit block circuit uses 8 of a 127/133-qubit device. :class:`PackedBackend` places up to
m independent circuit executions (a circuit at one angle binding each) on m *disjoint connected
qubit chains* of the device, runs them as one wide circuit, measures every qubit once and splits
the bits back per circuit. Every placed execution gets the full shot count, so a task list of E
executions costs ⌈E/m⌉ wide executions instead of E.

* **Chains** (:func:`~quicq.hardware.chains.find_chains`) are simple paths in the coupling map, found greedily with
  a Warnsdorff rule (extend a path to the neighbour with the fewest free neighbours, start at
  the free qubit of lowest degree) and bounded backtracking; consecutive chain qubits are
  coupled, so the nearest-neighbour layouts (pyramid, X, brick, Pauli) need **no SWAPs** — the
  circuit is transpiled with the chain as its ``initial_layout``. ``spacing=1`` leaves the
  neighbours of every chain unused (fewer chains, less crosstalk between them).
* **Scheduling**: bindings of the same circuit fill whole packs first (one wide structure per
  circuit, transpiled once and rebound afterwards); the remainders share mixed packs.
* **Crosstalk is real on devices and absent from Aer's noise models**: on Aer a packed
  estimate has exactly the noise of its chain's qubits, on a QPU neighbouring chains disturb
  each other (spectator errors, measurement crosstalk). Check packed against unpacked estimates
  on the device before relying on packing; ``spacing=1`` trades chains for isolation.
* Wide packs on Aer need ``method="matrix_product_state"``: the blocks are unentangled with
  each other, which MPS simulates cheaply (statevector cannot hold 100+ qubits). On a
  simulator packing costs *more* time, not less (a 3 × 4-qubit noisy pack on FakeGuadalupe
  runs shot-by-shot trajectories over the joint 12-qubit register: minutes instead of
  seconds); the saving is in device executions.

Packing is a :class:`~quicq.hardware.backends.Backend` wrapper, so tomography plans, the hybrid
bridge and the model bridge use it unchanged: ``PackedBackend(AerBackend(noise=...))``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from quicq._optional import require
from quicq.circuits.bitorder import bits_to_index
from quicq.circuits.ir import Circuit
from quicq.hardware._qiskit import unpacked_clbits
from quicq.hardware.backends import Backend, Task
from quicq.hardware.chains import (
    PackingError,
    PackingPlan,
    _schedule,
    device_graph,
    find_chains,
    pack_count,
    plan_packing,
)
from quicq.hardware.outcome import Outcome
from quicq.hardware.qiskit_backend import QiskitBackend

logger = logging.getLogger(__name__)

__all__ = ["PackedBackend", "PackingError", "PackingLayout", "PackingPlan", "device_graph", "find_chains", "pack_count",
           "plan_packing"]


# ---------------------------------------------------------------------------------------------
# The backend wrapper
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackingLayout:
    """Chains chosen for one circuit width: ``chains[j]`` holds slot j's physical qubits."""

    width: int
    chains: tuple[tuple[int, ...], ...]

    @property
    def slots(self) -> int:
        """Circuits run side by side per wide execution."""
        return len(self.chains)


class PackedBackend(Backend):
    """Runs the executions of a ``sample`` call packed onto disjoint qubit chains of one device.

    Args:
        backend: a quicq :class:`~quicq.hardware.aer.AerBackend` or
            :class:`~quicq.hardware.ibm.IBMRuntimeBackend` (its device's coupling map, basis and
            noise are used; an ideal Aer simulator is all-to-all).
        max_slots: at most this many circuits per wide execution (default: as many chains as fit).
        spacing: 0 (chains may touch) or 1 (a free qubit ring around each chain, less crosstalk).
        exclude: physical qubits never to use.
        device: a Qiskit backend whose coupling map and basis to pack for instead of the wrapped
            backend's own (e.g. an ideal ``matrix_product_state`` Aer simulation of a device's
            layout: the circuits are transpiled for ``device`` and run on the wrapped backend).
        seed: seeds the per-call simulator seeds (Aer, fake devices).
        optimization_level, seed_transpiler: transpiler settings (the layout is always the chain).
        shots, retries, retry_delay, timeout: default the wrapped backend's.

    Crosstalk between chains is real on devices and absent from Aer's noise models (module doc).
    A circuit no chain can hold raises :class:`PackingError` before anything is submitted.
    """

    supports_exact = False

    @property
    def job_limits(self):  # type: ignore[override]
        """The device's limits (a packed job is still one job of the inner backend)."""
        return self.inner.job_limits

    def __init__(self, backend: QiskitBackend, *, max_slots: int | None = None, spacing: int = 0,
                 exclude: Sequence[int] = (), device: Any = None, seed: int | None = None, optimization_level: int = 1,
                 seed_transpiler: int = 1234, **kwargs: Any) -> None:
        if not isinstance(backend, QiskitBackend):
            raise PackingError(
                f"packing needs a Qiskit-based quicq backend (AerBackend or IBMRuntimeBackend), got "
                f"{type(backend).__name__}")
        if max_slots is not None and (isinstance(max_slots, bool) or not isinstance(max_slots, int) or max_slots < 1):
            raise PackingError(f"max_slots must be an int ≥ 1 or None, got {max_slots!r}")
        if spacing not in (0, 1):
            raise PackingError(f"spacing must be 0 or 1, got {spacing!r}")
        shots = kwargs.pop("shots", backend.shots if backend.shots is not None else 1024)
        for key in ("retries", "retry_delay", "timeout"):
            kwargs.setdefault(key, getattr(backend, key))
        super().__init__(shots, **kwargs)
        self.inner = backend
        self.name = f"packed[{backend.name}]"
        self.max_slots, self.spacing, self.exclude = max_slots, int(spacing), tuple(int(q) for q in exclude)
        self.optimization_level, self.seed_transpiler = optimization_level, seed_transpiler
        self._rng = np.random.default_rng(seed)
        self.seed = seed
        self._device = device if device is not None else backend.device
        # transpile for the given device, else for what the wrapped backend runs (Aer: its simulator)
        self._target = device if device is not None else backend.transpile_backend
        self._graph = device_graph(self._device) if self._device is not None else None
        self._layouts: dict[int, PackingLayout] = {}
        self._compiled: OrderedDict[tuple[Circuit, ...], Any] = OrderedDict()
        self.wide_executions = 0  # wide circuit executions submitted so far (rows × 1)

    # ---- layout ---------------------------------------------------------------------------------
    @property
    def max_qubits(self) -> int | None:
        return self.inner.max_qubits

    def layout(self, width: int) -> PackingLayout:
        """The chains used for circuits of ``width`` qubits (computed once per width)."""
        lay = self._layouts.get(width)
        if lay is None:
            n = self._device.num_qubits if self._device is not None else self.inner.max_qubits
            chains = find_chains(self._graph, width, count=self.max_slots, spacing=self.spacing,
                                 n_qubits=n, exclude=self.exclude)
            if not chains:
                raise PackingError(
                    f"{self.inner.name}: no connected chain of {width} qubits is free on the device "
                    f"({n} qubits, spacing={self.spacing}); nothing was submitted. Use a larger device "
                    f"or smaller blocks")
            lay = PackingLayout(width, tuple(chains))
            self._layouts[width] = lay
        return lay

    def slots(self, width: int) -> int:
        """Circuits of ``width`` qubits that run side by side in one wide execution."""
        return self.layout(width).slots

    def executions(self, tasks: Sequence[tuple[Circuit, Any]]) -> int:
        """Wide executions a ``sample(tasks)`` call submits (per shot count)."""
        if not tasks:
            return 0
        width = max(c.n_qubits for c, _ in tasks)
        batches = [int(np.shape(a)[0]) if np.ndim(a) == 2 else 1 for _, a in tasks]
        return pack_count(batches, self.slots(width))

    def _check_tasks(self, tasks: Sequence[tuple[Circuit, Any]]) -> list[Task]:
        checked = super()._check_tasks(tasks)
        if checked:
            self.layout(max(c.n_qubits for c, _ in checked))  # PackingError before any submission
        return checked

    # ---- compilation ----------------------------------------------------------------------------
    def _transpiler(self, initial_layout: list[int]) -> Any:
        require("qiskit", "qiskit")
        from qiskit.transpiler import generate_preset_pass_manager

        if self._device is not None:
            return generate_preset_pass_manager(backend=self._target, optimization_level=self.optimization_level,
                                                seed_transpiler=self.seed_transpiler,
                                                initial_layout=initial_layout)
        from quicq.hardware.aer import AER_SAFE_BASIS

        return generate_preset_pass_manager(basis_gates=list(AER_SAFE_BASIS),
                                            optimization_level=self.optimization_level,
                                            seed_transpiler=self.seed_transpiler, initial_layout=initial_layout)

    def _compile(self, structure: tuple[Circuit, ...], lay: PackingLayout) -> tuple[Any, list[int], list[int]]:
        """(transpiled wide circuit, value column per remaining parameter, clbit offset per slot)."""
        hit = self._compiled.get(structure)
        if hit is not None:
            self._compiled.move_to_end(structure)
            return hit
        require("qiskit", "qiskit")
        from qiskit import ClassicalRegister, QuantumCircuit
        from qiskit.circuit import ParameterVector

        from quicq.circuits.qiskit_io import to_qiskit

        total = sum(c.n_qubits for c in structure)
        qc = QuantumCircuit(total)
        creg = ClassicalRegister(total, "packed")
        qc.add_register(creg)
        offsets, poffsets, layout = [], [], []
        q0 = p0 = 0
        for j, c in enumerate(structure):
            sub = to_qiskit(c)
            vec = ParameterVector(f"s{j}", max(c.n_params, 1))
            sub = sub.assign_parameters({p: vec[p.index] for p in sub.parameters})
            qc.compose(sub, qubits=list(range(q0, q0 + c.n_qubits)), inplace=True)
            qc.measure(list(range(q0, q0 + c.n_qubits)), list(range(q0, q0 + c.n_qubits)))
            layout.extend(lay.chains[j][: c.n_qubits])
            offsets.append(q0)
            poffsets.append(p0)
            q0 += c.n_qubits
            p0 += c.n_params
        tqc = self._transpiler(layout).run(qc)
        columns = []
        for p in tqc.parameters:
            slot = int(p.vector.name[1:])
            columns.append(poffsets[slot] + int(p.index))
        swaps = sum(1 for inst in tqc.data if inst.operation.name == "swap")
        if swaps:  # cannot happen for nearest-neighbour layouts; non-adjacent gates are routed
            logger.info("%s: packed circuit needed %d SWAPs (non-adjacent gates)", self.name, swaps)
        entry = (tqc, columns, offsets)
        self._compiled[structure] = entry
        if len(self._compiled) > 256:
            self._compiled.popitem(last=False)
        return entry

    def compiled_circuit(self, circuits: Sequence[Circuit]) -> Any:
        """The transpiled wide circuit that runs ``circuits`` side by side (for inspection)."""
        structure = tuple(circuits)
        lay = self.layout(max(c.n_qubits for c in structure))
        if len(structure) > lay.slots:
            raise PackingError(f"{len(structure)} circuits but only {lay.slots} chains")
        return self._compile(structure, lay)[0]

    # ---- execution ------------------------------------------------------------------------------
    def _run(self, tasks: list[Task], shots: int | None) -> list[Outcome]:
        assert shots is not None  # supports_exact is False
        width = max(c.n_qubits for c, _ in tasks)
        lay = self.layout(width)
        circuits = [c for c, _ in tasks]
        plan = _schedule([a.shape[0] for _, a in tasks], circuits, lay.slots)
        pubs, meta = [], []
        for pub in plan:
            structure = tuple(circuits[t] for t in pub.tasks)
            tqc, columns, offsets = self._compile(structure, lay)
            values = np.stack([np.concatenate([tasks[t][1][b] for t, b in row]) for row in pub.rows])
            if columns:
                pubs.append((tqc, values[:, columns]))
                meta.append((pub, offsets, None))
            else:  # a parameter-free circuit is submitted once per row (Aer mis-samples (B, 0) values)
                for r in range(len(pub.rows)):
                    pubs.append((tqc,))
                    meta.append((pub, offsets, r))
        result = self.inner.run_pubs(pubs, shots, seed=int(self._rng.integers(1, 2**31 - 1)))
        self.wide_executions += sum(len(p.rows) for p in plan)
        out = [np.zeros((a.shape[0], shots), dtype=np.int64) for _, a in tasks]
        for i, (pub, offsets, row) in enumerate(meta):
            clbits = unpacked_clbits(getattr(result[i].data, "packed"))  # (rows, shots', all bits), unpacked once
            rows = pub.rows if row is None else (pub.rows[row],)
            for j, off in enumerate(offsets):
                n = circuits[pub.tasks[j]].n_qubits
                # slot j's qubit q was measured into classical bit off + q
                idx = self.inner.fit_shots(bits_to_index(clbits[..., off:off + n]), shots)
                for r, slot_row in enumerate(rows):
                    t, b = slot_row[j]
                    out[t][b] = idx[r]
        return [Outcome(c.n_qubits, shots, indices=o) for (c, _), o in zip(tasks, out)]

    def __repr__(self) -> str:
        return f"PackedBackend({self.inner!r}, max_slots={self.max_slots}, spacing={self.spacing})"
