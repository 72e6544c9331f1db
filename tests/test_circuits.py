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


def test_gates_normalise_and_reject_bad_types_with_circuit_errors():
    import numpy as np

    from quicq.errors import QuicqError

    g = Gate("rbs", [np.int64(0), 1], np.int64(0))
    assert g == Gate("rbs", (0, 1), 0) and type(g.qubits[0]) is int and type(g.param) is int
    for bad in [lambda: Gate(["rbs"], (0, 1)), lambda: Gate("rbs", (0.0, 1)), lambda: Gate("rbs", (0, True)),
                lambda: Gate("ry", (0,), 1.0), lambda: Gate("mcry", (0, 1), 0, [[1]]),
                lambda: Circuit(True, (), 0), lambda: Circuit(2, "rbs", 0), lambda: Circuit(2, (), 0, meta=[1])]:
        with pytest.raises(CircuitError) as info:
            bad()
        assert isinstance(info.value, QuicqError)


def test_hw_gate_set_and_fbs_decomposition_come_from_the_gate_table():
    from quicq.circuits import GATES, HW_PRESERVING_GATES, fbs_decomposition

    assert HW_PRESERVING_GATES == {n for n, s in GATES.items() if s.hw_preserving} == {"rbs", "fbs", "cz", "z"}
    c = Circuit(3, (Gate("rbs", (0, 1), 0), Gate("h", (2,)), Gate("ry", (1,), 0)), 1)
    assert c.non_hw_gates() == ["h", "ry"] and not c.hw_preserving
    assert fbs_decomposition(2) == (("rbs", (0, 1), 1.0),)
    assert fbs_decomposition(4) == (("cz", (1, 0), 0.0), ("cz", (2, 0), 0.0), ("rbs", (0, 3), 1.0),
                                    ("cz", (1, 0), 0.0), ("cz", (2, 0), 0.0))


def test_bit_order_helpers_agree():
    import numpy as np

    from quicq.circuits import bitorder as bo

    n = 4
    for idx in range(1 << n):
        bits = bo.bits_of(idx, n)
        assert bo.basis_index(bo.set_qubits(idx, n), n) == idx == int(bo.bits_to_index(np.array(bits)))
        assert int(format(idx, f"0{n}b")[::-1], 2) == bo.qiskit_index(idx, n) == bo.qiskit_permutation(n)[idx]
    assert bo.qubit_mask(0, 3) == 0b100


@pytest.mark.parametrize("module, extra", [
    ("quicq.circuits.qiskit_io", "qiskit"), ("quicq.witnesses.aer", "qiskit"),
    ("quicq.circuits.pennylane_io", "pennylane"), ("quicq.witnesses.pennylane", "pennylane"),
])
def test_missing_extras_raise_the_pip_line(module, extra):
    """In a subprocess where qiskit/pennylane cannot be imported, quicq's core still imports and
    the optional paths name the install command."""
    import subprocess
    import sys

    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('qiskit', 'qiskit_aer', 'pennylane'):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
import quicq.circuits
from quicq.circuits import pyramid, to_qasm3
to_qasm3(pyramid(3))
try:
    import {module} as m
    if {module!r}.endswith('qasm_reader'):
        pass
    m.pennylane_block(pyramid(3), [0, 0, 0], [1], [1]) if hasattr(m, 'pennylane_block') else None
    m.to_pennylane(pyramid(3)) if hasattr(m, 'to_pennylane') else None
    m.aer_unary_block(pyramid(3), [0, 0, 0]) if hasattr(m, 'aer_unary_block') else None
except ImportError as exc:
    from quicq._optional import MissingDependencyError
    assert isinstance(exc, MissingDependencyError), type(exc)
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"pip install 'quicq[{extra}]'" in out.stdout


def test_from_qasm_without_qiskit_names_the_extra():
    import subprocess
    import sys

    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'qiskit':
            raise ModuleNotFoundError(name, name=name)
sys.meta_path.insert(0, Block())
from quicq.circuits import from_qasm
try:
    from_qasm('OPENQASM 2.0;\\nqreg q[1];\\n')
except ImportError as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "pip install 'quicq[qiskit]'" in out.stdout, out.stderr
