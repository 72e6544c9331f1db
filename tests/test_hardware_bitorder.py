"""Sampler bits → quicq basis indices: checked against Qiskit's own bitstrings (qubit 0 = MSB in quicq)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qiskit")
from qiskit.primitives import BitArray  # noqa: E402

from quicq.circuits.bitorder import basis_index  # noqa: E402
from quicq.hardware._qiskit import bitarray_indices, unpacked_clbits  # noqa: E402
from quicq.hardware.outcome import Outcome  # noqa: E402


@pytest.mark.parametrize("n", [1, 3, 8, 9, 17, 22])  # one byte, several bytes, beyond the lookup table
def test_bitarray_indices_match_qiskit_bitstrings(n):
    rng = np.random.default_rng(n)
    clbits = rng.integers(0, 2, (2, 50, n)).astype(bool)  # column c = classical bit c = IR qubit c
    ba = BitArray.from_bool_array(clbits, order="little")
    got = bitarray_indices(ba, n)
    assert got.shape == (2, 50)
    # Qiskit writes classical bit 0 rightmost; quicq's index has qubit 0 as its most significant bit
    want = np.array([[int(s[::-1], 2) for s in ba[b].get_bitstrings()] for b in range(2)])
    assert np.array_equal(got, want)
    assert np.array_equal(unpacked_clbits(ba), clbits)
    assert np.array_equal(Outcome(n, 50, indices=got).bits.astype(bool), clbits)


def test_a_single_set_qubit_is_its_basis_index():
    n = 5
    for q in range(n):
        bits = np.zeros((1, 1, n), dtype=bool)
        bits[..., q] = True
        assert bitarray_indices(BitArray.from_bool_array(bits, order="little"), n)[0, 0] == basis_index((q,), n)
