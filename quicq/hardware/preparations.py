"""Input-state preparations and basis changes of tomography circuits, as quicq IR gates.

Tomography circuits are the measured circuit with a prefix (a basis state, or an equal
superposition of two basis states) and a suffix (a basis change before the Z measurement). They
stay IR gates, so every backend compiles them like any other quicq circuit.
"""

from __future__ import annotations

from collections.abc import Sequence

from quicq.circuits.ir import Gate

__all__ = ["basis_prep", "pair_prep", "x_readout"]


def pair_prep(n: int, a: Sequence[int], b: Sequence[int], *, minus: bool = False) -> list[Gate]:
    """IR gates preparing (|a⟩ ± |b⟩)/√2 from |0…0⟩ (a, b: sets of qubits, a ≠ b).

    On the qubits where a and b differ: H on the first, then a CNOT from it to each other one
    (CNOT = H·CZ·H on the target), giving (|0⟩ ± |a⊕b⟩)/√2 (an X before the H gives −); then
    X on the qubits of a maps this to (|a⟩ ± |b⟩)/√2 with no extra sign.
    """
    diff = sorted(set(a) ^ set(b))
    if not diff:
        raise ValueError("pair_prep needs two different basis states")
    d0 = diff[0]
    gates = [Gate("x", (d0,))] if minus else []
    gates.append(Gate("h", (d0,)))
    for t in diff[1:]:
        gates += [Gate("h", (t,)), Gate("cz", (d0, t)), Gate("h", (t,))]
    gates += [Gate("x", (q,)) for q in sorted(a)]
    return gates


def basis_prep(bits: Sequence[int]) -> list[Gate]:
    """X on each listed qubit: |0…0⟩ → the basis state with those qubits set."""
    return [Gate("x", (q,)) for q in sorted(bits)]


def x_readout(n: int) -> list[Gate]:
    """H on every qubit: a following Z measurement reads the X basis."""
    return [Gate("h", (q,)) for q in range(n)]
