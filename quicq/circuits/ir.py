"""The circuit IR: one object every engine, compiler and backend consumes.

A :class:`Circuit` is a qubit count, an ordered tuple of :class:`Gate` and a number of
parameter *slots*. A parametric gate names the slot its angle comes from (several gates may
share a slot); angles themselves live outside the circuit, as a tensor/array of shape
``(..., n_params)``, so one circuit serves a whole batch of angle settings and training never
rebuilds it.

Qubits are numbered 0..n−1. For statevectors quicq uses the textbook (PennyLane) order:
qubit 0 is the most significant bit of the basis index (:mod:`quicq.circuits.bitorder`). The
unary basis vector e_a is the state with only qubit a set.

A circuit that works inside a subspace (the Gray-coded register of a Pauli circuit) carries
its :class:`~quicq.circuits.codespace.CodeSpace`; it takes part in equality and hashing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from quicq.circuits.bitorder import basis_index
from quicq.circuits.codespace import CodeSpace
from quicq.circuits.gates import GATES, GIVENS_GATES, HW_PRESERVING_GATES
from quicq.errors import QuicqError

__all__ = [
    "Circuit", "CircuitError", "CodeSpace", "Gate", "basis_index", "check_angles", "check_orders",
    "sector_dim", "sector_indices", "subsets",
]


class CircuitError(QuicqError, ValueError):
    """A circuit, gate or angle vector is malformed; the message says what and where."""


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    """A tuple/list of ints as a tuple of Python ints, else CircuitError (no foreign TypeError)."""
    if not isinstance(value, (tuple, list)) or not all(_is_int(v) for v in value):
        raise CircuitError(f"{what} must be a tuple of ints, got {value!r}")
    return tuple(int(v) for v in value)


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

    def __post_init__(self) -> None:
        # Types only (arity and ranges need the circuit): a Gate is always hashable and holds
        # Python ints, so equal gates print, hash and export identically.
        if not isinstance(self.name, str):
            raise CircuitError(f"a gate name must be a str, got {self.name!r}")
        object.__setattr__(self, "qubits", _int_tuple(self.qubits, f"{self.name}: qubits"))
        if self.param is not None:
            if not _is_int(self.param):
                raise CircuitError(f"{self.name}: the parameter slot must be an int, got {self.param!r}")
            object.__setattr__(self, "param", int(self.param))
        if self.ctrl_state is not None:
            object.__setattr__(self, "ctrl_state", _int_tuple(self.ctrl_state, f"{self.name}: ctrl_state"))

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
    if g.name in GIVENS_GATES and g.qubits[0] > g.qubits[1]:
        raise CircuitError(
            f"{where}: {g.name} needs qubits in increasing order (a < b), got {g.qubits}; "
            f"{g.name}_ba(θ) equals {g.name}_ab(−θ)"
        )
    if spec.parametric:
        if g.param is None:
            raise CircuitError(f"{where}: parametric gate {g.name} needs an integer parameter slot")
        if not 0 <= g.param < n_params:
            raise CircuitError(f"{where}: parameter slot {g.param} out of range for {n_params} slots")
    elif g.param is not None:
        raise CircuitError(f"{where}: gate {g.name} takes no angle but was given slot {g.param}")


@dataclass(frozen=True)
class Circuit:
    """An immutable, validated quantum circuit with parameter slots.

    Two circuits are equal when qubit count, gates, slot count and code space are equal;
    ``meta`` (layout name and its arguments, free-form, for display) does not take part in
    equality. ``code_space``: the logical basis of a circuit that works inside a subspace
    (None: all 2^n basis states). For compatibility, a ``meta`` with ``layout="pauli"`` and
    ``N`` and no explicit code space gets the Pauli register's Gray code space.
    """

    n_qubits: int
    gates: tuple[Gate, ...]
    n_params: int
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    code_space: CodeSpace | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.n_qubits) or self.n_qubits < 1:
            raise CircuitError(f"a circuit needs at least one qubit, got n_qubits={self.n_qubits!r}")
        if not _is_int(self.n_params) or self.n_params < 0:
            raise CircuitError(f"n_params must be a non-negative int, got {self.n_params!r}")
        object.__setattr__(self, "n_qubits", int(self.n_qubits))
        object.__setattr__(self, "n_params", int(self.n_params))
        if isinstance(self.gates, (str, bytes)) or not hasattr(self.gates, "__iter__"):
            raise CircuitError(f"gates must be a sequence of Gate, got {type(self.gates).__name__}")
        object.__setattr__(self, "gates", tuple(self.gates))
        if not isinstance(self.meta, Mapping):
            raise CircuitError(f"meta must be a mapping, got {type(self.meta).__name__}")
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))
        for i, g in enumerate(self.gates):
            if not isinstance(g, Gate):
                raise CircuitError(f"gate {i}: expected a Gate, got {type(g).__name__}")
            _check_gate(g, self.n_qubits, self.n_params, f"gate {i} ({g.name})")
        code = self.code_space
        if code is None and self.meta.get("layout") == "pauli":
            code = _pauli_code_space(self.meta, self.n_qubits)
        if code is not None:
            if not isinstance(code, CodeSpace):
                raise CircuitError(f"code_space must be a CodeSpace or None, got {type(code).__name__}")
            code.check(self.n_qubits)
            d = code.dim
            if d.bit_length() == self.n_qubits + 1 and not d & (d - 1) and code.indices == tuple(range(d)):
                code = None  # every basis state, in order: the same as no code space
        object.__setattr__(self, "code_space", code)
        # Circuits key many caches (plans, transpilations): hash the gate tuple once; the
        # structural flags are read on every engine call, so they are computed once too.
        object.__setattr__(self, "_hash", hash((self.n_qubits, self.gates, self.n_params, code)))
        hw = all(g.name in HW_PRESERVING_GATES for g in self.gates)
        object.__setattr__(self, "_hw", hw)
        object.__setattr__(self, "_compound", hw and all(g.name != "rbs" or g.adjacent for g in self.gates))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    def __deepcopy__(self, memo: dict) -> Circuit:
        return self  # immutable: sharing is safe (and keeps caches keyed by it warm)

    def __reduce__(self):
        # meta is a read-only mapping view, which pickle cannot store: rebuild from a dict.
        return (Circuit, (self.n_qubits, self.gates, self.n_params, dict(self.meta), self.code_space))

    # ---- structure -------------------------------------------------------------------------
    @property
    def hw_preserving(self) -> bool:
        """True when every gate preserves Hamming weight (RBS, FBS, CZ, Z)."""
        return self._hw  # type: ignore[attr-defined]

    def non_hw_gates(self) -> list[str]:
        """Sorted names of the gates in this circuit that do not preserve Hamming weight."""
        return sorted({g.name for g in self.gates} - HW_PRESERVING_GATES)

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
        if other.code_space is not None and other.code_space != self.code_space:
            raise CircuitError(
                f"cannot compose circuits with different code spaces ({self.code_space} and "
                f"{other.code_space})"
            )
        return Circuit(self.n_qubits, self.gates + moved, n_params, dict(self.meta), self.code_space)

    def with_prefix(self, gates: Iterable[Gate]) -> Circuit:
        """A copy with fixed (non-parametric) gates prepended: used for state preparation."""
        pre = tuple(gates)
        return Circuit(self.n_qubits, pre + self.gates, self.n_params, dict(self.meta), self.code_space)

    def with_suffix(self, gates: Iterable[Gate]) -> Circuit:
        """A copy with fixed gates appended: used for basis changes before measurement."""
        return Circuit(self.n_qubits, self.gates + tuple(gates), self.n_params, dict(self.meta), self.code_space)

    def __str__(self) -> str:
        head = f"Circuit({self.n_qubits} qubits, {len(self.gates)} gates, {self.n_params} params"
        if "layout" in self.meta:
            head += f", layout={self.meta['layout']}"
        if self.code_space is not None:
            head += f", code space N={self.code_space.dim}"
        return head + ")"

    def __repr__(self) -> str:
        return str(self)

    def describe(self) -> str:
        """Multi-line listing, one gate per line."""
        return "\n".join([str(self)] + [f"  {i:4d}: {g}" for i, g in enumerate(self.gates)])


def _pauli_code_space(meta: Mapping[str, Any], n_qubits: int) -> CodeSpace:
    """The Gray code space a ``layout="pauli"`` meta implies (see :mod:`quicq.circuits.pauli`)."""
    from quicq.circuits.pauli import code_indices  # pauli imports this module

    N = meta.get("N")
    if not _is_int(N) or N < 2:
        raise CircuitError(f"a circuit with layout 'pauli' needs an integer meta['N'] ≥ 2, got {N!r}")
    if int(N).bit_length() > n_qubits + 1 or N > 1 << n_qubits:
        raise CircuitError(f"meta N={N} does not fit in {n_qubits} qubits (at most 2^{n_qubits} states)")
    return CodeSpace(tuple(code_indices(int(N))))


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


def sector_indices(n_qubits: int, k: int) -> list[int]:
    """Basis indices of the weight-k sector, in the lexicographic subset order of :func:`subsets`."""
    return [basis_index(s, n_qubits) for s in subsets(n_qubits, k)]
