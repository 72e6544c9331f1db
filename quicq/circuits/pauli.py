"""Quantum-PEFT "Pauli" circuits for any dimension N.

For N = 2^q the circuit is: RY on every qubit, then L layers, each an even-pair and an
odd-pair sub-layer of CZ(j, j+1) followed by RY on both qubits — exactly (2L+1)q − 2L angles.

Real model widths are rarely powers of two, so for N = m·2^p with m odd and m > 1 we add one
*m-level register* as position 0 of the chain, before the p qubits:

* its "RY" is a sequence of Givens rotations between adjacent levels (l, l+1), each with its
  own angle (for m = 2 this would be exactly RY). Two sequences exist (``register=``):
  ``"chain"`` (the default): (0,1), (1,2), …, (m−2, m−1) — m−1 angles, a sub-manifold of SO(m)
  (for m = 3 it reaches only 2 of the 3 directions of so(3)); ``"full"``: the bubble-sort
  word (0,1)…(m−2,m−1), (0,1)…(m−3,m−2), …, (0,1) — m(m−1)/2 angles, every element of SO(m)
  (for m = 3: (0,1), (1,2), (0,1), an Euler-angle chart), so the register's rotation is as
  general as a qubit's RY is on SO(2);
* its "Z" is the level parity (−1)^l, so CZ(register, qubit) = (−1)^(l·b).

On hardware the register lives in r = ⌈log2 m⌉ qubits holding the Gray code g(l) = l ⊕ (l≫1)
of its level. Adjacent levels differ in one bit, so each Givens rotation is one RY on that bit
controlled by the register's other bits (an ``mcry``), and since popcount(g(l)) ≡ l (mod 2),
the parity Z is Z on every register qubit: CZ(register, b) = ∏ CZ(register qubit, b). The
rotations only mix code words, so the state never leaves the code space {g(l) : l < m}.

Logical basis index: l·2^p + (p-qubit bits); physical index: g(l)·2^p + (p-qubit bits), with
qubit 0 the most significant bit. :func:`code_indices` gives that map. The logical structure
(:func:`pauli_structure`) is the one definition both the circuit builder and the fused engine
(:mod:`quicq.engine.pauli`) read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from quicq.circuits.bitorder import bits_of
from quicq.circuits.ir import Circuit, CircuitError, Gate

REGISTERS = ("chain", "full")
DEFAULT_REGISTER = "chain"


def split_dimension(N: int) -> tuple[int, int]:
    """Return (m, p) with N = m·2^p and m odd."""
    if not isinstance(N, int) or isinstance(N, bool) or N < 2:
        raise CircuitError(f"a Pauli circuit needs an integer dimension N ≥ 2, got {N!r}")
    p = (N & -N).bit_length() - 1
    return N >> p, p


def _gray(level: int) -> int:
    return level ^ (level >> 1)


def register_levels(m: int, register: str) -> tuple[int, ...]:
    """Lower levels l of the register's Givens rotations (l, l+1), in circuit order."""
    if register not in REGISTERS:
        raise CircuitError(f"register must be one of {list(REGISTERS)}, got {register!r}")
    if register == "chain":
        return tuple(range(m - 1))
    return tuple(l for top in range(m - 1, 0, -1) for l in range(top))


@dataclass(frozen=True)
class Rotation:
    """The "RY" of one chain position: Givens rotations (level, level+1) with their slots."""

    position: int
    levels: tuple[int, ...]  # (0,) for a qubit
    slots: tuple[int, ...]


@dataclass(frozen=True)
class CZ:
    """CZ between chain positions i and j (for the register: its level parity)."""

    i: int
    j: int


@dataclass(frozen=True)
class Stage:
    """One sub-layer: CZs on disjoint position pairs, then rotations on distinct positions.

    The first stage (the initial RY column) has no CZ. Within a stage every CZ commutes with
    every rotation on another pair, so the stage equals "all CZs, then all rotations".
    """

    czs: tuple[CZ, ...]
    rotations: tuple[Rotation, ...]


@dataclass(frozen=True)
class PauliStructure:
    """Logical description of :func:`pauli` (N, L): position sizes and the stages in order."""

    N: int
    m: int
    p: int
    n_layers: int
    register: str
    dims: tuple[int, ...]  # size of each chain position (m for the register, 2 for a qubit)
    stages: tuple[Stage, ...]
    n_params: int


def _check(N: int, n_layers: int, register: str) -> tuple[int, int]:
    m, p = split_dimension(N)
    if not isinstance(n_layers, int) or isinstance(n_layers, bool) or n_layers < 0:
        raise CircuitError(f"n_layers must be a non-negative int, got {n_layers!r}")
    register_levels(m, register)
    return m, p


@lru_cache(maxsize=128)
def pauli_structure(N: int, n_layers: int, register: str = DEFAULT_REGISTER) -> PauliStructure:
    """Positions and stages of the Pauli circuit: the first RY column, then L × (even, odd) sub-layers."""
    m, p = _check(N, n_layers, register)
    dims = ((m,) if m > 1 else ()) + (2,) * p
    reg_levels = register_levels(m, register) if m > 1 else ()
    slot = 0

    def rot(j: int) -> Rotation:
        nonlocal slot
        levels = reg_levels if (m > 1 and j == 0) else (0,)
        r = Rotation(j, levels, tuple(range(slot, slot + len(levels))))
        slot += len(levels)
        return r

    P = len(dims)
    stages = [Stage((), tuple(rot(j) for j in range(P)))]
    for _ in range(n_layers):
        for start in (0, 1):
            pairs = range(start, P - 1, 2)
            if pairs:
                stages.append(Stage(tuple(CZ(j, j + 1) for j in pairs),
                                    tuple(r for j in pairs for r in (rot(j), rot(j + 1)))))
    return PauliStructure(N, m, p, n_layers, register, dims, tuple(stages), slot)


def pauli_param_count(N: int, n_layers: int, register: str = DEFAULT_REGISTER) -> int:
    """Exact number of angles of :func:`pauli` (N, L): (2L+1)q − 2L for N = 2^q.

    For N = m·2^p (m odd > 1) with P = p + 1 chain positions, every "RY" on a qubit costs 1
    angle and on the register c = m(m−1)/2 ("full") or m−1 ("chain"); the register (position
    0) is rotated L + 1 times when P > 1 (once when P = 1), so the count is
    (2L+1)P − 2L + (c − 1)(L + 1) for P > 1.
    """
    return pauli_structure(N, n_layers, register).n_params


def _positions(m: int, p: int) -> list[tuple[int, ...]]:
    """Qubits of each chain position: the register (if m > 1) first, then single qubits."""
    r = math.ceil(math.log2(m)) if m > 1 else 0
    pos: list[tuple[int, ...]] = [tuple(range(r))] if m > 1 else []
    pos += [(r + j,) for j in range(p)]
    return pos


def _register_givens(qs: tuple[int, ...], level: int, slot: int) -> list[Gate]:
    """Givens (level, level+1) on the Gray-coded register qubits ``qs``: one mcry (X-conjugated
    when the lower level has the rotated bit set, so the logical rotation sign is the same)."""
    r = len(qs)
    a_bits, b_bits = bits_of(_gray(level), r), bits_of(_gray(level + 1), r)  # register qubit 0 = MSB
    (pos,) = [i for i in range(r) if a_bits[i] != b_bits[i]]  # Gray neighbours differ in one bit
    target = qs[pos]
    ctrls = tuple(q for q in qs if q != target)
    cstate = tuple(a_bits[qs.index(c)] for c in ctrls)
    flip = a_bits[pos]
    g = Gate("mcry", ctrls + (target,), slot, cstate)
    return [Gate("x", (target,)), g, Gate("x", (target,))] if flip else [g]


def pauli(N: int, n_layers: int, register: str = DEFAULT_REGISTER) -> Circuit:
    """The Pauli (RY + CZ) circuit whose unitary restricted to the code space is Q(θ) ∈ SO(N)."""
    s = pauli_structure(N, n_layers, register)
    pos = _positions(s.m, s.p)
    n_qubits = sum(len(q) for q in pos)
    gates: list[Gate] = []

    def rotate(op: Rotation) -> None:
        if s.m > 1 and op.position == 0:
            for level, slot in zip(op.levels, op.slots):
                gates.extend(_register_givens(pos[0], level, slot))
        else:
            gates.append(Gate("ry", pos[op.position], op.slots[0]))

    for stage in s.stages:
        if not stage.czs:
            for op in stage.rotations:
                rotate(op)
        # gate order per pair: CZ, then the pair's two rotations
        for cz, (ra, rb) in zip(stage.czs, zip(stage.rotations[::2], stage.rotations[1::2])):
            gates.extend(Gate("cz", (a, b)) for a in pos[cz.i] for b in pos[cz.j])
            rotate(ra)
            rotate(rb)
    meta = {"layout": "pauli", "N": N, "n_layers": n_layers, "m": s.m, "p": s.p, "register": register}
    return Circuit(n_qubits, tuple(gates), s.n_params, meta)


def code_indices(N: int) -> list[int]:
    """Physical basis index (qubit 0 most significant) of each logical index 0..N−1."""
    m, p = split_dimension(N)
    if m == 1:
        return list(range(N))
    return [_gray(i >> p) << p | (i & ((1 << p) - 1)) for i in range(N)]
