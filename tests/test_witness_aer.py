"""Aer witness: blocks from Aer statevectors equal the dense reference (and the exact engine)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qiskit_aer")

from _dense_reference import dense_block  # noqa: E402

from quicq.circuits import (  # noqa: E402
    Circuit,
    CircuitError,
    Gate,
    basis_index,
    butterfly,
    code_indices,
    pauli,
    pyramid,
    sector_indices,
    x_layout,
)
from quicq.witnesses.aer import _reverse_bits, aer_block, aer_sector_block, aer_unary_block  # noqa: E402

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("circ", [pyramid(5), x_layout(4), butterfly(4), butterfly(8, "rbs")],
                         ids=lambda c: f"{c.meta['layout']}-{c.n_qubits}-{c.meta['gate']}")
def test_unary_and_sector_blocks_match_dense_reference(circ):
    th = RNG.uniform(-np.pi, np.pi, circ.n_params)
    n = circ.n_qubits
    one = sector_indices(n, 1)
    np.testing.assert_allclose(aer_unary_block(circ, th), dense_block(circ, th, one, one), atol=1e-12)
    two = sector_indices(n, 2)
    np.testing.assert_allclose(aer_sector_block(circ, th, 2), dense_block(circ, th, two, two), atol=1e-12)


def test_rectangular_block_of_a_pauli_circuit_with_mcry():
    circ = pauli(12, 2)  # 3-level register: Gray-coded, uses mcry
    th = RNG.uniform(-np.pi, np.pi, circ.n_params)
    code = code_indices(12)
    got = aer_block(circ, th, code[:5], code)
    assert got.shape == (12, 5)
    np.testing.assert_allclose(got, dense_block(circ, th, code[:5], code), atol=1e-12)
    np.testing.assert_allclose(got.T @ got, np.eye(5), atol=1e-12)  # never leaves the code space


def test_batched_angles_equal_row_by_row():
    circ = pyramid(4)
    th = RNG.uniform(-np.pi, np.pi, (3, circ.n_params))
    batch = aer_unary_block(circ, th)
    assert batch.shape == (3, 4, 4)
    for b in range(3):
        one = sector_indices(4, 1)
        np.testing.assert_allclose(batch[b], dense_block(circ, th[b], one, one), atol=1e-12)


def test_index_convention_is_quicq_msb_first():
    """X on qubit 0 only: |e_0⟩ → |e_0⟩ with quicq index 2^(n−1) (Qiskit index 1)."""
    circ = Circuit(3, (Gate("x", (1,)),), 0)
    e0, e01 = basis_index((0,), 3), basis_index((0, 1), 3)
    got = aer_block(circ, [], [e0], [e0, e01])
    np.testing.assert_allclose(got, [[0.0], [1.0]], atol=1e-15)
    assert _reverse_bits(e0, 3) == 1 and _reverse_bits(0b110, 3) == 0b011


def test_bad_arguments():
    circ = pyramid(3)
    with pytest.raises(CircuitError, match="not a basis index"):
        aer_block(circ, np.zeros(3), [8], [0])
    with pytest.raises(CircuitError, match="expected shape"):
        aer_block(circ, np.zeros(2), [1], [1])
    with pytest.raises(CircuitError, match="non-finite"):
        aer_unary_block(circ, [0.0, np.nan, 0.0])
    with pytest.raises(CircuitError, match="impossible"):
        aer_sector_block(circ, np.zeros(3), 4)


def test_aer_agrees_with_the_exact_engine():
    engine = pytest.importorskip("quicq.engine")
    torch = pytest.importorskip("torch")
    circ = butterfly(8)
    th = RNG.uniform(-np.pi, np.pi, circ.n_params)
    for k in (1, 2):
        want = engine.sector_block(circ, torch.tensor(th), k).numpy()
        np.testing.assert_allclose(aer_sector_block(circ, th, k), want, atol=1e-12)
