"""Circuit IR validation and layout shapes (docs/conventions.md, docs/design.md#layouts)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quicq.circuits import (
    Circuit, CircuitError, Gate, build_layout, brick, butterfly, check_angles, check_orders,
    pauli, pyramid, sector_indices, subsets, x_layout,
)


@pytest.mark.parametrize("n", range(2, 11))
def test_pyramid_counts_and_depth(n):
    c = pyramid(n)
    assert len(c.gates) == c.n_params == n * (n - 1) // 2
    assert c.depth == max(2 * n - 3, 1)
    assert all(g.adjacent and g.name == "rbs" for g in c.gates)


@pytest.mark.parametrize("n", range(2, 11))
def test_x_layout_counts_and_depth(n):
    c = x_layout(n)
    assert c.depth == n - 1
    assert len(c.gates) == (2 * n - 3 if n % 2 == 0 else 2 * n - 4)
    assert all(g.adjacent for g in c.gates)


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32])
def test_butterfly_counts_depth_and_default_fbs(n):
    c = butterfly(n)
    assert len(c.gates) == n // 2 * int(math.log2(n))
    assert butterfly(n, gate="rbs").depth == int(math.log2(n))
    assert len(c.layers(by_support=False)) == int(math.log2(n))
    assert c.depth >= int(math.log2(n))  # FBS also reads the qubits between its pair
    assert all(g.name == "fbs" for g in c.gates)
    assert c.compound_exact
    if n > 2:
        assert not butterfly(n, gate="rbs").compound_exact


def test_brick_alternates_even_odd():
    c = brick(5, 3)
    assert [g.qubits for g in c.gates] == [(0, 1), (2, 3), (1, 2), (3, 4), (0, 1), (2, 3)]
    assert c.depth == 3


def test_layers_are_disjoint_and_fbs_blocks_between():
    c = Circuit(4, (Gate("fbs", (0, 3), 0), Gate("rbs", (1, 2), 1)), 2)
    assert c.layers() == [[0], [1]]  # fbs reads qubits 1, 2 so they cannot run beside it
    for layer in pyramid(7).layers():
        qs = [q for i in layer for q in pyramid(7).gates[i].support]
        assert len(qs) == len(set(qs))


def test_equality_ignores_meta_and_compose_offsets_slots():
    a = pyramid(3)
    b = Circuit(3, a.gates, a.n_params, {"other": 1})
    assert a == b and hash(a) == hash(b)
    ab = a.compose(a)
    assert ab.n_params == 6 and ab.gates[3].param == 3
    assert a.compose(a, share_params=True).n_params == 3


def test_subset_order_is_lexicographic():
    assert subsets(4, 2) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert sector_indices(3, 1) == [4, 2, 1]  # qubit 0 is the most significant bit


@pytest.mark.parametrize(
    "make,msg",
    [
        (lambda: Circuit(3, (Gate("rbs", (0, 3), 0),), 1), "qubit index 3 out of range"),
        (lambda: Circuit(3, (Gate("cz", (1, 1)),), 0), "same qubit twice"),
        (lambda: Circuit(3, (Gate("rbs", (2, 1), 0),), 1), "increasing order"),
        (lambda: Circuit(3, (Gate("foo", (0,)),), 0), "unknown gate 'foo'"),
        (lambda: Circuit(3, (Gate("ry", (0,)),), 0), "needs an integer parameter slot"),
        (lambda: Circuit(3, (Gate("ry", (0,), 4),), 2), "slot 4 out of range"),
        (lambda: Circuit(3, (Gate("h", (0,), 0),), 1), "takes no angle"),
        (lambda: Circuit(3, (Gate("rbs", (0,), 0),), 1), "acts on 2 qubit"),
        (lambda: Circuit(3, (Gate("mcry", (0, 1), 0, (2,)),), 1), "0 or 1"),
        (lambda: Circuit(3, (Gate("mcry", (0, 1), 0),), 1), "one control value"),
        (lambda: Circuit(0, (), 0), "at least one qubit"),
        (lambda: pyramid(1), "n ≥ 2"),
        (lambda: butterfly(6), "power of two"),
        (lambda: brick(4, 0), "n_layers ≥ 1"),
        (lambda: build_layout("spiral", 4), "unknown layout 'spiral'"),
        (lambda: pauli(1, 1), "N ≥ 2"),
        (lambda: pauli(8, -1), "non-negative"),
    ],
)
def test_bad_circuits_raise_clear_errors(make, msg):
    with pytest.raises(CircuitError, match=msg):
        make()


def test_check_angles_and_orders():
    c = pyramid(3)
    check_angles(c, np.zeros((5, 3)))
    with pytest.raises(CircuitError, match=r"\(\.\.\., 3\)"):
        check_angles(c, np.zeros(4))
    with pytest.raises(CircuitError, match="non-finite"):
        check_angles(c, [0.0, float("nan"), 0.0])
    with pytest.raises(CircuitError, match="real"):
        check_angles(c, np.zeros(3, dtype=complex))
    assert check_orders(4, [2, 1]) == (1, 2)
    with pytest.raises(CircuitError, match="impossible"):
        check_orders(3, [4])
    with pytest.raises(CircuitError, match="at least one"):
        check_orders(3, [])


def test_circuits_pickle_and_deepcopy():
    import copy
    import pickle

    c = pyramid(4)
    assert copy.deepcopy(c) is c
    back = pickle.loads(pickle.dumps(c))
    assert back == c and dict(back.meta) == dict(c.meta)
