"""Weight-k blocks of Hamming-weight-preserving circuits.

Two exact routes, chosen per circuit:

* **compound** — when every RBS is nearest-neighbour (FBS, Z, CZ anywhere), the weight-k
  action is exactly C_k(U) of the unary block U (docs/conventions.md), computed by
  :func:`quicq.engine.compound.compound`.
* **sector simulation** — otherwise (a non-adjacent plain RBS is *not* a compound), each gate
  is applied as what it is to the C(n,k)-dimensional sector: a gate on (a, b) mixes the pair
  of subsets S, S△{a, b} that hold exactly one of a, b; FBS adds the parity sign of the
  qubits strictly between; Z and CZ are sign flips. One vectorised row update per gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch

from quicq.circuits.gates import GIVENS_GATES, SIGN_GATES
from quicq.circuits.ir import Circuit, CircuitError, check_orders, subsets
from quicq.engine._plan import Angles, as_angles
from quicq.engine.compound import compound
from quicq.engine.unary import unary_block


@lru_cache(maxsize=128)
def _sector_plan(circuit: Circuit, k: int):
    """Per gate: (kind, slot, partner index, mix mask, off-diagonal sign, diagonal sign)."""
    subs = subsets(circuit.n_qubits, k)
    where = {s: i for i, s in enumerate(subs)}
    sets = [set(s) for s in subs]
    D = len(subs)
    steps = []
    for g in circuit.gates:
        if g.name in GIVENS_GATES:
            a, b = g.qubits
            partner = list(range(D))
            # role +1: the |01⟩ state (b set, a not); −1: the |10⟩ state (a set, b not); 0: untouched.
            role = [0] * D
            sgn = [1.0] * D
            for i, s in enumerate(sets):
                if (a in s) != (b in s):
                    partner[i] = where[tuple(sorted(s ^ {a, b}))]
                    role[i] = 1 if b in s else -1
                    if g.name == "fbs":
                        sgn[i] = -1.0 if sum(a < q < b for q in s) % 2 else 1.0
            steps.append(("mix", g.param, torch.tensor(partner), torch.tensor(role, dtype=torch.float64),
                          torch.tensor(sgn, dtype=torch.float64)))
        elif g.name in SIGN_GATES:
            diag = [(-1.0 if all(q in s for q in g.qubits) else 1.0) for s in sets]
            steps.append(("sign", None, None, None, torch.tensor(diag, dtype=torch.float64)))
        else:
            raise CircuitError(f"gate {g.name!r} does not preserve Hamming weight; no weight-{k} block")
    return tuple(steps)


def _simulate_sector(circuit: Circuit, th: torch.Tensor, k: int) -> torch.Tensor:
    D = len(subsets(circuit.n_qubits, k))
    batch = th.shape[:-1]
    B = torch.eye(D, dtype=th.dtype, device=th.device).expand(*batch, D, D)
    for kind, slot, partner, role, sgn in _sector_plan(circuit, k):
        sgn = sgn.to(th.device, th.dtype)
        if kind == "sign":
            B = B * sgn[:, None]
            continue
        role = role.to(th.device, th.dtype)
        t = th[..., slot][..., None, None]
        c, s = torch.cos(t), torch.sin(t)
        mixed = role.abs()[:, None]
        # |01⟩ row: c·self + s·partner;  |10⟩ row: c·self − s·partner (docs/conventions.md block).
        B = (1 - mixed + mixed * c) * B + (role * sgn)[:, None] * s * B.index_select(-2, partner.to(th.device))
    return B


def sector_block(circuit: Circuit, angles: Angles, k: int, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The (..., C(n,k), C(n,k)) weight-k block over lexicographic k-subsets (docs/conventions.md)."""
    th = as_angles(circuit, angles, dtype=dtype)
    (k,) = check_orders(circuit.n_qubits, [k])
    if not circuit.hw_preserving:
        raise CircuitError(f"weight-k blocks need a Hamming-weight-preserving circuit; found {circuit.non_hw_gates()}")
    if circuit.compound_exact:
        return compound(unary_block(circuit, th), k)
    return _simulate_sector(circuit, th, k)


def sector_blocks(circuit: Circuit, angles: Angles, orders: Sequence[int], *,
                  dtype: torch.dtype | None = None) -> list[torch.Tensor]:
    """Weight-k blocks for each order in ``sorted(orders)``, sharing one unary computation."""
    th = as_angles(circuit, angles, dtype=dtype)
    ks = check_orders(circuit.n_qubits, orders)
    if circuit.compound_exact:
        U = unary_block(circuit, th)
        return [compound(U, k) for k in ks]
    return [sector_block(circuit, th, k) for k in ks]
