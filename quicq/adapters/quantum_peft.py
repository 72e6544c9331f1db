"""Quantum-PEFT: ΔW = scale · U·diag(λ)·Vᵀ with U, V the first K columns of Pauli circuits.

U = first K columns of Q(θ_U) ∈ SO(d_out) (:func:`quicq.engine.pauli_columns` on
``pauli(d_out, L)``), V likewise on d_in, λ ∈ R^K starts at 0 so ΔW = 0. The forward computes
((x V) ⊙ λ) Uᵀ and never forms ΔW (for Conv2d: a K-channel convolution with V as kernel, then
a 1×1 convolution with U, as LoRA does for convolutions).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from quicq.adapters.forward_batch import ForwardBatch
from quicq.adapters.config import AdapterConfigError, QuantumPEFTConfig
from quicq.adapters.geometry import adapter_dtype, canonical_weight, layer_geometry, write_canonical_weight
from quicq.adapters.tuner import AdapterError, QuicqTunerLayer
from quicq.circuits import Circuit, pauli

__all__ = ["ColumnSource", "QuantumPEFTLayer", "QuantumPEFTSpec"]

ColumnSource = Callable[[Circuit, torch.Tensor, int], torch.Tensor] | Sequence[torch.Tensor]
"""Quantum-PEFT counterpart of :data:`BlockSource`: a callable with the signature of
:func:`quicq.engine.pauli_columns`, ``source(circuit, angles, K) -> Tensor (N, K)``, called for
U (circuit on d_out) and for V (circuit on d_in); or a fixed pair ``(U, V)`` of shapes
(d_out, K) and (d_in, K) with orthonormal columns."""


@lru_cache(maxsize=256)
def _pauli_circuit(N: int, n_layers: int) -> Circuit:
    return pauli(N, n_layers)


@dataclass(frozen=True)
class QuantumPEFTSpec:
    """Resolved geometry of one Quantum-PEFT adapter on one layer."""

    module_name: str
    kind: str
    d_out: int
    d_in: int  # in_flat: in·kh·kw for Conv2d
    rank: int
    n_layers: int
    scale: float
    init_angles: str = "random"

    @property
    def circuit_u(self) -> Circuit:
        """Pauli circuit of U, on d_out."""
        return _pauli_circuit(self.d_out, self.n_layers)

    @property
    def circuit_v(self) -> Circuit:
        """Pauli circuit of V, on d_in."""
        return _pauli_circuit(self.d_in, self.n_layers)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {
            "qpeft_theta_u": (self.circuit_u.n_params,),
            "qpeft_theta_v": (self.circuit_v.n_params,),
            "qpeft_lambda": (self.rank,),
        }

    @property
    def n_parameters(self) -> int:
        return sum(math.prod(s) for s in self.param_shapes.values())

    @classmethod
    def build(cls, config: QuantumPEFTConfig, base: nn.Module, name: str) -> QuantumPEFTSpec:
        geo = layer_geometry(base, name)
        d_out, d_in = geo.out_features, geo.in_flat
        if min(d_out, d_in) < 2:
            raise AdapterConfigError(
                f"module {name!r}: Quantum-PEFT needs both sizes ≥ 2, got out={d_out}, in={d_in}"
            )
        if config.rank > min(d_out, d_in):
            raise AdapterConfigError(
                f"module {name!r} (out={d_out}, in={d_in}): rank={config.rank} exceeds "
                f"min(out, in)={min(d_out, d_in)}"
            )
        return cls(
            module_name=name, kind=geo.kind, d_out=d_out, d_in=d_in, rank=config.rank,
            n_layers=config.n_layers, scale=config.effective_scale, init_angles=config.init_angles,
        )


class QuantumPEFTLayer(QuicqTunerLayer):
    """Quantum-PEFT on a frozen layer: y = base(x) + Σ_a scale_a · U_a diag(λ_a) V_aᵀ x."""

    adapter_layer_names = ("qpeft_theta_u", "qpeft_theta_v", "qpeft_lambda")
    other_param_names = ("qpeft_spec", "qpeft_block_source")

    def __init__(self, base_layer: nn.Module, module_name: str = "") -> None:
        super().__init__(base_layer, module_name)
        self.qpeft_theta_u = nn.ParameterDict()
        self.qpeft_theta_v = nn.ParameterDict()
        self.qpeft_lambda = nn.ParameterDict()
        self.qpeft_spec: dict[str, QuantumPEFTSpec] = {}
        self.qpeft_block_source: dict[str, ColumnSource] = {}
        #: set by :func:`quicq.adapters.forward_batch.forward_batch` during a model forward
        self.forward_batch: ForwardBatch | None = None

    def update_layer(self, adapter_name: str, spec: QuantumPEFTSpec, init_weights: bool = True) -> None:
        """Add adapter ``adapter_name``: angles from the spec's start rule, λ = 0 (ΔW = 0); with
        init_weights=False everything N(0, 0.1²) (tests and ablations)."""
        if adapter_name in self.qpeft_spec:
            raise AdapterError(f"{self._where()}: adapter {adapter_name!r} already exists")
        base = self.get_base_layer()
        kw = {"dtype": adapter_dtype(base), "device": base.weight.device}
        from quicq.engine.pauli_init import pauli_start_angles

        for attr, shape in spec.param_shapes.items():
            if attr == "qpeft_lambda" or not init_weights:
                p = torch.zeros(shape, **kw)
            else:  # angles: the start rule, seeded by module and factor so every run starts alike
                circuit = spec.circuit_u if attr == "qpeft_theta_u" else spec.circuit_v
                g = torch.Generator().manual_seed(zlib.crc32(f"{self.module_name}/{attr}".encode()))
                p = pauli_start_angles(circuit, spec.init_angles, g, dtype=kw["dtype"]).to(kw["device"])
            if not init_weights:
                nn.init.normal_(p, std=0.1)
            getattr(self, attr)[adapter_name] = nn.Parameter(p)
        self.qpeft_spec[adapter_name] = spec
        self.set_adapter(self.active_adapters)

    def circuit(self, adapter_name: str | None = None, which: str = "u") -> Circuit:
        """The Pauli circuit of U (``which="u"``, on d_out) or V (``"v"``, on d_in)."""
        spec = self.qpeft_spec[self._name(adapter_name)]
        if which not in ("u", "v"):
            raise ValueError(f"which must be 'u' or 'v', got {which!r}")
        return spec.circuit_u if which == "u" else spec.circuit_v

    def angles(self, adapter_name: str | None = None, which: str = "u") -> torch.Tensor:
        """The live angle parameter of U or V (shape (n_params,))."""
        name = self._name(adapter_name)
        if which not in ("u", "v"):
            raise ValueError(f"which must be 'u' or 'v', got {which!r}")
        return (self.qpeft_theta_u if which == "u" else self.qpeft_theta_v)[name]

    def set_block_source(self, source: ColumnSource | None, adapter_name: str | None = None) -> None:
        """Take U and V from ``source`` instead of the engine (None: back to it); see :data:`ColumnSource`."""
        names = self.adapter_names() if adapter_name is None else [self._name(adapter_name)]
        for name in names:
            if source is None:
                self.qpeft_block_source.pop(name, None)
                continue
            if not callable(source):
                if len(source) != 2:
                    raise AdapterError(f"{self._where()}: a fixed column source is a pair (U, V)")
                source = tuple(torch.as_tensor(t) for t in source)
                self._check_columns(name, *source)
            self.qpeft_block_source[name] = source

    def _check_columns(self, name: str, U: torch.Tensor, V: torch.Tensor) -> None:
        spec = self.qpeft_spec[name]
        for label, t, d in (("U", U, spec.d_out), ("V", V, spec.d_in)):
            if not isinstance(t, torch.Tensor) or not t.is_floating_point() or tuple(t.shape) != (d, spec.rank):
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise AdapterError(
                    f"{self._where()}: {label} of adapter {name!r} must be a float tensor of shape "
                    f"({d}, {spec.rank}), got {got}"
                )

    def factors(self, adapter_name: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(U (d_out, K), λ (K,), V (d_in, K)) of one adapter."""
        name = self._name(adapter_name)
        spec = self.qpeft_spec[name]
        lam = self.qpeft_lambda[name]
        source = self.qpeft_block_source.get(name)
        hit = self.forward_batch.columns(self, name) if source is None and self.forward_batch is not None else None
        if hit is not None:
            source = hit
        elif source is None:
            from quicq.engine import pauli_columns

            source = pauli_columns
        if callable(source):
            U = source(spec.circuit_u, self.qpeft_theta_u[name], spec.rank)
            V = source(spec.circuit_v, self.qpeft_theta_v[name], spec.rank)
        else:
            U, V = source
        self._check_columns(name, U, V)
        return U.to(lam.device), lam, V.to(lam.device)

    def delta_weight(self, adapter_name: str | None = None) -> torch.Tensor:
        """ΔW = scale·U diag(λ) Vᵀ as a dense (d_out, d_in) matrix — for merging and tests only."""
        name = self._name(adapter_name)
        U, lam, V = self.factors(name)
        return self.qpeft_spec[name].scale * (U * lam) @ V.t()

    def _adapted_forward(self, x: torch.Tensor, chain: list[str]) -> torch.Tensor:
        base = self.get_base_layer()
        result = self.base_layer(x)
        for a in chain:
            spec = self.qpeft_spec[a]
            U, lam, V = self.factors(a)
            U, lam, V = U.to(x.dtype), lam.to(x.dtype), V.to(x.dtype)
            if self.kind == "conv2d":
                k = base.weight.shape[1:]
                h = base._conv_forward(x, V.t().reshape(spec.rank, *k), None)
                h = h * lam.view(1, -1, 1, 1)
                delta = F.conv2d(h, U.reshape(spec.d_out, spec.rank, 1, 1))
            else:
                delta = ((x @ V) * lam) @ U.t()
            result = result + spec.scale * delta.to(result.dtype)
        return result

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        """Add ΔW of adapters (default: the active chain) to the base weight; unmerge subtracts it."""
        names = self._chain() if adapter_names is None else [self._name(a) for a in adapter_names]
        names = [a for a in names if a not in self.merged_adapters]
        if not names:
            return
        base = self.get_base_layer()
        with torch.no_grad():
            w0 = canonical_weight(base, self.kind)
            deltas = {a: self.delta_weight(a).detach() for a in names}
            w = w0.reshape(w0.shape[0], -1).to(deltas[names[0]].dtype)
            for a in names:
                w = w + deltas[a]
            if safe_merge and not torch.isfinite(w).all():
                raise AdapterError(f"{self._where()}: merging {names} produced non-finite weights")
            write_canonical_weight(base, self.kind, w.reshape(w0.shape).to(w0.dtype))
        self._merge_cache.update(deltas)
        self.merged_adapters.extend(names)

    def unmerge(self) -> None:
        """Subtract the ΔW kept at merge time (last merged first)."""
        if not self.merged:
            warnings.warn(f"{self._where()}: already unmerged; nothing to do", stacklevel=2)
            return
        base = self.get_base_layer()
        with torch.no_grad():
            while self.merged_adapters:
                a = self.merged_adapters.pop()
                delta = self._merge_cache.pop(a)
                w0 = canonical_weight(base, self.kind)
                w = w0.reshape(w0.shape[0], -1).to(delta.dtype) - delta
                write_canonical_weight(base, self.kind, w.reshape(w0.shape).to(w0.dtype))
