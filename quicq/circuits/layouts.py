"""Layout builders: the circuit families quicq adapters are made of (docs/design.md#layouts).

Every builder returns a :class:`~quicq.circuits.ir.Circuit` whose ``meta`` records the
layout and its arguments, with one parameter slot per parametric gate, slots numbered in
gate order. All-zero angles give the identity for RBS/FBS layouts.
"""

from __future__ import annotations

import math

from quicq.circuits.ir import Circuit, CircuitError, Gate


def _need_n(n: int, minimum: int = 2) -> None:
    if not isinstance(n, int) or n < minimum:
        raise CircuitError(f"a layout needs an integer n ≥ {minimum} qubits, got {n!r}")


def _chain(n: int, pairs: list[tuple[int, int]], gate: str, meta: dict) -> Circuit:
    gates = tuple(Gate(gate, p, i) for i, p in enumerate(pairs))
    return Circuit(n, gates, len(gates), meta)


def pyramid(n: int, gate: str = "rbs") -> Circuit:
    """Pyramid of n(n−1)/2 nearest-neighbour gates, depth 2n−3; reaches all of SO(n).

    Gate order: diagonal j = 0..n−2 holds pairs (j, j+1), (j−1, j), …, (0, 1). The Givens
    compiler (:mod:`quicq.circuits.givens`) fills exactly these slots.
    """
    _need_n(n)
    pairs = [(i, i + 1) for j in range(n - 1) for i in range(j, -1, -1)]
    return _chain(n, pairs, gate, {"layout": "pyramid", "n": n, "gate": gate})


def x_layout(n: int, gate: str = "rbs") -> Circuit:
    """'X' layout: two crossing diagonals of nearest-neighbour gates, depth n−1.

    Pair (i, i+1) is used at steps i and n−2−i (once where they coincide), which gives the
    2n−3 gates of docs/design.md#layouts for even n. For odd n the two middle pairs collide at two steps;
    one gate is dropped at each, leaving 2n−4 gates at depth n−1.
    """
    _need_n(n)
    pairs: list[tuple[int, int]] = []
    for t in range(n - 1):
        busy: set[int] = set()
        for i in sorted({t, n - 2 - t}):
            if i in busy or i + 1 in busy:
                continue
            pairs.append((i, i + 1))
            busy.update((i, i + 1))
    return _chain(n, pairs, gate, {"layout": "x", "n": n, "gate": gate})


def butterfly(n: int, gate: str = "fbs") -> Circuit:
    """Butterfly: (n/2)·log2 n gates in log2 n layers on pairs (i, i + 2^s), n a power of 2.

    The pairs are not nearest neighbours, so the default gate is FBS: only then does the
    weight-k sector act as the compound C_k(U) (docs/conventions.md). ``gate="rbs"`` is allowed for
    order-1 use, and the engine simulates it as the plain RBS circuit it is.
    """
    _need_n(n)
    if n & (n - 1):
        raise CircuitError(f"butterfly needs n a power of two, got n={n}")
    pairs = []
    for s in range(int(math.log2(n)) - 1, -1, -1):
        stride = 1 << s
        for i in range(n):
            if not i & stride:
                pairs.append((i, i + stride))
    return _chain(n, pairs, gate, {"layout": "butterfly", "n": n, "gate": gate})


def brick(n: int, n_layers: int, gate: str = "rbs") -> Circuit:
    """Brick wall: ``n_layers`` layers alternating even pairs (0,1),(2,3)… and odd (1,2),(3,4)…"""
    _need_n(n)
    if not isinstance(n_layers, int) or n_layers < 1:
        raise CircuitError(f"brick needs n_layers ≥ 1, got {n_layers!r}")
    pairs = []
    for layer in range(n_layers):
        start = layer % 2
        pairs.extend((i, i + 1) for i in range(start, n - 1, 2))
    return _chain(n, pairs, gate, {"layout": "brick", "n": n, "n_layers": n_layers, "gate": gate})


LAYOUTS = {"pyramid": pyramid, "x": x_layout, "butterfly": butterfly, "brick": brick}


def build_layout(name: str, n: int, **kwargs) -> Circuit:
    """Build an RBS/FBS layout by name (``pyramid``, ``x``, ``butterfly``, ``brick``)."""
    try:
        fn = LAYOUTS[name]
    except KeyError:
        raise CircuitError(f"unknown layout {name!r}; choose one of {sorted(LAYOUTS)}") from None
    return fn(n, **kwargs)
