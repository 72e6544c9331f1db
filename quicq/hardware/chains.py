"""Disjoint qubit chains in a coupling map, scheduling executions onto them, and packed job plans.

The placement half of packing (:mod:`quicq.hardware.packing` runs the packed circuits): a
*chain* is a simple path in the device's coupling graph, so a nearest-neighbour circuit laid
along it needs no SWAPs. :func:`find_chains` finds disjoint chains greedily (Warnsdorff rule:
start at the free qubit of lowest degree, extend to the neighbour with the fewest free
neighbours, bounded backtracking). Measured: 13 chains of 8 qubits on FakeTorino (133 qubits),
12 on FakeSherbrooke (127), 15 on FakeFez (156). :func:`plan_packing` counts the executions and
QPU time of packed model-wide jobs for the planner, without submitting anything.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from quicq.circuits.ir import Circuit
from quicq.errors import QuicqError
from quicq.hardware.errors import BackendError

__all__ = ["PackingError", "PackingPlan", "device_graph", "find_chains", "pack_count", "plan_packing"]

class PackingError(BackendError, QuicqError):
    """Circuits cannot be packed on the device (no chain long enough, bad options); nothing submitted."""



# ---------------------------------------------------------------------------------------------
# Chains in a coupling map
# ---------------------------------------------------------------------------------------------


def device_graph(device: Any) -> Any:
    """The undirected coupling graph (``rustworkx.PyGraph``) of a Qiskit backend, Target or CouplingMap.

    Returns ``None`` for a device without a coupling map (an ideal simulator: all-to-all).
    """
    cmap = device
    if hasattr(device, "coupling_map") and not hasattr(device, "graph"):
        cmap = device.coupling_map
    if cmap is None:
        return None
    if hasattr(cmap, "build_coupling_map") and not hasattr(cmap, "graph"):  # a Target
        cmap = cmap.build_coupling_map()
        if cmap is None:
            return None
    return cmap.graph.to_undirected(multigraph=False)


def _path_from(graph: Any, start: int, length: int, free: set[int], budget: list[int]) -> list[int] | None:
    """A simple path of ``length`` free nodes from ``start`` (Warnsdorff order, bounded backtracking)."""
    path, on = [start], {start}

    def grow() -> bool:
        if len(path) == length:
            return True
        budget[0] -= 1
        if budget[0] < 0:
            return False
        last = path[-1]
        cands = [v for v in graph.neighbors(last) if v in free and v not in on]
        # fewest onward free neighbours first, then the lowest index (rows of IBM devices)
        cands.sort(key=lambda v: (sum(1 for w in graph.neighbors(v) if w in free and w not in on), v))
        for v in cands:
            path.append(v)
            on.add(v)
            if grow():
                return True
            path.pop()
            on.discard(v)
        return False

    return list(path) if grow() else None


def find_chains(graph: Any, length: int, *, count: int | None = None, spacing: int = 0,
                n_qubits: int | None = None, exclude: Sequence[int] = ()) -> list[tuple[int, ...]]:
    """Disjoint simple paths of ``length`` qubits in a coupling graph, greedily, as many as fit.

    Args:
        graph: a ``rustworkx.PyGraph`` (see :func:`device_graph`), or ``None`` for an all-to-all
            device of ``n_qubits`` qubits (chains are then consecutive index ranges).
        length: qubits per chain (≥ 1).
        count: stop after this many chains (default: as many as the device holds).
        spacing: 0 — chains may touch; 1 — the neighbours of a chain are left unused.
        exclude: physical qubits never to use (e.g. known-bad qubits).

    Chains come in the order found (lowest-degree starts first); each chain lists its qubits
    in path order: chain[i] and chain[i+1] are coupled.
    """
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise PackingError(f"chain length must be an int ≥ 1, got {length!r}")
    if spacing not in (0, 1):
        raise PackingError(f"spacing must be 0 or 1, got {spacing!r}")
    bad = set(int(q) for q in exclude)
    if graph is None:
        if n_qubits is None:
            raise PackingError("an all-to-all device needs n_qubits to place chains")
        free_list = [q for q in range(int(n_qubits)) if q not in bad]
        chains = []
        for i in range(len(free_list) // length):
            if count is not None and len(chains) >= count:
                break
            if spacing and i % 2:
                continue
            chains.append(tuple(free_list[i * length:(i + 1) * length]))
        return chains
    free = set(graph.node_indices()) - bad
    chains: list[tuple[int, ...]] = []
    while free and (count is None or len(chains) < count):
        starts = sorted(free, key=lambda v: (sum(1 for w in graph.neighbors(v) if w in free), v))
        found = None
        for s in starts:
            found = _path_from(graph, s, length, free, [4 * length * length])
            if found is not None:
                break
        if found is None:
            break
        chains.append(tuple(found))
        free -= set(found)
        if spacing:
            free -= {w for v in found for w in graph.neighbors(v)}
    return chains


# ---------------------------------------------------------------------------------------------
# Scheduling executions into packs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pub:
    """One wide structure (a circuit per slot) and its rows: per row, (task, binding) per slot."""

    tasks: tuple[int, ...]
    rows: tuple[tuple[tuple[int, int], ...], ...]


def _schedule(batches: Sequence[int], circuits: Sequence[Circuit], slots: int) -> list[_Pub]:
    """Packs for tasks with ``batches[t]`` bindings each: whole packs per circuit, then mixed remainders."""
    pubs: OrderedDict[tuple[Circuit, ...], tuple[tuple[int, ...], list]] = OrderedDict()
    rest: list[tuple[int, int]] = []
    for t, B in enumerate(batches):
        full = B // slots
        if full:
            key = (circuits[t],) * slots
            entry = pubs.setdefault(key, ((t,) * slots, []))
            # rows refer to the first task with this structure; equal circuits are interchangeable
            entry[1].extend(tuple((t, r * slots + j) for j in range(slots)) for r in range(full))
        rest.extend((t, b) for b in range(full * slots, B))
    for i in range(0, len(rest), slots):
        chunk = tuple(rest[i:i + slots])
        key = tuple(circuits[t] for t, _ in chunk)
        entry = pubs.setdefault(key, (tuple(t for t, _ in chunk), []))
        entry[1].append(chunk)
    return [_Pub(tasks, tuple(rows)) for tasks, rows in pubs.values()]


def pack_count(batches: Sequence[int], slots: int, circuits: Sequence[Any] | None = None) -> int:
    """Wide executions needed for tasks with ``batches[t]`` bindings each on ``slots`` chains."""
    if slots < 1:
        raise PackingError("at least one chain is needed to pack")
    full = sum(B // slots for B in batches)
    rest = sum(B % slots for B in batches)
    return full + -(-rest // slots)


# ---------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackingPlan:
    """Packed vs unpacked executions and QPU time of a model-wide forward and step.

    With the model bridge every forward is one job (all units' circuits) and a quantum backward
    one more; packing runs ``slots`` of those executions side by side per wide execution.
    """

    width: int
    slots: int
    chains: tuple[tuple[int, ...], ...]
    spacing: int
    executions_per_forward: int
    executions_per_step: int
    unpacked_executions_per_forward: int
    unpacked_executions_per_step: int
    jobs_per_forward: int
    jobs_per_step: int
    qpu_seconds_per_forward: float | None
    qpu_seconds_per_step: float | None

    @property
    def reduction_forward(self) -> float:
        """Unpacked / packed executions per forward."""
        return self.unpacked_executions_per_forward / max(self.executions_per_forward, 1)

    @property
    def reduction_step(self) -> float:
        """Unpacked / packed executions per training step."""
        return self.unpacked_executions_per_step / max(self.executions_per_step, 1)


def plan_packing(graph: Any, n_qubits: int | None, width: int, forward: Sequence[int], backward: Sequence[int], *,
                 spacing: int = 0, max_slots: int | None = None, seconds_per_execution: float | None = None,
                 job_overhead_s: float = 0.0, shots: int = 1, max_shots_per_job: int | None = None) -> PackingPlan:
    """Executions and time of packed model-wide jobs (nothing is submitted).

    Args:
        graph, n_qubits: the device's coupling graph (:func:`device_graph`; ``None``: all-to-all).
        width: qubits per slot (the widest circuit).
        forward, backward: bindings of every (unit, circuit) task of the forward job and of the
            backward job (empty: no quantum backward).
        seconds_per_execution: time of one (wide) execution with all its shots: the longest
            circuit's, since slots run in parallel (``None``: unknown).
        shots, max_shots_per_job: a direction's job is split into ⌈executions·shots / max⌉ jobs
            when the backend limits executions × shots per job (IBM: 10 M).

    Raises:
        PackingError: no chain of ``width`` qubits on the device.
    """
    chains = find_chains(graph, width, count=max_slots, spacing=spacing, n_qubits=n_qubits)
    if not chains:
        raise PackingError(f"no connected chain of {width} qubits on the device ({n_qubits} qubits, "
                           f"spacing={spacing}); use a larger device or smaller blocks")
    m = len(chains)
    fwd, back = pack_count(forward, m), pack_count(backward, m) if backward else 0

    def jobs(execs: int) -> int:
        return 1 if not max_shots_per_job else max(1, -(-execs * shots // max_shots_per_job))

    jobs_fwd = jobs(fwd)
    jobs_step = jobs_fwd + (jobs(back) if backward else 0)

    def secs(execs: int, jobs: int) -> float | None:
        return None if seconds_per_execution is None else jobs * job_overhead_s + execs * seconds_per_execution

    return PackingPlan(width, m, tuple(chains), spacing, fwd, fwd + back, sum(forward), sum(forward) + sum(backward),
                       jobs_fwd, jobs_step, secs(fwd, jobs_fwd), secs(fwd + back, jobs_step))
