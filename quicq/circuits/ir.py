"""The circuit IR: one object every engine, compiler and backend consumes.

A :class:`Circuit` is a qubit count, an ordered tuple of :class:`Gate` and a number of
parameter *slots*. A parametric gate names the slot its angle comes from (several gates may
share a slot); angles themselves live outside the circuit, as a tensor/array of shape
``(..., n_params)``, so one circuit serves a whole batch of angle settings and training never
rebuilds it.

Qubits are numbered 0..n−1. For statevectors quicq uses the textbook (PennyLane) order:
qubit 0 is the most significant bit of the basis index. The unary basis vector e_a is the
state with only qubit a set.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from quicq.circuits.gates import GATES


class CircuitError(ValueError):
    """A circuit, gate or angle vector is malformed; the message says what and where."""


@dataclass(frozen=True)
class Gate:
    """One gate application.

    Attributes:
        name: a key of :data:`quicq.circuits.gates.GATES`.
        qubits: the qubits, in the gate's own order. ``rbs``/``fbs``: (a, b) with a < b;
            ``mcry``: (*controls, target).
        param: the parameter slot of a parametric gate, else ``None``.
        ctrl_state: ``mcry`` only: the control values (one 0/1 per control).
    """

    name: str
    qubits: tuple[int, ...]
    param: int | None = None
    ctrl_state: tuple[int, ...] | None = None

    @property
    def support(self) -> tuple[int, ...]:
        """Every qubit the gate's action depends on (FBS also reads the qubits between)."""
        if self.name == "fbs":
            a, b = self.qubits
            return tuple(range(a, b + 1))
        return self.qubits

    @property
    def adjacent(self) -> bool:
        """True for a two-qubit gate on nearest neighbours (a, a+1)."""
        return len(self.qubits) == 2 and abs(self.qubits[1] - self.qubits[0]) == 1

    def __str__(self) -> str:
        arg = f"(θ[{self.param}])" if self.param is not None else ""
        cs = f"[ctrl={''.join(map(str, self.ctrl_state))}]" if self.ctrl_state else ""
        return f"{self.name}{arg}{cs} {','.join(map(str, self.qubits))}"


def _check_gate(g: Gate, n_qubits: int, n_params: int, where: str) -> None:
    spec = GATES.get(g.name)
    if spec is None:
        raise CircuitError(f"{where}: unknown gate {g.name!r}; known gates: {sorted(GATES)}")
    if not isinstance(g.qubits, tuple) or not all(isinstance(q, (int, np.integer)) for q in g.qubits):
        raise CircuitError(f"{where}: qubits must be a tuple of ints, got {g.qubits!r}")
    if spec.n_qubits is not None and len(g.qubits) != spec.n_qubits:
        raise CircuitError(f"{where}: {g.name} acts on {spec.n_qubits} qubit(s), got {len(g.qubits)}")
    if g.name == "mcry":
        if len(g.qubits) < 1:
            raise CircuitError(f"{where}: mcry needs a target qubit")
        if g.ctrl_state is None or len(g.ctrl_state) != len(g.qubits) - 1:
            raise CircuitError(f"{where}: mcry needs one control value per control qubit")
        if any(v not in (0, 1) for v in g.ctrl_state):
            raise CircuitError(f"{where}: control values must be 0 or 1, got {g.ctrl_state}")
    elif g.ctrl_state is not None:
        raise CircuitError(f"{where}: only mcry takes a control state")
    for q in g.qubits:
        if not 0 <= q < n_qubits:
            raise CircuitError(f"{where}: qubit index {q} out of range for {n_qubits} qubits")
    if len(set(g.qubits)) != len(g.qubits):
        raise CircuitError(f"{where}: gate {g.name} uses the same qubit twice: {g.qubits}")
    if g.name in ("rbs", "fbs") and g.qubits[0] > g.qubits[1]:
        raise CircuitError(
            f"{where}: {g.name} needs qubits in increasing order (a < b), got {g.qubits}; "
            f"{g.name}_ba(θ) equals {g.name}_ab(−θ)"
        )
    if spec.parametric:
        if g.param is None or not isinstance(g.param, (int, np.integer)):
            raise CircuitError(f"{where}: parametric gate {g.name} needs an integer parameter slot")
        if not 0 <= g.param < n_params:
            raise CircuitError(f"{where}: parameter slot {g.param} out of range for {n_params} slots")
    elif g.param is not None:
        raise CircuitError(f"{where}: gate {g.name} takes no angle but was given slot {g.param}")


@dataclass(frozen=True)
class Circuit:
    """An immutable, validated quantum circuit with parameter slots.

    Two circuits are equal when qubit count, gates and slot count are equal; ``meta``
    (layout name and its arguments, free-form) does not take part in equality.
    """

    n_qubits: int
    gates: tuple[Gate, ...]
    n_params: int
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.n_qubits, (int, np.integer)) or self.n_qubits < 1:
            raise CircuitError(f"a circuit needs at least one qubit, got n_qubits={self.n_qubits!r}")
        if not isinstance(self.n_params, (int, np.integer)) or self.n_params < 0:
            raise CircuitError(f"n_params must be a non-negative int, got {self.n_params!r}")
        object.__setattr__(self, "gates", tuple(self.gates))
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))
        for i, g in enumerate(self.gates):
            if not isinstance(g, Gate):
                raise CircuitError(f"gate {i}: expected a Gate, got {type(g).__name__}")
            _check_gate(g, self.n_qubits, self.n_params, f"gate {i} ({g.name})")
        # Circuits key many caches (plans, transpilations): hash the gate tuple once; the
        # structural flags are read on every engine call, so they are computed once too.
        object.__setattr__(self, "_hash", hash((self.n_qubits, self.gates, self.n_params)))
        hw = all(GATES[g.name].hw_preserving for g in self.gates)
        object.__setattr__(self, "_hw", hw)
        object.__setattr__(self, "_compound", hw and all(g.name != "rbs" or g.adjacent for g in self.gates))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    def __deepcopy__(self, memo: dict) -> Circuit:
        return self  # immutable: sharing is safe (and keeps caches keyed by it warm)

    def __reduce__(self):
        # meta is a read-only mapping view, which pickle cannot store: rebuild from a dict.
        return (Circuit, (self.n_qubits, self.gates, self.n_params, dict(self.meta)))

    # ---- structure -------------------------------------------------------------------------
    @property
    def hw_preserving(self) -> bool:
        """True when every gate preserves Hamming weight (RBS, FBS, CZ, Z)."""
        return self._hw  # type: ignore[attr-defined]

    @property
    def compound_exact(self) -> bool:
        """True when the weight-k action is exactly C_k(unary block).

        Holds when the circuit is HW-preserving and every RBS is nearest-neighbour (FBS
        gates, Z and CZ are always fine; a non-adjacent RBS is not, docs/conventions.md).
        """
        return self._compound  # type: ignore[attr-defined]

    def param_gates(self) -> list[list[int]]:
        """For each slot, the indices of the gates that read it."""
        out: list[list[int]] = [[] for _ in range(self.n_params)]
        for i, g in enumerate(self.gates):
            if g.param is not None:
                out[g.param].append(i)
        return out

    def slot_frequency(self) -> list[float]:
        """Angle frequency of each slot (all gates sharing a slot must agree)."""
        freqs: list[float] = []
        for slot, idx in enumerate(self.param_gates()):
            ws = {GATES[self.gates[i].name].frequency for i in idx}
            if len(ws) > 1:
                raise CircuitError(f"slot {slot} is shared by gates of different frequencies {ws}")
            freqs.append(ws.pop() if ws else 0.0)
        return freqs

    def layers(self, *, by_support: bool = True) -> list[list[int]]:
        """Greedy as-soon-as-possible layering: lists of gate indices on disjoint qubits.

        ``by_support=False`` layers by the named qubits only, ignoring the qubits an FBS reads
        between its pair: valid wherever FBS acts like RBS (the unary sector).
        """
        free_at = [0] * self.n_qubits
        layers: list[list[int]] = []
        for i, g in enumerate(self.gates):
            qs = g.support if by_support else g.qubits
            t = max(free_at[q] for q in qs)
            if t == len(layers):
                layers.append([])
            layers[t].append(i)
            for q in qs:
                free_at[q] = t + 1
        return layers

    @property
    def depth(self) -> int:
        """Number of ASAP layers."""
        return len(self.layers())

    def count_ops(self) -> dict[str, int]:
        """Gate counts by name."""
        out: dict[str, int] = {}
        for g in self.gates:
            out[g.name] = out.get(g.name, 0) + 1
        return out

    # ---- building ---------------------------------------------------------------------------
    def compose(self, other: Circuit, *, share_params: bool = False) -> Circuit:
        """``self`` followed by ``other``; other's slots are appended unless shared."""
        if other.n_qubits != self.n_qubits:
            raise CircuitError(f"cannot compose {self.n_qubits}- and {other.n_qubits}-qubit circuits")
        off = 0 if share_params else self.n_params
        moved = tuple(
            Gate(g.name, g.qubits, None if g.param is None else g.param + off, g.ctrl_state)
            for g in other.gates
        )
        n_params = max(self.n_params, other.n_params) if share_params else self.n_params + other.n_params
        return Circuit(self.n_qubits, self.gates + moved, n_params, dict(self.meta))

    def with_prefix(self, gates: Iterable[Gate]) -> Circuit:
        """A copy with fixed (non-parametric) gates prepended: used for state preparation."""
        pre = tuple(gates)
        return Circuit(self.n_qubits, pre + self.gates, self.n_params, dict(self.meta))

    def with_suffix(self, gates: Iterable[Gate]) -> Circuit:
        """A copy with fixed gates appended: used for basis changes before measurement."""
        return Circuit(self.n_qubits, self.gates + tuple(gates), self.n_params, dict(self.meta))

    def __str__(self) -> str:
        head = f"Circuit({self.n_qubits} qubits, {len(self.gates)} gates, {self.n_params} params"
        if "layout" in self.meta:
            head += f", layout={self.meta['layout']}"
        return head + ")"

    def __repr__(self) -> str:
        return str(self)

    def describe(self) -> str:
        """Multi-line listing, one gate per line."""
        return "\n".join([str(self)] + [f"  {i:4d}: {g}" for i, g in enumerate(self.gates)])


def check_angles(circuit: Circuit, angles: Any, *, name: str = "angles") -> None:
    """Raise :class:`CircuitError` unless ``angles`` has shape (..., n_params) and is finite.

    Accepts numpy arrays, torch tensors and sequences; never copies large data needlessly.
    """
    shape = tuple(getattr(angles, "shape", None) or np.shape(angles))
    if len(shape) == 0 or shape[-1] != circuit.n_params:
        raise CircuitError(
            f"{name}: expected shape (..., {circuit.n_params}) for a circuit with "
            f"{circuit.n_params} parameter slots, got {shape}"
        )
    try:
        import torch

        if isinstance(angles, torch.Tensor):
            if angles.is_complex():
                raise CircuitError(f"{name}: angles must be real")
            if angles.device.type != "cpu":  # a finiteness scan would force a host sync per call
                return
            bad = ~torch.isfinite(angles.detach())
            if bool(bad.any()):
                idx = tuple(int(i) for i in torch.nonzero(bad)[0])
                raise CircuitError(f"{name}: non-finite angle (NaN or inf) at index {idx}")
            return
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    arr = np.asarray(angles)
    if np.iscomplexobj(arr):
        raise CircuitError(f"{name}: angles must be real")
    arr = arr.astype(float)
    if not np.all(np.isfinite(arr)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise CircuitError(f"{name}: non-finite angle (NaN or inf) at index {idx}")


def subsets(n: int, k: int) -> list[tuple[int, ...]]:
    """Weight-k basis: k-subsets of range(n) in lexicographic order (docs/conventions.md)."""
    from itertools import combinations

    return list(combinations(range(n), k))


def check_orders(n: int, orders: Sequence[int]) -> tuple[int, ...]:
    """Validate a set of Hamming-weight orders for n qubits; returns them sorted, unique."""
    try:
        lst = [int(k) for k in orders]
    except (TypeError, ValueError) as exc:
        raise CircuitError(f"orders must be integers, got {orders!r}") from exc
    if not lst:
        raise CircuitError("orders must name at least one Hamming weight k")
    if len(set(lst)) != len(lst):
        raise CircuitError(f"orders repeat a value: {lst}")
    ks = sorted(lst)
    for k in ks:
        if not 0 <= k <= n:
            raise CircuitError(f"order k={k} is impossible for n={n} qubits (need 0 ≤ k ≤ {n})")
    return tuple(ks)


def sector_dim(n: int, k: int) -> int:
    """C(n, k): the size of the weight-k block."""
    return math.comb(n, k)


def basis_index(set_qubits: Iterable[int], n_qubits: int) -> int:
    """Basis-state index of the state with exactly ``set_qubits`` set (qubit 0 = MSB)."""
    return sum(1 << (n_qubits - 1 - q) for q in set_qubits)


def sector_indices(n_qubits: int, k: int) -> list[int]:
    """Basis indices of the weight-k sector, in the lexicographic subset order of :func:`subsets`."""
    return [basis_index(s, n_qubits) for s in subsets(n_qubits, k)]
