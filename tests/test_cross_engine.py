"""Cross-engine agreement: exact torch engine vs Aer statevector vs PennyLane default.qubit.

Every layout on random angles, n up to 10, orders 1–3, Pauli circuits on up to 8 qubits
(including non-power-of-two N whose Gray-coded register uses multi-controlled RY):
max |difference| ≤ 1e-10 in float64. The three engines share nothing but the IR: the
engine multiplies Givens layers / compounds, Aer runs the Qiskit compilation (transpiled to
its basis), PennyLane runs its own gate definitions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quicq.circuits import brick, butterfly, code_indices, pauli, pyramid, sector_indices, x_layout
from quicq.engine import pauli_columns, sector_block

aer = pytest.importorskip("quicq.witnesses.aer")
pl = pytest.importorskip("quicq.witnesses.pennylane")

TOL = 1e-10
RNG = np.random.default_rng(2025)


def _layouts():
    yield from (
        ("pyramid", pyramid(4), (1, 2)),
        ("pyramid", pyramid(7), (1, 2, 3)),
        ("pyramid", pyramid(10), (1, 2, 3)),
        ("x", x_layout(6), (1, 2, 3)),
        ("x", x_layout(9), (1, 2)),
        ("brick", brick(5, 4), (1, 2, 3)),
        ("brick", brick(10, 3), (1, 2)),
        ("butterfly-fbs", butterfly(8), (1, 2, 3)),
        ("butterfly-rbs", butterfly(8, gate="rbs"), (1, 2, 3)),
        ("pyramid-fbs", pyramid(5, gate="fbs"), (2,)),
    )


@pytest.mark.parametrize("name,circ,orders", list(_layouts()), ids=lambda v: v if isinstance(v, str) else None)
def test_weight_k_blocks_agree_across_three_engines(name, circ, orders):
    th = RNG.uniform(-np.pi, np.pi, circ.n_params)
    for k in orders:
        ours = sector_block(circ, torch.tensor(th), k).numpy()
        idx = sector_indices(circ.n_qubits, k)
        a = aer.aer_block(circ, th, idx, idx)
        # PennyLane is the slow witness: every column is one simulation; sample columns on big sectors.
        cols = idx if len(idx) <= 40 else sorted(RNG.choice(len(idx), 40, replace=False).tolist())
        cols = [idx[c] for c in cols] if len(idx) > 40 else idx
        p = pl.pennylane_block(circ, th, cols, idx)
        sel = [idx.index(c) for c in cols]
        assert np.abs(ours - a).max() <= TOL, (name, k, np.abs(ours - a).max())
        assert np.abs(ours[:, sel] - p).max() <= TOL, (name, k, np.abs(ours[:, sel] - p).max())


@pytest.mark.parametrize("N,L", [(2, 1), (4, 2), (8, 1), (16, 2), (64, 1), (256, 2), (6, 1), (12, 2), (24, 1), (96, 1)])
def test_pauli_columns_agree_across_three_engines(N, L):
    c = pauli(N, L)
    assert c.n_qubits <= 8
    th = RNG.uniform(-np.pi, np.pi, c.n_params)
    K = min(N, 6)
    ours = pauli_columns(c, torch.tensor(th), K).numpy()
    code = code_indices(N)
    a = aer.aer_block(c, th, code[:K], code)
    p = pl.pennylane_block(c, th, code[:K], code)
    assert np.abs(ours - a).max() <= TOL
    assert np.abs(ours - p).max() <= TOL
    assert np.allclose(ours.T @ ours, np.eye(K), atol=1e-10)
