"""Quantum-PEFT "Pauli" circuits for any dimension N (docs/design.md#layouts, docs/design.md#adapters).

For N = 2^q the circuit is the one of docs/design.md#layouts: RY on every qubit, then L layers, each an
even-pair and an odd-pair sub-layer of CZ(j, j+1) followed by RY on both qubits — exactly
(2L+1)q − 2L angles.

Real model widths are rarely powers of two, so for N = m·2^p with m odd and m > 1 we add one
*m-level register* as position 0 of the chain, before the p qubits:

* its "RY" is a chain of m−1 Givens rotations between adjacent levels (l, l+1), each with its
  own angle (for m = 2 this is exactly RY);
* its "Z" is the level parity (−1)^l, so CZ(register, qubit) = (−1)^(l·b) (for m = 2: CZ).

On hardware the register lives in r = ⌈log2 m⌉ qubits holding the Gray code g(l) = l ⊕ (l≫1)
of its level. Adjacent levels differ in one bit, so each Givens rotation is one RY on that bit
controlled by the register's other bits (an ``mcry``), and since popcount(g(l)) ≡ l (mod 2),
the parity Z is Z on every register qubit: CZ(register, b) = ∏ CZ(register qubit, b). The
rotations only mix code words, so the state never leaves the code space {g(l) : l < m}.

Logical basis index: l·2^p + (p-qubit bits); physical index: g(l)·2^p + (p-qubit bits), with
qubit 0 the most significant bit. :func:`code_indices` gives that map. Angle count: every
"RY" on a qubit costs 1, on the register m−1 (:func:`pauli_param_count`).
"""

from __future__ import annotations

import math

from quicq.circuits.ir import Circuit, CircuitError, Gate


def split_dimension(N: int) -> tuple[int, int]:
    """Return (m, p) with N = m·2^p and m odd."""
    if not isinstance(N, int) or N < 2:
        raise CircuitError(f"a Pauli circuit needs an integer dimension N ≥ 2, got {N!r}")
    p = (N & -N).bit_length() - 1
    return N >> p, p


def _gray(level: int) -> int:
    return level ^ (level >> 1)


def _positions(m: int, p: int) -> list[tuple[int, ...]]:
    """Qubits of each chain position: the register (if m > 1) first, then single qubits."""
    r = math.ceil(math.log2(m)) if m > 1 else 0
    pos: list[tuple[int, ...]] = [tuple(range(r))] if m > 1 else []
    pos += [(r + j,) for j in range(p)]
    return pos


def pauli_param_count(N: int, n_layers: int) -> int:
    """Exact number of angles of :func:`pauli` (N, L): (2L+1)q − 2L for N = 2^q."""
    m, p = split_dimension(N)
    P = p + (1 if m > 1 else 0)
    ry_uses = [1] * P  # the first RY column
    for _ in range(n_layers):
        for start in (0, 1):
            for j in range(start, P - 1, 2):
                ry_uses[j] += 1
                ry_uses[j + 1] += 1
    cost = [m - 1 if (m > 1 and j == 0) else 1 for j in range(P)]
    return sum(u * c for u, c in zip(ry_uses, cost))


def pauli(N: int, n_layers: int) -> Circuit:
    """The Pauli (RY + CZ) circuit whose unitary restricted to the code space is Q(θ) ∈ SO(N)."""
    m, p = split_dimension(N)
    if not isinstance(n_layers, int) or n_layers < 0:
        raise CircuitError(f"n_layers must be a non-negative int, got {n_layers!r}")
    pos = _positions(m, p)
    n_qubits = sum(len(q) for q in pos)
    gates: list[Gate] = []
    slot = 0

    def ry_on(j: int) -> None:
        nonlocal slot
        qs = pos[j]
        if len(qs) == 1 and not (m > 1 and j == 0):
            gates.append(Gate("ry", qs, slot))
            slot += 1
            return
        r = len(qs)
        for level in range(m - 1):
            a, b = _gray(level), _gray(level + 1)
            bit = (a ^ b).bit_length() - 1  # the one differing bit (bit 0 = least significant)
            target = qs[r - 1 - bit]  # register qubit 0 holds the most significant bit
            ctrls = tuple(q for q in qs if q != target)
            cstate = tuple((a >> (r - 1 - qs.index(c))) & 1 for c in ctrls)
            flip = (a >> bit) & 1  # level l has the bit set: rotate the other way (X·RY·X)
            if flip:
                gates.append(Gate("x", (target,)))
            gates.append(Gate("mcry", ctrls + (target,), slot, cstate))
            if flip:
                gates.append(Gate("x", (target,)))
            slot += 1

    def cz_on(i: int, j: int) -> None:
        for a in pos[i]:
            for b in pos[j]:
                gates.append(Gate("cz", (a, b)))

    for j in range(len(pos)):
        ry_on(j)
    for _ in range(n_layers):
        for start in (0, 1):
            for j in range(start, len(pos) - 1, 2):
                cz_on(j, j + 1)
                ry_on(j)
                ry_on(j + 1)
    meta = {"layout": "pauli", "N": N, "n_layers": n_layers, "m": m, "p": p}
    circ = Circuit(n_qubits, tuple(gates), slot, meta)
    assert slot == pauli_param_count(N, n_layers)
    return circ


def code_indices(N: int) -> list[int]:
    """Physical basis index (qubit 0 most significant) of each logical index 0..N−1."""
    m, p = split_dimension(N)
    if m == 1:
        return list(range(N))
    return [_gray(i >> p) << p | (i & ((1 << p) - 1)) for i in range(N)]
