"""Block tomography: signed orthogonal blocks of quicq circuits from measurement shots (docs/design.md#tomography).

A tomography *plan* (:class:`BlockTomography` here, :class:`~quicq.hardware.pauli_tomography.
PauliTomography` for Pauli circuits) fixes the measured circuits once — so every backend
transpiles them once — and turns one backend call into blocks with error bars:
``plan.run(backend, angles)`` submits every circuit of the estimate, at every angle binding, in
one :meth:`~quicq.hardware.backends.Backend.sample` call.

**Signs (Hamming-weight-preserving circuits).** RBS/FBS/CZ/Z leave |0…0⟩ untouched, so it is an
absolute phase reference. For a weight-k input S prepare (|0…0⟩ + |S⟩)/√2 (H on s₀, then CNOTs
s₀→s written as H·CZ·H, all IR gates), run the circuit and measure every qubit in the X basis
(H on all, then Z). For every weight-k T the parity of the bits in T estimates

    ⟨X_T⟩ = B[T,S] + ½ Σ_{T'} B[T',S]·B[T'△T,S]·[|T'△T| = k],

where X_T = ⊗_{i∈T} X_i. The second term joins two weight-k components and exists only when
|T∩T'| = k/2, i.e. for *even* k. Preparing (|0…0⟩ − |S⟩)/√2 instead (an X on s₀ before its H)
negates the first term and keeps the second, so B[T,S] = (⟨X_T⟩₊ − ⟨X_T⟩₋)/2 exactly.
Circuits per weight-k block: C(n,k) for odd k (k = 1: n circuits, ⟨X_i⟩ = U_ij), 2·C(n,k) for
even k; one circuit gives a whole column. Std ≤ 1/√shots per entry for odd k, ≤ 1/√(2·shots)
for even k (two circuits per column).

**Magnitudes.** Input |S⟩ (X gates), measure Z: P(T) = B[T,S]². Outcomes outside weight k are
errors (the circuit preserves Hamming weight) and are dropped — post-selection; the kept
fraction is reported. C(n,k) more circuits.

**Combination.** Per entry a weighted mean of the signed X estimate x and sign(x)·√p̂ with the
fixed weights N_x : 4·N_kept. Without noise both have variance ∝ (1 − U²) — (1 − U²)/N_x and,
by the delta method, (1 − U²)/(4·N_kept) — so these *are* the inverse-variance weights for every
entry; being fixed, they do not correlate with the estimates' errors. Why not simply "|·| from
Z, sign from X": the X estimate adds 1/5 of the information and keeps the mean anchored where
√p̂ is least reliable. Measured (n = 4, ideal): the combination halves the RMS error of the X
estimate alone, the projection lowers it by another third. Price: a bias toward 0 at entries
comparable to their own error (a wrong sign(x), and E√p̂ < √p), up to ≈ 0.8 standard
deviations on parameter-shift gradients at 500 shots; gradients therefore use
:meth:`BlockTomography.gradient_plan` (signed estimate only). With noise, post-selection removes
leakage out of the sector, and the uniform damping of the X estimate is undone by the
projection: each block is projected onto O(D) by polar decomposition (Q = U_svd·V_svdᵀ, the
nearest orthogonal matrix in Frobenius norm).

**Error bars.** ``stderr`` per entry from the binomial shot statistics of the raw (unprojected)
estimate: (1 − c²)/(N_x + 4·N_kept), plus the variance of a possible sign flip where |x| is
comparable to its error (see :func:`combine`); √((1 − x²)/N_x) without magnitudes. The
projection only removes noise components, so these are conservative for the projected block
(tested: reported ≈ actual error of the raw estimate within a factor 1.5). "derived" weight-k blocks
are C_k of the projected unary block with first-order propagated errors (entries treated as
independent).

**Methods for weight-k blocks.** ``"derived"``: measure the unary block (n or 2n circuits) and
take compounds — exact only when the circuit's weight-k action *is* C_k(U) (FBS anywhere, RBS
nearest-neighbour; docs/conventions.md). ``"direct"``: measure each weight-k block on weight-k inputs as
above — the only correct route for non-adjacent RBS, and immune to error accumulation in C_k.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from quicq.circuits.ir import (
    Circuit,
    CircuitError,
    check_orders,
    sector_indices,
    subsets,
)
from quicq.hardware.estimators import combine, compound_with_errors, magnitudes, polar, shot_variance
from quicq.hardware.mitigation import ZNE, as_zne, check_readout, fold
from quicq.hardware.outcome import Outcome
from quicq.hardware.preparations import basis_prep, pair_prep, x_readout

# The plan interface, its result and the shared pieces live in their own modules; they are
# re-exported here, where they were first defined, so existing imports keep working.
from quicq.hardware.tomography_base import Key, Tomography, TomographyResult, mitigation_report, readout_mitigator

__all__ = [
    "BlockTomography", "Key", "Tomography", "TomographyResult", "basis_prep", "combine", "compound_with_errors",
    "magnitudes", "mitigation_report", "pair_prep", "polar", "readout_mitigator", "shot_variance", "x_readout",
]


@dataclass(frozen=True)
class _SectorCircuits:
    """Indices (into the plan's circuit list) of the circuits measuring one weight-k block."""

    k: int
    plus: tuple[int, ...]  # (|0⟩ + |S⟩)/√2, X readout, per column S
    minus: tuple[int, ...]  # (|0⟩ − |S⟩)/√2, X readout (even k only)
    z: tuple[int, ...]  # |S⟩, Z readout (when magnitudes are measured)


class BlockTomography(Tomography):
    """Signed weight-k blocks of a Hamming-weight-preserving circuit (method in the module doc).

    Args:
        circuit: an RBS/FBS/CZ/Z circuit.
        orders: Hamming weights k of the blocks to return.
        method: ``"derived"`` (C_k of the measured unary block) or ``"direct"`` (each block
            measured on weight-k inputs).
        magnitudes: also measure Z-basis magnitudes (doubles the circuits, lowers the variance
            and enables post-selection).
        postselect: renormalise Z-basis outcomes to the right Hamming weight.
        project: project each measured block onto O(D) (polar decomposition).
        readout: ``None`` or ``"m3"``: readout-correct every outcome with the backend's M3
            calibration (:mod:`quicq.hardware.mitigation`).
        zne: ``None``, ``True`` (scales 1, 3, linear fit), a tuple of odd scales, or a
            :class:`~quicq.hardware.mitigation.ZNE`: measure every circuit also with its
            RBS gates folded and extrapolate each unprojected entry to zero noise.

    Circuit count: derived n (signs) + n (magnitudes); direct Σ_k c_k·C(n,k) + C(n,k) with
    c_k = 1 for odd k and 2 for even k (magnitude circuits only when ``magnitudes``); times
    the number of ZNE scales.
    """

    def __init__(self, circuit: Circuit, orders: Sequence[int] = (1,), *, method: str = "derived",
                 magnitudes: bool = True, postselect: bool = True, project: bool = True,
                 readout: str | None = None, zne: Any = None) -> None:
        if not isinstance(circuit, Circuit):
            raise CircuitError(f"BlockTomography needs a quicq Circuit, got {type(circuit).__name__}")
        if not circuit.hw_preserving:
            bad = circuit.non_hw_gates()
            raise CircuitError(
                f"BlockTomography needs a Hamming-weight-preserving circuit (found {bad} gates); "
                f"use PauliTomography for Pauli (RY + CZ) circuits"
            )
        if method not in ("derived", "direct"):
            raise ValueError(f"method must be 'derived' or 'direct', got {method!r}")
        n = circuit.n_qubits
        self.circuit = circuit
        self.orders = check_orders(n, orders)
        self.method = method
        self.magnitudes = bool(magnitudes)
        self.postselect = bool(postselect)
        self.project = bool(project)
        self.readout = check_readout(readout)
        self.zne: ZNE | None = as_zne(zne)
        if method == "derived" and any(k >= 2 for k in self.orders) and not circuit.compound_exact:
            raise CircuitError(
                "method='derived' computes weight-k blocks as C_k(U), which is wrong for this circuit "
                "(a non-adjacent RBS does not act as a compound, docs/conventions.md); use method='direct' "
                "or FBS gates"
            )
        measured = (1,) if method == "derived" else tuple(k for k in self.orders if k >= 1)
        if method == "derived" and self.orders == (0,):
            measured = ()
        circuits: list[Circuit] = []
        labels: list[str] = []
        sectors: list[_SectorCircuits] = []

        def add(c: Circuit, label: str) -> int:
            circuits.append(c)
            labels.append(label)
            return len(circuits) - 1

        scales = self.zne.scales if self.zne is not None else (1,)
        for scale in scales:  # one copy of the plan per noise scale; sector indices: scale 1's
            core = fold(circuit, scale)
            tag = f" λ={scale}" if self.zne is not None else ""
            for k in measured:
                cols = subsets(n, k)
                plus = tuple(add(core.with_prefix(pair_prep(n, (), S)).with_suffix(x_readout(n)),
                                 f"k={k} sign S={S} (+){tag}") for S in cols)
                minus: tuple[int, ...] = ()
                if k % 2 == 0:
                    minus = tuple(add(core.with_prefix(pair_prep(n, (), S, minus=True)).with_suffix(x_readout(n)),
                                      f"k={k} sign S={S} (−){tag}") for S in cols)
                z = tuple(add(core.with_prefix(basis_prep(S)), f"k={k} magnitude S={S}{tag}") for S in cols) \
                    if self.magnitudes else ()
                if scale == scales[0]:
                    sectors.append(_SectorCircuits(k, plus, minus, z))
        self._per_scale = len(circuits) // len(scales)
        self._circuits = tuple(circuits)
        self._labels = tuple(labels)
        self._sectors = tuple(sectors)

    @property
    def keys(self) -> tuple[int, ...]:
        return self.orders

    @property
    def circuits(self) -> tuple[Circuit, ...]:
        return self._circuits

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    def shapes(self) -> tuple[tuple[int, int], ...]:
        n = self.circuit.n_qubits
        return tuple((math.comb(n, k), math.comb(n, k)) for k in self.orders)

    def gradient_plan(self) -> BlockTomography:
        """The same plan without magnitude circuits: what parameter-shift/SPSA estimates use.

        sign(x)·√p̂ is biased toward 0 at entries comparable to their own error (≈ 0.3–0.8
        standard deviations on parameter-shift gradients at 500 shots), and a gradient bias
        does not average out over training steps. The signed estimate is linear in the shot
        frequencies; with projection its bias is O(1/shots) (measured ≤ 0.2 standard
        deviations at 500 shots), and it needs half the circuits.
        """
        if not self.magnitudes:
            return self
        return BlockTomography(self.circuit, self.orders, method=self.method, magnitudes=False,
                               postselect=self.postselect, project=self.project, readout=self.readout,
                               zne=self.zne)

    def exact(self, angles: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from quicq.engine import sector_blocks

        return tuple(sector_blocks(self.circuit, angles, self.orders))

    def _sector(self, sec: _SectorCircuits, outcomes: list[Outcome], shots: int | None) -> dict[str, Any]:
        n = self.circuit.n_qubits
        rows = subsets(n, sec.k)
        # Signed estimate: column S from the parities over all weight-k T of circuit S.
        xp = np.stack([outcomes[i].parities(rows)[0] for i in sec.plus], -1)  # (B, T, S)
        shots_eff = 1.0 if shots is None else float(shots)  # exact mode: per-shot weights
        if sec.minus:
            xm = np.stack([outcomes[i].parities(rows)[0] for i in sec.minus], -1)
            x = (xp - xm) / 2
            var_x = (shot_variance(xp, shots) + shot_variance(xm, shots)) / 4
            n_x = 2 * shots_eff  # two circuits per column
        else:
            x, var_x = xp, shot_variance(xp, shots)
            n_x = shots_eff
        m = kept = None
        if sec.z:
            idx = sector_indices(n, sec.k)
            mags = [magnitudes(outcomes[i].probabilities(idx), shots, self.postselect) for i in sec.z]
            m = np.stack([a for a, _, _ in mags], -1)
            kept = np.stack([f for _, _, f in mags], -1)  # (B, S)
            n_m = (kept if self.postselect else np.ones_like(kept))[:, None, :] * shots_eff
            raw, var = combine(x, n_x, m, n_m)
        else:
            raw, var = x, var_x
        return {"raw": raw, "var": var, "kept": kept, "signed": x, "magnitude": m}

    def _measured(self, outcomes: list[Outcome], shots: int | None) -> dict[int, dict[str, Any]]:
        """Per measured order: the unprojected estimate (extrapolated with ZNE), then projected."""
        m = self._per_scale
        per_scale = [{sec.k: self._sector(sec, outcomes[i * m:(i + 1) * m], shots) for sec in self._sectors}
                     for i in range(len(outcomes) // m)]
        out = per_scale[0]
        if self.zne is not None:
            for k, sec in out.items():
                raws = [p[k]["raw"] for p in per_scale]
                sec["raw"], sec["var"] = self.zne.extrapolate(raws, [p[k]["var"] for p in per_scale])
                sec["zne_raw"] = np.stack(raws)  # (scales, B, D, D): the data the fit saw
        for sec in out.values():
            sec["block"] = polar(sec["raw"]) if self.project else sec["raw"]
            sec["stderr"] = np.zeros_like(sec["raw"]) if shots is None else np.sqrt(sec["var"])
        return out

    def reduce(self, outcomes: list[Outcome], angles: np.ndarray, shots: int | None) -> dict[str, Any]:
        from quicq.engine import compound

        B = angles.shape[0]
        measured = self._measured(outcomes, shots)
        blocks, stderr, raw, kept, details = {}, {}, {}, {}, {}
        for k, sec in measured.items():
            details[f"signed_{k}"] = sec["signed"]
            if sec["magnitude"] is not None:
                details[f"magnitude_{k}"] = sec["magnitude"]
            if "zne_raw" in sec:
                details[f"zne_raw_{k}"] = np.moveaxis(sec["zne_raw"], 0, 1)  # (B, scales, D, D)
        for k in self.orders:
            if k == 0:
                blocks[0] = np.ones((B, 1, 1))
                stderr[0], raw[0], kept[0] = np.zeros((B, 1, 1)), np.ones((B, 1, 1)), None
            elif self.method == "direct":
                sec = measured[k]
                blocks[k], stderr[k], raw[k], kept[k] = sec["block"], sec["stderr"], sec["raw"], sec["kept"]
            else:
                U = measured[1]
                blocks[k], stderr[k] = compound_with_errors(U["block"], U["stderr"], k)
                raw[k] = compound(torch.as_tensor(U["raw"], dtype=torch.float64), k).numpy()
                kept[k] = U["kept"] if k == 1 else None
        return {"blocks": blocks, "stderr": stderr, "raw": raw, "kept": kept, "details": details}
