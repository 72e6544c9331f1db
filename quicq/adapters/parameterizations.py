"""Parameterizations of a QuIC block's n×n orthogonal matrix, one object each.

In the spirit of ``torch.nn.utils.parametrizations``: each parameterization knows its parameter
shape, its starting point, its forward map (parameters → orthogonal A), its inverse (orthogonal
matrix → parameters; the Givens compiler for circuits), its degrees of freedom, and the circuit
that runs on hardware. Layers never branch on the parameterization's name.

**Starting points (why the circuits do not start at θ = 0).** At θ = 0 every gate's tangent is
the generator E_ab − E_ba of its own qubit pair, so a nearest-neighbour layout (pyramid, brick,
X) has a tangent of rank n − 1 at the identity, whatever its depth. Instead each circuit chart
starts at a *sorting-network point* θ₀ ∈ {0, π/2}^P: RBS(π/2) swaps its two modes (with a
sign), so A₀ = A(θ₀) is a signed permutation, and gate g's tangent at θ₀ is ±(E_ij − E_ji) for
the pair of *logical* modes (i, j) that sit on its qubits at that moment. For the pyramid (and
brick(n, n)) with every gate at π/2 the network is a reduced word of the reversal, in which
every pair of modes meets exactly once: the tangent is an orthonormal basis of so(n) — rank
n(n−1)/2, condition number 1 (a Haar-random start gives 60–260, a random-angle start 1e9+).
The adapter applies A(θ)·A₀ᵀ, so it is the identity at the start; A₀ᵀ is a signed permutation,
applied exactly on the host (its compounds are signed permutations too). The trainable
parameters are the angles of the circuit that runs on hardware; a backend estimates the
circuit's blocks and the layer composes them with the fixed C_k(A₀)ᵀ, so parameter-shift
training uses the same chart.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import ClassVar

import numpy as np
import torch

from quicq.adapters.config import CHART_STARTS as STARTS
from quicq.circuits import Circuit, brick, butterfly, pyramid, x_layout
from quicq.engine.exterior import flush_tiny
from quicq.errors import QuicqError
from quicq.circuits.gates import GIVENS_GATES

__all__ = ["PARAMETERIZATIONS", "STARTS", "CayleyChart", "CircuitChart", "Parameterization",
           "ParameterizationError", "get_parameterization"]



class ParameterizationError(QuicqError, ValueError):
    """A parameterization cannot be built, or cannot represent a requested matrix."""


class Parameterization:
    """One n×n orthogonal block A per adapter block, from a parameter tensor.

    Subclasses set ``name``, ``lr_hint`` (AdamW learning rate that worked on MiniLM/RT, see
    README), and implement the methods below. ``params`` tensors have shape
    (N', *param_shape) with N' the number of distinct blocks.
    """

    name: ClassVar[str] = ""
    lr_hint: ClassVar[float] = 1e-3
    #: True when every matrix of SO(n) has parameters (so :meth:`from_matrix` always works).
    covers_so_n: ClassVar[bool] = False

    def __init__(self, n: int, n_layers: int = 2, start: str = "sorting") -> None:
        if not isinstance(n, int) or n < 2:
            raise ParameterizationError(f"a block needs n ≥ 2 qubits, got {n!r}")
        if start not in STARTS:
            raise ParameterizationError(f"unknown start {start!r}; choose one of {list(STARTS)}")
        self.n, self.n_layers, self.start = n, n_layers, start

    # -- to be provided ----------------------------------------------------------------------
    @property
    def param_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def circuit(self) -> Circuit:
        """The circuit of one block (what a backend runs)."""
        raise NotImplementedError

    def start_params(self) -> torch.Tensor:
        """The starting parameters θ₀ (float64, shape ``param_shape``); :meth:`matrix` is I there."""
        raise NotImplementedError

    def circuit_matrix(self, params: torch.Tensor) -> torch.Tensor:
        """The circuit's own unary block at ``params`` (before the reference factor)."""
        raise NotImplementedError

    def from_matrix(self, A: torch.Tensor) -> torch.Tensor:
        """Parameters with :meth:`matrix` = A (shape (N', n, n) → (N', *param_shape))."""
        raise NotImplementedError

    def circuit_angles(self, params: torch.Tensor) -> torch.Tensor:
        """Angles of :attr:`circuit` whose unary block is :meth:`circuit_matrix` (N', n_params)."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        """Stored parameters per block."""
        return math.prod(self.param_shape)

    @property
    def dof(self) -> int:
        """Degrees of freedom: the tangent rank at the start (≤ n(n−1)/2)."""
        return min(self.n_params, self.n * (self.n - 1) // 2)

    def reference(self) -> torch.Tensor | None:
        """A₀ = :meth:`circuit_matrix` at the start (float64), or None when it is the identity."""
        return None

    def matrix(self, params: torch.Tensor) -> torch.Tensor:
        """A = circuit_matrix(params)·A₀ᵀ (N', n, n), computed in float64, tiny entries flushed,
        returned in ``params``' dtype. Orthogonal; the identity at :meth:`start_params`."""
        A = self.circuit_matrix(params.to(torch.float64) if params.dtype != torch.float64 else params)
        ref = self.reference()
        if ref is not None:
            A = A @ ref.to(A.device).t()
        return flush_tiny(A, params.dtype).to(params.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, params={self.n_params}, start={self.start!r})"


def _best_start(circuit: Circuit, tries: int = 64) -> tuple[np.ndarray, int]:
    """θ₀ ∈ {0, π/2}^P maximising the number of distinct logical pairs the gates touch.

    At such a point the tangent rank equals that number and the tangent's singular values are
    √(times a pair is touched) — all 1 when no pair repeats. Tried: all π/2, all 0, then seeded
    random mixes (the X layout needs them); the first best wins, so the result is deterministic.
    """
    pairs = [g.qubits for g in circuit.gates if g.name in GIVENS_GATES]
    slots = [g.param for g in circuit.gates if g.name in GIVENS_GATES]

    def score(swap: np.ndarray) -> int:
        pos = list(range(circuit.n_qubits))  # pos[q] = logical mode on qubit q
        met = set()
        for (a, b), s in zip(pairs, slots):
            met.add((min(pos[a], pos[b]), max(pos[a], pos[b])))
            if swap[s]:
                pos[a], pos[b] = pos[b], pos[a]
        return len(met)

    P = circuit.n_params
    target = min(P, circuit.n_qubits * (circuit.n_qubits - 1) // 2)
    rng = np.random.default_rng(0)
    candidates = [np.ones(P, bool), np.zeros(P, bool)] + [rng.random(P) < 0.5 for _ in range(tries)]
    best, best_score = candidates[0], -1
    for c in candidates:
        sc = score(c)
        if sc > best_score:
            best, best_score = c, sc
        if sc == target:
            break
    return np.where(best, math.pi / 2, 0.0), best_score


@lru_cache(maxsize=256)
def _start_and_reference(circuit: Circuit, start: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    from quicq.engine import unary_block

    if start == "identity":
        return torch.zeros(circuit.n_params, dtype=torch.float64), None
    th0 = torch.as_tensor(_best_start(circuit)[0], dtype=torch.float64)
    if not bool(th0.any()):
        return th0, None
    ref = unary_block(circuit, th0).round()  # a signed permutation: round away cos(π/2) ≈ 6e-17
    return th0, ref


class CircuitChart(Parameterization):
    """A Givens (RBS/FBS) circuit's angles: θ ∈ R^P per block; A(θ) its unary block."""

    lr_hint = 3e-3

    def _build(self) -> Circuit:
        raise NotImplementedError

    @property
    def circuit(self) -> Circuit:
        return _cached_circuit(type(self), self.n, self.n_layers)

    @property
    def param_shape(self) -> tuple[int, ...]:
        return (self.circuit.n_params,)

    def start_params(self) -> torch.Tensor:
        return _start_and_reference(self.circuit, self.start)[0].clone()

    def reference(self) -> torch.Tensor | None:
        return _start_and_reference(self.circuit, self.start)[1]

    def circuit_matrix(self, params: torch.Tensor) -> torch.Tensor:
        from quicq.engine import unary_block

        return unary_block(self.circuit, params)

    def circuit_angles(self, params: torch.Tensor) -> torch.Tensor:
        return params

    def from_matrix(self, A: torch.Tensor) -> torch.Tensor:
        if not self.covers_so_n:
            raise ParameterizationError(
                f"the {self.name} layout with n={self.n} does not reach every orthogonal matrix, so a given "
                "matrix has no angles in general; use parameterization='pyramid' to import matrices"
            )
        from quicq.circuits.givens import givens_decompose

        ref = self.reference()
        rows = []
        for Ai in A.detach().to(torch.float64).cpu():
            target = Ai @ ref if ref is not None else Ai  # A(θ) = A·A₀
            circ, th = givens_decompose(target.numpy(), layout=self._givens_layout)
            if circ != self.circuit:
                raise ParameterizationError(
                    f"matrix has determinant −1; the {self.name} chart only reaches SO({self.n})"
                )
            rows.append(torch.as_tensor(th, dtype=torch.float64))
        return torch.stack(rows)


class PyramidChart(CircuitChart):
    """Nearest-neighbour pyramid, n(n−1)/2 RBS angles, all of SO(n); hardware-native on a line."""

    name = "pyramid"
    covers_so_n = True
    _givens_layout = "pyramid"

    def _build(self) -> Circuit:
        return pyramid(self.n)


class XChart(CircuitChart):
    """Two crossing nearest-neighbour diagonals: 2n−3 angles (2n−4 for odd n), depth n−1."""

    name = "x"
    lr_hint = 3e-2

    def _build(self) -> Circuit:
        return x_layout(self.n)

    @property
    def dof(self) -> int:
        """Tangent rank at the start. For odd n the layout repeats its middle pair in two
        consecutive gates (two angles, one rotation), and the best sorting-network start then
        touches one pair fewer than there are independent angles (n = 5: 4 of 5)."""
        if self.start == "identity":
            return self.n - 1
        return _best_start(self.circuit)[1]


class ButterflyChart(CircuitChart):
    """Butterfly of FBS gates, (n/2)·log2 n angles (n a power of two); distinct pairs, so the
    identity start already has full tangent rank."""

    name = "butterfly"
    lr_hint = 3e-2

    def __init__(self, n: int, n_layers: int = 2, start: str = "sorting") -> None:
        super().__init__(n, n_layers, start)
        if n & (n - 1):
            raise ParameterizationError(f"butterfly needs n a power of two, got n={n}")

    def _build(self) -> Circuit:
        return butterfly(self.n)


class BrickChart(CircuitChart):
    """``n_layers`` alternating layers of nearest-neighbour RBS; covers SO(n) when n_layers ≥ n."""

    name = "brick"
    lr_hint = 3e-2
    _givens_layout = "brick"

    def __init__(self, n: int, n_layers: int = 2, start: str = "sorting") -> None:
        if not isinstance(n_layers, int) or n_layers < 1:
            raise ParameterizationError(f"brick needs n_layers ≥ 1, got {n_layers!r}")
        super().__init__(n, n_layers, start)

    @property
    def covers_so_n(self) -> bool:  # type: ignore[override]
        return self.n_layers == self.n  # the Givens compiler fills exactly brick(n, n)

    def _build(self) -> Circuit:
        return brick(self.n, self.n_layers)


@lru_cache(maxsize=512)
def _cached_circuit(cls: type[CircuitChart], n: int, n_layers: int) -> Circuit:
    obj = cls.__new__(cls)
    obj.n, obj.n_layers = n, n_layers
    return obj._build()


class CayleyChart(Parameterization):
    """Cayley map of the QuIC paper's code: an n×n matrix M per block, S = (M − Mᵀ)/2,
    A = (I − S)(I + S)⁻¹. Stores n² numbers, n(n−1)/2 degrees of freedom; not a circuit —
    :attr:`circuit` is the pyramid its matrices compile into for hardware."""

    name = "cayley"
    lr_hint = 3e-3
    covers_so_n = False  # no −1 eigenvalues

    @property
    def param_shape(self) -> tuple[int, ...]:
        return (self.n, self.n)

    @property
    def dof(self) -> int:
        return self.n * (self.n - 1) // 2

    @property
    def circuit(self) -> Circuit:
        return pyramid(self.n)

    def start_params(self) -> torch.Tensor:
        return torch.zeros(self.n, self.n, dtype=torch.float64)

    def circuit_matrix(self, params: torch.Tensor) -> torch.Tensor:
        S = 0.5 * (params - params.transpose(-1, -2))
        eye = torch.eye(self.n, dtype=params.dtype, device=params.device).expand_as(S)
        return torch.linalg.solve(eye + S, eye - S)  # (I+S)⁻¹(I−S) = (I−S)(I+S)⁻¹: they commute

    def from_matrix(self, A: torch.Tensor) -> torch.Tensor:
        A = A.to(torch.float64)
        eye = torch.eye(self.n, dtype=A.dtype, device=A.device).expand_as(A)
        if float(torch.linalg.svdvals(eye + A).min()) < 1e-8:
            raise ParameterizationError("matrix has eigenvalue −1; the Cayley map cannot reach it")
        return torch.linalg.solve(eye + A, eye - A)  # S = (I + A)⁻¹(I − A), antisymmetric

    def circuit_angles(self, params: torch.Tensor) -> torch.Tensor:
        from quicq.circuits.givens import givens_decompose

        A = self.circuit_matrix(params.detach().to(torch.float64))
        rows = []
        for Ai in A.cpu():
            circ, th = givens_decompose(Ai.numpy(), layout="pyramid")
            if circ != self.circuit:  # det −1 cannot happen for a Cayley matrix; stay safe anyway
                raise ParameterizationError("a Cayley block did not compile to the plain pyramid")
            rows.append(torch.as_tensor(th, dtype=torch.float64))
        return torch.stack(rows).to(params.dtype)


PARAMETERIZATIONS: dict[str, type[Parameterization]] = {
    c.name: c for c in (PyramidChart, XChart, ButterflyChart, BrickChart, CayleyChart)
}


def get_parameterization(name: str, n: int, n_layers: int = 2, start: str = "sorting") -> Parameterization:
    """Build the parameterization ``name`` for n×n blocks (raises naming the known ones)."""
    try:
        cls = PARAMETERIZATIONS[name]
    except KeyError:
        raise ParameterizationError(
            f"unknown parameterization {name!r}; choose one of {sorted(PARAMETERIZATIONS)}") from None
    return cls(n, n_layers, start)
