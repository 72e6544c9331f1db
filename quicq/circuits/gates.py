"""The one definition of every gate quicq knows.

Each gate is described once here: its name, arity, whether it takes an angle, the angle
frequency (used by the parameter-shift rule), whether it preserves Hamming weight, and how the
engines treat it (a Givens rotation on the unary sector, or a ±1 sign).
Compilers and engines look gates up in :data:`GATES`; none of them re-describes a gate.

Matrix conventions (docs/conventions.md), always in the computational basis of the gate's qubits
listed in the order the gate names them, first qubit written first (|q0 q1⟩):

* ``rbs(θ)`` on (a, b), a < b: identity on |00⟩, |11⟩; on span{|01⟩, |10⟩} the block
  [[cos θ, sin θ], [−sin θ, cos θ]].  On the unary sector this is the Givens matrix with
  G[a,a] = G[b,b] = cos θ, G[b,a] = sin θ, G[a,b] = −sin θ.
* ``fbs(θ)`` on (a, b): RBS whose off-diagonal terms carry (−1)^(set qubits strictly between).
* ``ry(θ)`` = exp(−iθY/2) = [[cos θ/2, −sin θ/2], [sin θ/2, cos θ/2]].
* ``mcry(θ)`` on (*controls, target) with a control state: RY on the target when the
  controls equal the control state (used to encode non-binary registers, see layouts.pauli).
* ``cz`` = diag(1, 1, 1, −1); ``z`` = diag(1, −1); ``x``; ``h``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GateSpec:
    """Static facts about one gate type."""

    name: str
    n_qubits: int | None  # None: variable arity (mcry)
    parametric: bool
    # Angle frequency ω: every output entry is a + b·cos(ωθ) + c·sin(ωθ).
    # Parameter shift: ∂f = ω·[f(θ + π/(4ω)·2) − f(θ − π/(4ω)·2)] / 2 … see shift_rule().
    frequency: float
    hw_preserving: bool  # maps each Hamming-weight sector to itself
    description: str
    # A Givens rotation between its two (end) qubits on the unary sector: RBS and FBS.
    givens: bool = False
    # Diagonal ±1: −1 exactly on the basis states where all its qubits are 1 (Z, CZ).
    sign: bool = False


GATES: dict[str, GateSpec] = {
    "rbs": GateSpec("rbs", 2, True, 1.0, True, "reconfigurable beam splitter (Givens rotation)", True),
    "fbs": GateSpec("fbs", 2, True, 1.0, True, "fermionic beam splitter (RBS with parity signs)", True),
    "ry": GateSpec("ry", 1, True, 0.5, False, "Y rotation exp(-i θ Y / 2)"),
    "mcry": GateSpec("mcry", None, True, 0.5, False, "multi-controlled Y rotation"),
    "cz": GateSpec("cz", 2, False, 0.0, True, "controlled Z", sign=True),
    "z": GateSpec("z", 1, False, 0.0, True, "Pauli Z", sign=True),
    "x": GateSpec("x", 1, False, 0.0, False, "Pauli X"),
    "h": GateSpec("h", 1, False, 0.0, False, "Hadamard"),
}


HW_PRESERVING_GATES: frozenset[str] = frozenset(n for n, s in GATES.items() if s.hw_preserving)
"""Names of the gates that map every Hamming-weight sector to itself (from :data:`GATES`)."""

GIVENS_GATES: frozenset[str] = frozenset(n for n, s in GATES.items() if s.givens)
"""Names of the gates that act as a Givens rotation of their end qubits on the unary sector."""

SIGN_GATES: frozenset[str] = frozenset(n for n, s in GATES.items() if s.sign)
"""Names of the diagonal gates that flip the sign of the states with all their qubits set."""


def shift_rule(name: str) -> tuple[float, float]:
    """Return (shift s, factor c) with ∂f/∂θ = c·[f(θ + s) − f(θ − s)] for gate ``name``.

    For frequency ω the two-term rule is s = π/(2ω), c = ω/2: RBS/FBS (ω = 1) give
    s = π/2, c = 1/2; RY (ω = 1/2) gives s = π, c = 1/4 (docs/design.md#gradients).
    """
    if name not in GATES:
        raise KeyError(f"unknown gate {name!r}; known gates: {sorted(GATES)}")
    w = GATES[name].frequency
    if w == 0:
        raise ValueError(f"gate {name!r} has no angle")
    return math.pi / (2 * w), w / 2


def rbs_matrix(theta: float) -> np.ndarray:
    """4×4 RBS matrix in the |q_a q_b⟩ basis (a written first)."""
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[1, 0, 0, 0], [0, c, s, 0], [0, -s, c, 0], [0, 0, 0, 1]], dtype=float)


def ry_matrix(theta: float) -> np.ndarray:
    """2×2 RY matrix."""
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    return np.array([[c, -s], [s, c]], dtype=float)


CZ_MATRIX = np.diag([1.0, 1.0, 1.0, -1.0])
Z_MATRIX = np.diag([1.0, -1.0])
X_MATRIX = np.array([[0.0, 1.0], [1.0, 0.0]])
H_MATRIX = np.array([[1.0, 1.0], [1.0, -1.0]]) / math.sqrt(2.0)

# RBS(θ) = (H⊗H) · CZ · (RY(θ) ⊗ RY(−θ)) · CZ · (H⊗H)   (checked in tests/test_conventions.py).
# Used wherever a compiler must spell RBS in standard gates (OpenQASM gate bodies, Qiskit
# definitions, PennyLane decompositions): one decomposition, written once.
RBS_DECOMPOSITION: tuple[tuple[str, tuple[int, ...], float], ...] = (
    ("h", (0,), 0.0),
    ("h", (1,), 0.0),
    ("cz", (0, 1), 0.0),
    ("ry", (0,), 1.0),
    ("ry", (1,), -1.0),
    ("cz", (0, 1), 0.0),
    ("h", (0,), 0.0),
    ("h", (1,), 0.0),
)
"""(gate, local qubits, angle multiplier) steps whose product, in order, is RBS(θ)."""


Step = tuple[str, tuple[int, ...], float]


def fbs_decomposition(width: int) -> tuple[Step, ...]:
    """FBS(θ) on ``width`` consecutive qubits (local 0 = a, width−1 = b) as (gate, qubits, mult) steps.

    FBS_ab(θ) = P · RBS_ab(θ) · P with P = ∏_{a<c<b} CZ(c, a): on |1_a 0_b⟩ P gives the parity
    sign of the qubits strictly between, on |0_a 1_b⟩ nothing, so the off-diagonal terms pick
    it up once and the diagonal ones twice; |00⟩, |11⟩ are untouched. The ``rbs`` step is
    spelled by compilers with :data:`RBS_DECOMPOSITION` or as their own named RBS gate.
    Width 2 is a plain RBS. Every compiler (OpenQASM, Qiskit, PennyLane) uses this one list.
    """
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 2:
        raise ValueError(f"an fbs gate spans at least 2 consecutive qubits, got width={width!r}")
    parity = tuple(("cz", (c, 0), 0.0) for c in range(1, int(width) - 1))
    return parity + (("rbs", (0, int(width) - 1), 1.0),) + parity
