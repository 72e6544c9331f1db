"""Autograd bridge: blocks estimated on a backend, differentiable in torch (docs/design.md#gradients).

:class:`HardwareBlock` (a ``torch.nn.Module``) maps angles (..., n_params) to the blocks a
tomography plan estimates on a backend — one tensor per key (weight-k blocks, or the N×K
columns of a Pauli circuit). The forward pass is one backend call. The backward pass computes
the vector–Jacobian product against dL/dB by one of:

* ``"parameter_shift"`` — every RBS/FBS angle enters each block entry (any order) as
  a + b·cos θ + c·sin θ, RY angles with frequency ½, so ∂B/∂θ_p = c·[B(θ + s e_p) − B(θ − s e_p)]
  exactly, with (s, c) from :func:`quicq.circuits.gates.shift_rule`. 2 block estimates per
  angle and binding; *all* shifted bindings of one backward pass go into ONE backend call.
  Unbiased whenever the block estimate is, so shifted estimates use the plan's
  ``gradient_plan()`` — for block tomography the signed X-basis estimate, projected (bias
  O(1/shots); the forward's X+Z combination is biased toward 0 at small entries).
* ``"spsa"`` — simultaneous perturbation: one random ±1 direction Δ per binding (seeded
  generator), 2 estimates B(θ ± εΔ) per binding, ĝ = ⟨dL/dB, (B₊ − B₋)/(2ε)⟩·Δ. Cost
  independent of the number of angles; E[ĝ] = ∇L + O(ε²).
* ``"surrogate"`` — forward from the backend, backward from the exact engine's autograd at
  the same angles (no quantum cost for gradients).

The quantum cost of a step is independent of the token batch: one block estimate serves every
activation that passes through the adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from quicq.circuits.gates import shift_rule
from quicq.circuits.ir import Circuit, CircuitError
from quicq.hardware.backends import DEFAULT_SHOTS, Backend
from quicq.hardware.tomography import BlockTomography, Tomography, TomographyResult

GRADIENTS = ("parameter_shift", "spsa", "surrogate")


def shift_table(circuit: Circuit) -> list[tuple[float, float] | None]:
    """Per slot, (shift s, factor c) of the two-term rule, or ``None`` for a slot no gate reads.

    Raises:
        CircuitError: a slot shared by several gates (its entries are trig polynomials of higher
            degree, so the two-term rule is not exact).
    """
    table: list[tuple[float, float] | None] = []
    for slot, gates in enumerate(circuit.param_gates()):
        if not gates:
            table.append(None)
        elif len(gates) > 1:
            raise CircuitError(
                f"parameter shift needs one gate per slot, but slot {slot} is read by gates {gates}; "
                f"use gradient='spsa' or 'surrogate'"
            )
        else:
            table.append(shift_rule(circuit.gates[gates[0]].name))
    return table


class _Bridge:
    """Non-tensor state of one HardwareBlock: plan, backend, gradient settings, last result."""

    def __init__(self, plan: Tomography, backend: Backend, gradient: str, shots: Any, spsa_eps: float,
                 seed: int | None, grad_plan: Tomography | None = None) -> None:
        self.plan, self.backend, self.gradient, self.shots = plan, backend, gradient, shots
        self.grad_plan = grad_plan or plan.gradient_plan()
        if self.grad_plan.keys != plan.keys or self.grad_plan.circuit != plan.circuit:
            raise ValueError("the gradient tomography plan must estimate the same circuit and keys")
        self.spsa_eps = spsa_eps
        self.rng = np.random.default_rng(seed)
        self.shifts = shift_table(plan.circuit) if gradient == "parameter_shift" else None
        self.last_result: TomographyResult | None = None
        self.backward_calls = 0

    def estimate(self, angles: np.ndarray, plan: Tomography | None = None) -> list[np.ndarray]:
        """Blocks at (B, P) bindings, one (B, rows, cols) array per key, from one backend call."""
        plan = plan or self.plan
        res = plan.run(self.backend, angles, self.shots)
        self.last_result = res
        return [res.blocks[k] for k in plan.keys]

    def vjp(self, angles: torch.Tensor, grads: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """dL/dθ (B, P) from dL/dB (one (B, rows, cols) tensor per key)."""
        self.backward_calls += 1
        G = grad_arrays(grads, self.plan.shapes(), angles.shape[0])
        th = angles.detach().cpu().double().numpy()
        if self.gradient == "surrogate":
            return surrogate_vjp(self.plan, angles, G)
        if self.gradient == "parameter_shift":
            shifted, active = shifted_bindings(self.shifts, th)
            if not active:
                return torch.zeros(angles.shape, dtype=torch.float64)
            blocks = self.estimate(shifted, self.grad_plan)  # ONE backend call
            return torch.as_tensor(shift_vjp(blocks, G, active, self.shifts, th.shape))
        delta = spsa_direction(self.plan.circuit, self.rng, th.shape)
        blocks = self.estimate(spsa_bindings(th, delta, self.spsa_eps), self.grad_plan)  # ONE call
        return torch.as_tensor(spsa_vjp(blocks, G, delta, self.spsa_eps))


# ---------------------------------------------------------------------------------------------
# The gradient rules (shared by HardwareBlock and the model-level bridge)
# ---------------------------------------------------------------------------------------------


def grad_arrays(grads: Sequence[torch.Tensor | None], shapes: Sequence[tuple[int, int]], B: int) -> list[np.ndarray]:
    """dL/dB per key as float64 (B, rows, cols) arrays (zeros for an unused output)."""
    return [np.zeros((B,) + tuple(shape)) if g is None else g.detach().cpu().double().numpy().reshape((B,) + tuple(shape))
            for g, shape in zip(grads, shapes)]


def shifted_bindings(shifts: Sequence[tuple[float, float] | None], th: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """All shifted bindings of a parameter-shift backward: (2·A·B, P), +s then −s per active slot.

    Returns the bindings and the active slots (those some gate reads); empty when none is.
    """
    active = [p for p, rule in enumerate(shifts) if rule is not None]
    shifted = []
    for p in active:
        s = shifts[p][0]
        for sign in (1.0, -1.0):
            t = th.copy()
            t[:, p] += sign * s
            shifted.append(t)
    return (np.concatenate(shifted) if shifted else th[:0]), active


def shift_vjp(blocks: Sequence[np.ndarray], G: Sequence[np.ndarray], active: Sequence[int],
              shifts: Sequence[tuple[float, float] | None], shape: tuple[int, int]) -> np.ndarray:
    """dL/dθ (B, P) from the blocks at :func:`shifted_bindings` and dL/dB: c·⟨dL/dB, B₊ − B₋⟩ per slot."""
    B, P = shape
    grad = np.zeros((B, P))
    for blk, g in zip(blocks, G):
        blk = blk.reshape((len(active), 2, B) + blk.shape[1:])
        diff = blk[:, 0] - blk[:, 1]  # (A, B, rows, cols)
        grad[:, active] += np.einsum("abij,bij->ba", diff, g)
    grad[:, active] *= np.array([shifts[p][1] for p in active])
    return grad


def spsa_direction(circuit: Circuit, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """One random ±1 direction per binding over the slots some gate reads (0 elsewhere)."""
    used = np.array([bool(g) for g in circuit.param_gates()], dtype=float)
    return rng.choice([-1.0, 1.0], size=shape) * used


def spsa_bindings(th: np.ndarray, delta: np.ndarray, eps: float) -> np.ndarray:
    """The 2B perturbed bindings θ + εΔ, then θ − εΔ."""
    return np.concatenate([th + eps * delta, th - eps * delta])


def spsa_vjp(blocks: Sequence[np.ndarray], G: Sequence[np.ndarray], delta: np.ndarray, eps: float) -> np.ndarray:
    """ĝ_b = ⟨dL/dB_b, (B₊ − B₋)/(2ε)⟩·Δ_b per binding b (E[ĝ] = ∇L + O(ε²))."""
    B = delta.shape[0]
    slope = np.zeros(B)
    for blk, g in zip(blocks, G):
        blk = blk.reshape((2, B) + blk.shape[1:])
        slope += np.einsum("bij,bij->b", (blk[0] - blk[1]) / (2 * eps), g)
    return slope[:, None] * delta


def surrogate_vjp(plan: Tomography, angles: torch.Tensor, G: Sequence[np.ndarray]) -> torch.Tensor:
    """dL/dθ from the exact engine's autograd at the same angles (no quantum cost)."""
    with torch.enable_grad():
        x = angles.detach().double().reshape(-1, angles.shape[-1]).requires_grad_(True)
        outs = plan.exact(x)
        (gx,) = torch.autograd.grad(list(outs), [x], [torch.as_tensor(g).reshape(o.shape) for o, g in zip(outs, G)])
    return gx


class _HardwareBlockFunction(torch.autograd.Function):
    """forward: blocks from the backend; backward: the bridge's vector–Jacobian product."""

    @staticmethod
    def forward(ctx: Any, angles: torch.Tensor, bridge: _Bridge) -> tuple[torch.Tensor, ...]:
        blocks = bridge.estimate(angles.detach().cpu().double().numpy())
        ctx.bridge = bridge
        ctx.save_for_backward(angles)
        return tuple(torch.as_tensor(b, dtype=angles.dtype, device=angles.device) for b in blocks)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        (angles,) = ctx.saved_tensors
        g = ctx.bridge.vjp(angles, grads)
        return g.to(dtype=angles.dtype, device=angles.device), None


class HardwareBlock(torch.nn.Module):
    """Blocks of a circuit estimated on a backend, with a chosen gradient rule.

    Args:
        circuit: the circuit (ignored when ``tomography`` is given).
        backend: where the circuits run.
        orders: Hamming weights of the blocks (HW-preserving circuits).
        gradient: ``"parameter_shift"``, ``"spsa"`` or ``"surrogate"``.
        shots: shots per circuit and binding (default: the backend's).
        method: block tomography method (``"derived"`` or ``"direct"``).
        columns: for Pauli circuits (not HW-preserving), the number K of columns to estimate.
        tomography: a ready :class:`~quicq.hardware.tomography.Tomography` plan (overrides
            circuit/orders/method/columns).
        gradient_tomography: plan for the shifted/perturbed estimates of the backward pass.
            Default: ``tomography.gradient_plan()`` — for block tomography the signed
            estimator without magnitude circuits (the forward's X+Z combination has the lowest
            error but is biased toward 0 at small entries, and gradient bias does not average
            out over steps; see :meth:`BlockTomography.gradient_plan`).
            ``BlockTomography(circuit, orders, magnitudes=False, project=False)`` is exactly
            unbiased.
        spsa_eps: SPSA perturbation size.
        seed: seeds the SPSA directions.

    ``forward(angles)`` takes (..., n_params) and returns a tuple with one (..., rows, cols)
    tensor per key; :attr:`last_result` holds the last :class:`TomographyResult` (error bars,
    kept fractions).
    """

    def __init__(self, circuit: Circuit | None, backend: Backend, orders: Sequence[int] = (1,), *,
                 gradient: str = "parameter_shift", shots: Any = DEFAULT_SHOTS, method: str = "derived",
                 columns: int | None = None, tomography: Tomography | None = None,
                 gradient_tomography: Tomography | None = None, spsa_eps: float = 0.1,
                 seed: int | None = None) -> None:
        super().__init__()
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
        if not isinstance(backend, Backend):
            raise TypeError(f"backend must be a quicq Backend, got {type(backend).__name__}")
        if not spsa_eps > 0:
            raise ValueError(f"spsa_eps must be > 0, got {spsa_eps!r}")
        if tomography is None:
            if circuit is None:
                raise ValueError("give a circuit or a tomography plan")
            if circuit.hw_preserving:
                tomography = BlockTomography(circuit, orders, method=method)
            else:
                from quicq.hardware.pauli_tomography import PauliTomography

                if columns is None:
                    raise ValueError("a circuit that is not Hamming-weight preserving needs columns=K "
                                     "(the number of columns to estimate)")
                tomography = PauliTomography(circuit, columns)
        self.tomography = tomography
        self._bridge = _Bridge(tomography, backend, gradient, shots, float(spsa_eps), seed, gradient_tomography)

    @property
    def keys(self) -> tuple[Any, ...]:
        """Keys of the returned blocks, in order."""
        return self.tomography.keys

    @property
    def gradient_tomography(self) -> Tomography:
        """The plan used for the backward pass's shifted/perturbed estimates."""
        return self._bridge.grad_plan

    @property
    def gradient(self) -> str:
        """The backward rule."""
        return self._bridge.gradient

    @property
    def rng(self) -> np.random.Generator:
        """The SPSA perturbation generator (checkpointed by training loops for exact resumes)."""
        return self._bridge.rng

    @property
    def last_result(self) -> TomographyResult | None:
        """The most recent :class:`TomographyResult` (forward or backward estimate)."""
        return self._bridge.last_result

    def forward(self, angles: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not isinstance(angles, torch.Tensor):
            angles = torch.as_tensor(angles, dtype=torch.float64)
        P = self.tomography.circuit.n_params
        if angles.ndim == 0 or angles.shape[-1] != P:
            raise CircuitError(f"angles must have shape (..., {P}), got {tuple(angles.shape)}")
        lead = angles.shape[:-1]
        outs = _HardwareBlockFunction.apply(angles.reshape(-1, P), self._bridge)
        return tuple(o.reshape(lead + o.shape[1:]) for o in outs)

    def extra_repr(self) -> str:
        return (f"keys={self.keys}, gradient={self.gradient!r}, backend={self._bridge.backend.name!r}, "
                f"circuits={len(self.tomography.circuits)}")


def hardware_blocks(angles: torch.Tensor, circuit: Circuit, backend: Backend, orders: Sequence[int] = (1,),
                    **kwargs: Any) -> tuple[torch.Tensor, ...]:
    """Functional form of :class:`HardwareBlock` (builds the plan on every call)."""
    return HardwareBlock(circuit, backend, orders, **kwargs)(angles)
