"""Model-level hardware bridge: one primitive job per step direction for the whole adapted model.

A per-layer bridge (:class:`~quicq.hardware.hybrid.HardwareBlock`) submits one job per adapted
layer for the forward and one more per layer for the backward: 24 jobs per step for 12 adapted
layers, and the fixed per-job cost dominates. :class:`ModelHardwareBridge` instead

* **forward**: the first adapted layer that asks for its blocks triggers one estimate of
  *every* attached unit (each QuIC adapter's blocks, each Quantum-PEFT adapter's U and V Pauli
  columns) at the current angles, all circuits of all units in one backend call
  (:func:`quicq.hardware.jobs.run_plans`); the other layers get their blocks from that estimate;
* **backward**: all those blocks are outputs of *one* autograd node, so autograd calls its
  backward once with every dL/dB, and all shifted (parameter shift) or perturbed (SPSA)
  bindings of all units go into one more backend call; the exact surrogate needs none.

So a parameter-shift step costs exactly 2 primitive calls, split only where the backend's job
limits force it (IBM: 10 M executions per Sampler job; :mod:`quicq.hardware.jobs`). Wrap the
backend in :class:`~quicq.hardware.packing.PackedBackend` to also pack the circuits side by side.

The bridge is a block source in the adapters' sense: it only ever supplies blocks of
``layer.circuit()`` at ``layer.angles()`` (QuIC) and Pauli columns of ``layer.circuit(which=)``
at ``layer.angles(which=)`` (Quantum-PEFT); whatever a layer does with them (a reference block,
a scale) stays the layer's business. An estimate is reused while the angles are unchanged and
its graph has not been backpropagated yet; after ``optimizer.step()`` the next forward
re-estimates. Use ``detach()`` to restore the exact engine.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from quicq.circuits.ir import Circuit
from quicq.errors import QuicqError
from quicq.hardware.backends import DEFAULT_SHOTS, Backend
from quicq.hardware.hybrid import (
    GRADIENTS,
    grad_arrays,
    shift_table,
    shift_vjp,
    shifted_bindings,
    spsa_bindings,
    spsa_direction,
    spsa_vjp,
    surrogate_vjp,
)
from quicq.hardware.jobs import JobLimits, JobReport, run_plans
from quicq.hardware.tomography import BlockTomography, Tomography, TomographyResult

__all__ = ["BridgeError", "ModelHardwareBridge"]


class BridgeError(QuicqError, ValueError):
    """The model cannot be bridged as asked (no adapter, cayley, unknown gradient…)."""


@dataclass
class _Unit:
    """One estimated circuit: a QuIC adapter's blocks, or U / V of a Quantum-PEFT adapter."""

    name: str
    layer: Any
    adapter: str
    which: str | None  # None: QuIC; "u" / "v": Quantum-PEFT
    circuit: Circuit
    plan: Tomography
    grad_plan: Tomography
    shifts: list | None
    rng: np.random.Generator
    cache: _Estimate | None = None

    def angles(self) -> torch.Tensor:
        if self.which is None:
            return self.layer.angles(self.adapter)
        return self.layer.angles(self.adapter, which=self.which)


@dataclass
class _Estimate:
    """One unit's blocks from one model-wide estimate."""

    values: torch.Tensor  # detached angles the blocks were estimated at
    outputs: list[torch.Tensor]
    grad: bool  # made with autograd recording
    rnd: _Round
    result: TomographyResult


@dataclass
class _Round:
    """Shared state of one model-wide estimate (consumed once its graph is backpropagated)."""

    index: int
    consumed: bool = False
    units: list[_Unit] = field(default_factory=list)
    results: list[TomographyResult] = field(default_factory=list)


class _ModelBlocks(torch.autograd.Function):
    """Every unit's blocks from one backend call; backward: one more call for all units."""

    @staticmethod
    def forward(ctx: Any, bridge: ModelHardwareBridge, rnd: _Round, *angles: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.bridge, ctx.round = bridge, rnd
        ctx.save_for_backward(*angles)
        results = bridge._estimate([(u.plan, a) for u, a in zip(rnd.units, angles)])
        rnd.results = results
        outs = []
        for u, a, res in zip(rnd.units, angles, results):
            for k in u.plan.keys:
                b = torch.as_tensor(res.blocks[k], dtype=a.dtype, device=a.device)
                outs.append(b if a.ndim == 2 else b[0])
        return tuple(outs)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[Any, ...]:
        ctx.round.consumed = True
        angles = ctx.saved_tensors
        g = ctx.bridge._vjp(ctx.round.units, angles, grads)
        return (None, None, *[x.to(dtype=a.dtype, device=a.device) for x, a in zip(g, angles)])


def _plan(cls: type, tag: str, extra: Mapping[str, Any], *args: Any, **kwargs: Any) -> Tomography:
    """``cls(*args, **kwargs, **extra)``, refusing an ``extra`` key ``cls`` does not take by name."""
    names = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(extra) - names)
    if unknown:
        raise BridgeError(f"{tag}: {cls.__name__} takes no option(s) {unknown}; it accepts "
                          f"{sorted(names - {'circuit', 'orders', 'K'} - set(kwargs))}")
    return cls(*args, **kwargs, **extra)


class ModelHardwareBridge:
    """Feed every adapted layer of a QuicqModel from a backend, one job per step direction.

    Args:
        model: a :class:`~quicq.adapters.QuicqModel` (QuIC and/or Quantum-PEFT adapters).
        backend: a quicq backend (optionally a :class:`~quicq.hardware.packing.PackedBackend`).
        gradient: ``"parameter_shift"``, ``"spsa"`` or ``"surrogate"``.
        shots: shots per circuit and binding (default: the backend's).
        magnitudes, method: block tomography options (QuIC units); postselect: both kinds.
        tomography: further keyword options for every unit's plan (e.g. ``readout="m3"``,
            ``zne=True`` for :class:`~quicq.hardware.tomography.BlockTomography`; ``column_pairs``
            for :class:`~quicq.hardware.pauli_tomography.PauliTomography`); a key a plan kind of
            the model does not take is refused here, before anything runs.
        spsa_eps: SPSA perturbation size.
        seed: seeds the SPSA directions (unit i gets its own stream from ``seed``).
        adapter_name: bridge this adapter only (default: the model's active adapters).
        limits: per-job limits (default: the backend's; see :mod:`quicq.hardware.jobs`).
        attach: install the bridge as block source of every unit's layer now.

    Attributes:
        jobs: backend calls (primitive jobs) submitted so far; ``executions`` likewise.
        forward_calls / backward_calls: model-wide estimates made for forwards / backwards.
    """

    def __init__(self, model: Any, backend: Backend, *, gradient: str = "parameter_shift",
                 shots: Any = DEFAULT_SHOTS, magnitudes: bool = True, postselect: bool = True,
                 method: str = "derived", tomography: Mapping[str, Any] | None = None, spsa_eps: float = 0.1,
                 seed: int | None = None, adapter_name: str | None = None, limits: JobLimits | None = None,
                 attach: bool = True) -> None:
        from quicq.adapters.layer import QuantumPEFTLayer, QuICLayer
        from quicq.hardware.pauli_tomography import PauliTomography

        if gradient not in GRADIENTS:
            raise BridgeError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
        if not isinstance(backend, Backend):
            raise BridgeError(f"backend must be a quicq Backend, got {type(backend).__name__}")
        if not spsa_eps > 0:
            raise BridgeError(f"spsa_eps must be > 0, got {spsa_eps!r}")
        if not hasattr(model, "quicq_layers"):
            raise BridgeError(f"model must be a QuicqModel (get_quicq_model), got {type(model).__name__}")
        extra = dict(tomography or {})
        for key in ("magnitudes", "postselect", "method"):
            if key in extra:
                raise BridgeError(f"tomography option {key!r} is an argument of its own; pass {key}= instead")
        self.model, self.backend, self.gradient, self.shots = model, backend, gradient, shots
        self.spsa_eps, self.limits = float(spsa_eps), limits
        self.report = JobReport()
        self.forward_calls = self.backward_calls = 0
        self._rounds = itertools.count()
        seeds = np.random.SeedSequence(seed).spawn(4096) if seed is not None else None
        active = [adapter_name] if adapter_name is not None else list(getattr(model, "active_adapters", []) or [])
        self.units: list[_Unit] = []
        for lname, layer in model.quicq_layers(adapter_name).items():
            names = [a for a in layer.adapter_names() if not active or a in active]
            for a in names:
                tag = lname if a == "default" else f"{lname}[{a}]"
                if isinstance(layer, QuICLayer):
                    circuit, orders = layer.circuit(a), tuple(layer.quic_spec[a].orders)
                    if getattr(layer.quic_spec[a], "parameterization", None) == "cayley":
                        raise BridgeError(f"{tag}: the cayley parameterization has no circuit angles to estimate")
                    plan: Tomography = _plan(BlockTomography, tag, extra, circuit, orders, method=method,
                                             magnitudes=magnitudes, postselect=postselect)
                    pieces = [(None, circuit, plan)]
                elif isinstance(layer, QuantumPEFTLayer):
                    K = int(layer.qpeft_spec[a].rank)
                    pieces = [(w, layer.circuit(a, which=w), None) for w in ("u", "v")]
                    pieces = [(w, c, _plan(PauliTomography, tag, extra, c, K, postselect=postselect))
                              for w, c, _ in pieces]
                else:  # pragma: no cover - quicq_layers returns only these kinds
                    raise BridgeError(f"{tag}: unknown adapter layer {type(layer).__name__}")
                for which, circuit, plan in pieces:
                    rng = np.random.default_rng(seeds[len(self.units)] if seeds is not None else None)
                    shifts = shift_table(circuit) if gradient == "parameter_shift" else None
                    name = tag if which is None else f"{tag}.{which.upper()}"
                    self.units.append(_Unit(name, layer, a, which, circuit, plan, plan.gradient_plan(), shifts, rng))
        if not self.units:
            raise BridgeError("the model has no quicq adapter layer to bridge")
        if attach:
            self.attach()

    # ---- installing -----------------------------------------------------------------------------
    def attach(self) -> ModelHardwareBridge:
        """Install the bridge as block source of every unit's layer (QuIC and Quantum-PEFT)."""
        for layer, adapter in {(id(u.layer), u.adapter): (u.layer, u.adapter) for u in self.units}.values():
            layer.set_block_source(self._source(layer, adapter), adapter)
        return self

    def detach(self) -> None:
        """Give every bridged layer back to the exact engine."""
        for u in self.units:
            u.layer.set_block_source(None, u.adapter)
            u.cache = None

    def _source(self, layer: Any, adapter: str) -> Any:
        def source(circuit: Circuit, angles: torch.Tensor, arg: Any) -> Any:
            unit = self._unit_for(layer, adapter, circuit, angles)
            outs = self._outputs(unit, angles)
            return outs if unit.which is None else outs[0]

        return source

    def _unit_for(self, layer: Any, adapter: str, circuit: Circuit, angles: torch.Tensor) -> _Unit:
        cands = [u for u in self.units if u.layer is layer and u.adapter == adapter]
        if len(cands) > 1:  # Quantum-PEFT: U or V — by the live parameter first, then by circuit
            same = [u for u in cands if u.angles() is angles] or [u for u in cands if u.circuit == circuit]
            cands = same[:1]
        if not cands or cands[0].circuit != circuit:
            raise BridgeError(f"{layer!r:.60}: asked for blocks of a circuit the bridge was not built for; "
                              "rebuild the bridge after changing the adapter")
        return cands[0]

    def pin(self) -> dict[str, TomographyResult]:
        """Estimate every unit once (one backend call, no autograd) and fix those blocks on the layers.

        Evaluation then runs any number of batches on one estimate per unit, as a deployed
        adapter would, at the cost of one forward's circuits. ``detach()`` undoes it. Returns
        each unit's estimate (error bars, mitigation report).
        """
        with torch.no_grad():
            self.refresh()
        layers: dict[tuple[int, str], tuple[Any, str, dict[str | None, _Unit]]] = {}
        for u in self.units:
            layers.setdefault((id(u.layer), u.adapter), (u.layer, u.adapter, {}))[2][u.which] = u
        for layer, adapter, units in layers.values():
            if None in units:  # QuIC: the layer's blocks, in key order
                fixed = [b.detach() for b in units[None].cache.outputs]
            else:  # Quantum-PEFT: [U columns, V columns]
                fixed = [units[w].cache.outputs[0].detach() for w in ("u", "v")]
            layer.set_block_source(fixed, adapter)
        return {u.name: u.cache.result for u in self.units}

    # ---- forward --------------------------------------------------------------------------------
    def _fresh(self, unit: _Unit, angles: torch.Tensor) -> bool:
        est = unit.cache
        if est is None or est.rnd.consumed:
            return False
        if torch.is_grad_enabled() and angles.requires_grad and not est.grad:
            return False
        return est.values.shape == angles.shape and torch.equal(est.values, angles.detach())

    def _outputs(self, unit: _Unit, angles: torch.Tensor) -> list[torch.Tensor]:
        if not self._fresh(unit, angles):
            self.refresh()
        return unit.cache.outputs

    def refresh(self) -> None:
        """Estimate every unit's blocks at the current angles now (one backend call)."""
        rnd = _Round(next(self._rounds), units=list(self.units))
        angles = [u.angles() for u in self.units]
        outs = _ModelBlocks.apply(self, rnd, *angles)
        self.forward_calls += 1
        grad = torch.is_grad_enabled() and any(a.requires_grad for a in angles)
        pos = 0
        for u, a, res in zip(self.units, angles, rnd.results):
            n = len(u.plan.keys)
            u.cache = _Estimate(a.detach().clone(), list(outs[pos:pos + n]), grad, rnd, res)
            pos += n

    def _estimate(self, requests: Sequence[tuple[Tomography, torch.Tensor]]) -> list[TomographyResult]:
        flat = [(p, a.detach().cpu().double().reshape(-1, a.shape[-1]).numpy()) for p, a in requests]
        return run_plans(self.backend, flat, self.shots, limits=self.limits, report=self.report)

    # ---- backward -------------------------------------------------------------------------------
    def _vjp(self, units: Sequence[_Unit], angles: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None]
             ) -> list[torch.Tensor]:
        self.backward_calls += 1
        per_unit, pos = [], 0
        for u in units:
            n = len(u.plan.keys)
            per_unit.append(grads[pos:pos + n])
            pos += n
        out: list[torch.Tensor | None] = [None] * len(units)
        requests, pending = [], []
        for i, (u, a, gs) in enumerate(zip(units, angles, per_unit)):
            th = a.detach().cpu().double().reshape(-1, a.shape[-1]).numpy()
            if all(g is None for g in gs):
                out[i] = torch.zeros_like(a)
                continue
            G = grad_arrays(gs, u.plan.shapes(), th.shape[0])
            if self.gradient == "surrogate":
                out[i] = surrogate_vjp(u.plan, a, G).reshape(a.shape)
            elif self.gradient == "parameter_shift":
                shifted, active = shifted_bindings(u.shifts, th)
                if not active:
                    out[i] = torch.zeros_like(a)
                    continue
                requests.append((u.grad_plan, shifted))
                pending.append((i, G, th.shape, ("shift", active)))
            else:
                delta = spsa_direction(u.circuit, u.rng, th.shape)
                requests.append((u.grad_plan, spsa_bindings(th, delta, self.spsa_eps)))
                pending.append((i, G, th.shape, ("spsa", delta)))
        if requests:  # every shifted / perturbed binding of every unit: ONE backend call
            results = run_plans(self.backend, requests, self.shots, limits=self.limits, report=self.report)
            for (i, G, shape, (kind, extra)), res in zip(pending, results):
                u = units[i]
                blocks = [res.blocks[k] for k in u.grad_plan.keys]
                g = shift_vjp(blocks, G, extra, u.shifts, shape) if kind == "shift" else \
                    spsa_vjp(blocks, G, extra, self.spsa_eps)
                out[i] = torch.as_tensor(g).reshape(angles[i].shape)
        return [o for o in out]  # type: ignore[misc]

    # ---- reporting ------------------------------------------------------------------------------
    @property
    def jobs(self) -> int:
        """Primitive jobs (backend calls) submitted so far."""
        return self.report.jobs

    @property
    def executions(self) -> int:
        """Circuit executions submitted so far (wide executions on a packed backend)."""
        return self.report.executions

    @property
    def last_results(self) -> dict[str, TomographyResult | None]:
        """Per unit the latest forward estimate (error bars, kept fractions)."""
        return {u.name: (u.cache.result if u.cache is not None else None) for u in self.units}

    def generators(self) -> dict[str, np.random.Generator]:
        """Named random generators to checkpoint (each unit's SPSA stream)."""
        return {f"{u.name}.rng": u.rng for u in self.units}

    def __repr__(self) -> str:
        return (f"ModelHardwareBridge(units={len(self.units)}, backend={self.backend.name!r}, "
                f"gradient={self.gradient!r}, jobs={self.jobs})")
