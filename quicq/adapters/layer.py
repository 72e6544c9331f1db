"""Adapter layers: a frozen Linear / Conv1D / Conv2d wrapped with QuIC or Quantum-PEFT adapters.

Both layer classes keep peft's tuner-layer protocol (``base_layer``, per-adapter
``nn.ParameterDict`` containers named in ``adapter_layer_names``, ``set_adapter``,
``enable_adapters``, ``delete_adapter``, ``merge``/``unmerge``, ``merged_adapters``), so
:mod:`quicq.adapters.peft_interop` can register them with peft by mixing in peft's
``BaseTunerLayer`` without re-implementing anything. They never import peft themselves.

Supported base layers (checked by :func:`layer_geometry`): ``nn.Linear``; transformers'
``Conv1D`` (weight stored (in, out)); ``nn.Conv2d`` with ``groups == 1`` (any kernel: a QuIC
rotation acts on channels, which commutes with the spatial convolution; Quantum-PEFT treats the
kernel as a (out, in·kh·kw) matrix, like LoRA). Internally every weight is read in a canonical
layout with the output axis first and the input (channel) axis second.

Block sources. A QuIC layer gets its blocks from the exact engine by default
(:func:`quicq.engine.sector_blocks` on the layer's circuit and angles, one batched call for all
N blocks). :meth:`QuICLayer.set_block_source` swaps in anything else with the same contract —
the hardware path uses it to inject shot-estimated blocks. See :data:`BlockSource`.
"""

from __future__ import annotations

import functools
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from quicq.adapters.config import AdapterConfigError, QuantumPEFTConfig, QuICConfig
from quicq.adapters.counts import quic_block_dim
from quicq.circuits import Circuit, brick, butterfly, pauli, pyramid, x_layout

__all__ = [
    "AdapterError",
    "BlockSource",
    "ColumnSource",
    "LayerGeometry",
    "ModulesToSaveWrapper",
    "QuICLayer",
    "QuICSpec",
    "QuantumPEFTLayer",
    "QuantumPEFTSpec",
    "QuicqTunerLayer",
    "layer_geometry",
]

BlockSource = Callable[[Circuit, torch.Tensor, Sequence[int]], Sequence[torch.Tensor]] | Sequence[torch.Tensor]
"""Where a QuIC adapter's blocks come from, when not from the exact engine.

Either a callable with the signature of :func:`quicq.engine.sector_blocks`,
``source(circuit, angles, orders) -> list[Tensor]``, called on every forward with the adapter's
circuit (:meth:`QuICLayer.circuit`), its angle parameter (shape (N', n_params), N' = 1 with
``block_share`` else N; pass gradients through it if you can) and the sorted orders; or a fixed
list of tensors. Either way the result must be one float tensor per order, in sorted order,
of shape (N', C(n,k), C(n,k)): block ``[i]`` of order k is the weight-k sector matrix of
block i, rows/columns indexed by lexicographic k-subsets, acting on column vectors
(B[S,T] = ⟨S|C|T⟩, as the engine). Blocks are cast to the activations' dtype and device.
They must be orthogonal (project shot estimates onto O(n) first); merging checks this.
Not available for the ``cayley`` parameterization (it has no angles to hand over)."""

ColumnSource = Callable[[Circuit, torch.Tensor, int], torch.Tensor] | Sequence[torch.Tensor]
"""Quantum-PEFT counterpart of :data:`BlockSource`: a callable with the signature of
:func:`quicq.engine.pauli_columns`, ``source(circuit, angles, K) -> Tensor (N, K)``, called for
U (circuit on d_out) and for V (circuit on d_in); or a fixed pair ``(U, V)`` of shapes
(d_out, K) and (d_in, K) with orthonormal columns."""


class AdapterError(RuntimeError):
    """An adapter cannot be applied, merged or fed as requested; the message names the module."""


# ---------------------------------------------------------------------------------------------
# Base-layer geometry
# ---------------------------------------------------------------------------------------------


def _conv1d_class() -> type | None:
    """transformers' Conv1D class if transformers is already imported (never imports it)."""
    if "transformers" not in sys.modules:
        return None
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - exotic transformers builds
        return None
    return Conv1D


@dataclass(frozen=True)
class LayerGeometry:
    """Shape facts of a supported base layer.

    ``out_features``/``in_features`` are the sizes a rotation acts on (channels for Conv2d);
    ``in_flat`` is the input size of the weight seen as a matrix (in·kh·kw for Conv2d).
    """

    kind: str  # "linear" | "conv1d" | "conv2d"
    out_features: int
    in_features: int
    in_flat: int
    kernel_numel: int


SUPPORTED_LAYERS = "nn.Linear, transformers' Conv1D and nn.Conv2d (groups=1)"


def layer_geometry(module: nn.Module, name: str = "") -> LayerGeometry:
    """Classify ``module`` as a supported base layer, or raise :class:`AdapterConfigError`."""
    where = f"module {name!r}" if name else "module"
    if isinstance(module, nn.Linear):
        return LayerGeometry("linear", module.out_features, module.in_features, module.in_features, 1)
    conv1d = _conv1d_class()
    if conv1d is not None and isinstance(module, conv1d):
        d_in, d_out = module.weight.shape
        return LayerGeometry("conv1d", int(d_out), int(d_in), int(d_in), 1)
    if isinstance(module, nn.Conv2d):
        if module.groups != 1:
            raise AdapterConfigError(f"{where} is a grouped Conv2d (groups={module.groups}); quicq needs groups=1")
        kn = int(math.prod(module.kernel_size))
        return LayerGeometry("conv2d", module.out_channels, module.in_channels, module.in_channels * kn, kn)
    raise AdapterConfigError(
        f"{where} ({type(module).__name__}) matched the targets, but quicq adapts only {SUPPORTED_LAYERS}"
    )


def _canonical_weight(base: nn.Module, kind: str) -> torch.Tensor:
    """The weight with the output axis first and input axis second (a view, no copy)."""
    return base.weight.t() if kind == "conv1d" else base.weight


def _write_canonical_weight(base: nn.Module, kind: str, w: torch.Tensor) -> None:
    with torch.no_grad():
        base.weight.copy_(w.t() if kind == "conv1d" else w)


def _forward_with_weight(base: nn.Module, kind: str, x: torch.Tensor, w: torch.Tensor,
                         bias: torch.Tensor | None) -> torch.Tensor:
    """The base layer's computation with a canonical weight ``w`` and ``bias`` substituted."""
    if kind == "conv2d":
        return base._conv_forward(x, w, bias)
    return F.linear(x, w, bias)


def _channel_axis(kind: str) -> int:
    return 1 if kind == "conv2d" else -1


# ---------------------------------------------------------------------------------------------
# Block application: v ↦ B·v block-wise along one axis, never forming the d×d matrix
# ---------------------------------------------------------------------------------------------


def apply_blocks(t: torch.Tensor, blocks: Sequence[torch.Tensor], axis: int, n_blocks: int, block_size: int,
                 *, transpose: bool = False) -> torch.Tensor:
    """Rotate ``t`` along ``axis`` by blockdiag(⊕_k B_k ⊕ I) (or its transpose).

    ``axis`` has size d ≥ n_blocks·block_size; it is viewed as (N, b) blocks plus an untouched
    tail. Within each block the first Σ C(n,k) coordinates are rotated, sector by sector, by the
    (N' ∈ {1, N}, D_k, D_k) tensors in ``blocks``; the rest of the block is identity. Cost:
    numel(t)/d · N · Σ D_k² multiply-adds.
    """
    t = t.movedim(axis, -1)
    lead, d = t.shape[:-1], t.shape[-1]
    used = n_blocks * block_size
    head = t[..., :used].reshape(*lead, n_blocks, block_size)
    parts, off = [], 0
    for B in blocks:
        D = B.shape[-1]
        if transpose:
            B = B.transpose(-1, -2)
        if B.shape[0] != n_blocks:
            B = B.expand(n_blocks, D, D)
        parts.append(torch.einsum("...nj,nij->...ni", head[..., off:off + D], B))
        off += D
    if off < block_size:
        parts.append(head[..., off:])
    out = torch.cat(parts, dim=-1).reshape(*lead, used)
    if used < d:
        out = torch.cat([out, t[..., used:]], dim=-1)
    return out.movedim(-1, axis)


def _orthogonality_error(blocks: Sequence[torch.Tensor]) -> float:
    err = 0.0
    for B in blocks:
        B = B.detach().double()
        eye = torch.eye(B.shape[-1], dtype=B.dtype, device=B.device)
        err = max(err, float((B.transpose(-1, -2) @ B - eye).abs().max()))
    return err


# ---------------------------------------------------------------------------------------------
# Per-adapter specs: every shape decision, made once, from (config, base layer, name)
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _block_circuit(parameterization: str, n: int, n_layers: int) -> Circuit:
    """The circuit of one QuIC block (circuits are immutable, so one object serves all layers)."""
    if parameterization in ("pyramid", "cayley"):
        return pyramid(n)
    if parameterization == "x":
        return x_layout(n)
    if parameterization == "butterfly":
        return butterfly(n)  # FBS gates: the compounds are exact for every order
    return brick(n, n_layers)


@functools.lru_cache(maxsize=256)
def _pauli_circuit(N: int, n_layers: int) -> Circuit:
    return pauli(N, n_layers)


@dataclass(frozen=True)
class QuICSpec:
    """Resolved geometry of one QuIC adapter on one layer (pure data, no tensors).

    ``d`` is the rotated size (out_features for ``rotate="output"``, in channels for
    ``"input"``); N blocks of size b, n qubits per block, ``dims[i] = C(n, orders[i])``.
    """

    module_name: str
    kind: str
    rotate: str
    d: int
    n_blocks: int
    block_size: int
    n: int
    orders: tuple[int, ...]
    dims: tuple[int, ...]
    parameterization: str
    n_layers: int
    block_share: bool
    apply_mode: str
    param_shape: tuple[int, ...]

    @property
    def circuit(self) -> Circuit:
        """The block circuit (for cayley: the pyramid that Givens compiles A into)."""
        return _block_circuit(self.parameterization, self.n, self.n_layers)

    @property
    def n_shared(self) -> int:
        """Number of distinct A matrices: 1 with block_share, else N."""
        return 1 if self.block_share else self.n_blocks

    @property
    def rotated(self) -> int:
        """Σ C(n, k): rotated coordinates per block."""
        return sum(self.dims)

    @property
    def n_parameters(self) -> int:
        return math.prod(self.param_shape)

    @classmethod
    def build(cls, config: QuICConfig, base: nn.Module, name: str) -> QuICSpec:
        """Resolve ``config`` on base layer ``base`` (module ``name``); raise with name and size."""
        geo = layer_geometry(base, name)
        d = geo.out_features if config.rotate == "output" else geo.in_features
        side = "out_features" if config.rotate == "output" else "in_features"
        if config.block_size is not None:
            b = config.block_size
            if b > d:
                raise AdapterConfigError(
                    f"module {name!r}: block_size={b} is larger than its {side}={d}; blocks cannot tile it"
                )
            N = d // b
        else:
            N = config.effective_n_blocks
            assert N is not None
            if N > d:
                raise AdapterConfigError(f"module {name!r}: n_blocks={N} exceeds its {side}={d}")
            b = d // N
        power2 = config.parameterization == "butterfly"
        try:
            n = quic_block_dim(b, config.orders, power_of_two=power2)
        except ValueError as exc:
            raise AdapterConfigError(
                f"module {name!r} ({side}={d}, {N} blocks of size {b}): {exc}"
            ) from None
        if max(config.orders) > n:
            raise AdapterConfigError(
                f"module {name!r} ({side}={d}, block size {b}): orders {list(config.orders)} need "
                f"k ≤ n, but only n={n} qubits fit a block"
            )
        p = config.parameterization
        circuit = _block_circuit(p, n, config.n_layers)
        n_shared = 1 if config.block_share else N
        shape = (n_shared, n, n) if p == "cayley" else (n_shared, circuit.n_params)
        return cls(
            module_name=name, kind=geo.kind, rotate=config.rotate, d=d, n_blocks=N, block_size=b, n=n,
            orders=tuple(config.orders), dims=tuple(math.comb(n, k) for k in config.orders),
            parameterization=p, n_layers=config.n_layers, block_share=config.block_share,
            apply_mode=config.apply_mode, param_shape=shape,
        )


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
            n_layers=config.n_layers, scale=config.effective_scale,
        )


# ---------------------------------------------------------------------------------------------
# Shared tuner-layer protocol
# ---------------------------------------------------------------------------------------------


def _adapter_dtype(base: nn.Module) -> torch.dtype:
    """Adapters train in float32 (float64 if the base layer is float64), whatever the base dtype."""
    w = base.weight
    return torch.float64 if w.dtype == torch.float64 else torch.float32


class QuicqTunerLayer(nn.Module):
    """Common machinery: base layer, active adapters, enable/disable, merge bookkeeping.

    Subclasses define ``adapter_layer_names`` (the ``nn.ParameterDict`` attributes holding
    trainable tensors, keyed by adapter name) and ``other_param_names`` (plain dicts keyed by
    adapter name), exactly as peft's ``BaseTunerLayer`` expects.
    """

    adapter_layer_names: tuple[str, ...] = ()
    other_param_names: tuple[str, ...] = ()

    def __init__(self, base_layer: nn.Module, module_name: str = "") -> None:
        super().__init__()
        self.base_layer = base_layer
        self.module_name = module_name
        self.kind = layer_geometry(base_layer, module_name).kind
        self._active_adapter: list[str] = []
        self._disable_adapters = False
        self.merged_adapters: list[str] = []
        self._merge_cache: dict[str, Any] = {}

    # -- peft-compatible accessors ---------------------------------------------------------
    def get_base_layer(self) -> nn.Module:
        base = self
        while hasattr(base, "base_layer"):
            base = base.base_layer
        return base

    @property
    def weight(self) -> torch.Tensor:
        """The base layer's weight (model code such as T5's reads ``module.weight``)."""
        return self.get_base_layer().weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.get_base_layer().bias

    @property
    def merged(self) -> bool:
        return bool(self.merged_adapters)

    @property
    def disable_adapters(self) -> bool:
        return self._disable_adapters

    @property
    def active_adapter(self) -> list[str]:
        return self._active_adapter

    @property
    def active_adapters(self) -> list[str]:
        a = self._active_adapter
        return [a] if isinstance(a, str) else list(a)

    def adapter_names(self) -> list[str]:
        """Adapters present on this layer, in insertion order."""
        return list(getattr(self, self.adapter_layer_names[0]).keys())

    def _all_available_adapter_names(self) -> list[str]:
        return sorted(self.adapter_names())

    def _chain(self) -> list[str]:
        """Active adapters that live on this layer, in activation order."""
        present = set(self.adapter_names())
        return [a for a in self.active_adapters if a in present]

    def set_adapter(self, adapter_names: str | list[str], inference_mode: bool = False) -> None:
        """Activate ``adapter_names`` (in order); only active adapters get ``requires_grad``."""
        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        for attr in self.adapter_layer_names:
            for key, p in getattr(self, attr).items():
                p.requires_grad_(key in names and not inference_mode)
        self._active_adapter = names

    def enable_adapters(self, enabled: bool) -> None:
        """Turn all adapters of this layer on or off (off: the base layer's output, frozen adapters).

        Re-enabling restores the ``requires_grad`` flags from before disabling, so an adapter
        loaded for inference stays frozen.
        """
        params = [p for attr in self.adapter_layer_names for p in getattr(self, attr).values()]
        if enabled:
            saved = self.__dict__.pop("_grad_before_disable", None)
            if saved is not None and len(saved) == len(params):
                for p, flag in zip(params, saved):
                    p.requires_grad_(flag)
            else:
                self.set_adapter(self.active_adapters)
            self._disable_adapters = False
        else:
            if not self._disable_adapters:
                self.__dict__["_grad_before_disable"] = [p.requires_grad for p in params]
            for p in params:
                p.requires_grad_(False)
            self._disable_adapters = True

    def delete_adapter(self, adapter_name: str) -> None:
        """Remove one adapter's tensors and settings; pick a remaining adapter if it was active."""
        if adapter_name in self.merged_adapters:
            raise AdapterError(f"{self._where()}: adapter {adapter_name!r} is merged; unmerge before deleting it")
        for attr in self.adapter_layer_names + self.other_param_names:
            container = getattr(self, attr)
            if adapter_name in container:
                del container[adapter_name]
        if adapter_name in self.active_adapters:
            rest = [a for a in self.active_adapters if a != adapter_name]
            if not rest and self.adapter_names():
                rest = [min(self.adapter_names())]
            self.set_adapter(rest)

    def _where(self) -> str:
        return f"module {self.module_name!r}" if self.module_name else type(self).__name__

    def _grad_wanted(self, chain: Sequence[str]) -> bool:
        if not torch.is_grad_enabled():
            return False
        return any(p.requires_grad for a in chain for attr in self.adapter_layer_names
                   for k, p in getattr(self, attr).items() if k == a)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        chain = self._chain()
        if self.merged or not chain:
            return self.base_layer(x, *args, **kwargs)
        return self._adapted_forward(x, chain)

    def _adapted_forward(self, x: torch.Tensor, chain: list[str]) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:  # pragma: no cover
        raise NotImplementedError

    def unmerge(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"quicq.{super().__repr__()}"


# ---------------------------------------------------------------------------------------------
# QuIC
# ---------------------------------------------------------------------------------------------


class QuICLayer(QuicqTunerLayer):
    """QuIC compound adapter on a frozen layer (DESIGN §4).

    Output side (default): y = R_L ··· R_1 · (W x) + bias, with R_a = blockdiag over N blocks of
    ⊕_{k∈K} C_k(A_i) ⊕ I and any leftover rows (d − N·b) untouched. The bias is added after the
    rotation, unrotated, as in the paper's code. Input side: y = W · R_1 ··· R_L · x + bias.
    Adapters are chained in activation order, the first one closest to W; merging them in that
    order reproduces the chain exactly.

    The d×d rotation is never formed. Per forward the layer picks the cheaper of
      * rotating activations: tokens · N·ΣD_k² (×3 with backward), or
      * rotating the weight once: N·ΣD_k² · (in·kh·kw for output side, out·kh·kw for input side),
        plus, when gradients are needed, the tokens·out·in of the weight gradient dW' that
        the rotated weight then requires,
    (ΣD_k² = Σ C(n,k)²; tokens = number of vectors the layer maps). So training almost always
    rotates activations and large-batch inference rotates the weight. ``apply_mode`` in the
    config (or :attr:`apply_mode` on the layer) forces one.

    Block sources: see :data:`BlockSource` and :meth:`set_block_source`.
    """

    adapter_layer_names = ("quic_params",)
    other_param_names = ("quic_spec", "quic_block_source")

    def __init__(self, base_layer: nn.Module, module_name: str = "") -> None:
        super().__init__(base_layer, module_name)
        self.quic_params = nn.ParameterDict()
        self.quic_spec: dict[str, QuICSpec] = {}
        self.quic_block_source: dict[str, BlockSource] = {}
        self.apply_mode = "auto"
        self.last_apply_mode: str | None = None  # "activations" | "weight": what the last forward did

    def update_layer(self, adapter_name: str, spec: QuICSpec, init_weights: bool = True) -> None:
        """Add adapter ``adapter_name`` with geometry ``spec`` (identity unless init_weights=False)."""
        if adapter_name in self.quic_params:
            raise AdapterError(f"{self._where()}: adapter {adapter_name!r} already exists")
        base = self.get_base_layer()
        p = torch.zeros(spec.param_shape, dtype=_adapter_dtype(base), device=base.weight.device)
        if not init_weights:
            nn.init.normal_(p, std=0.1)
        self.quic_params[adapter_name] = nn.Parameter(p)
        self.quic_spec[adapter_name] = spec
        self.apply_mode = spec.apply_mode
        self.set_adapter(self.active_adapters)

    # -- circuits and blocks ------------------------------------------------------------------
    def _name(self, adapter_name: str | None) -> str:
        if adapter_name is None:
            chain = self._chain() or self.adapter_names()
            if not chain:
                raise AdapterError(f"{self._where()} holds no adapter")
            return chain[0]
        if adapter_name not in self.quic_spec:
            raise AdapterError(f"{self._where()} has no adapter {adapter_name!r}; it has {self.adapter_names()}")
        return adapter_name

    def circuit(self, adapter_name: str | None = None) -> Circuit:
        """The quicq circuit of one block of this adapter (all N blocks share it, angles differ).

        For ``cayley`` this is the pyramid on n qubits that :meth:`angles` compiles A into.
        """
        return self.quic_spec[self._name(adapter_name)].circuit

    def angles(self, adapter_name: str | None = None) -> torch.Tensor:
        """Angles of :meth:`circuit`, shape (N', n_params) (N' = 1 with block_share).

        Circuit parameterizations return the live trainable parameter. ``cayley`` returns
        detached angles compiled from the current A matrices by the Givens compiler.
        """
        name = self._name(adapter_name)
        spec = self.quic_spec[name]
        if spec.parameterization != "cayley":
            return self.quic_params[name]
        from quicq.circuits.givens import givens_decompose

        A = self._cayley(self.quic_params[name].detach().double())
        rows = []
        for Ai in A:
            circ, th = givens_decompose(Ai.cpu().numpy(), layout="pyramid")
            if circ != spec.circuit:  # det −1 cannot happen for a Cayley matrix; stay safe anyway
                raise AdapterError(f"{self._where()}: Cayley block did not compile to the plain pyramid")
            rows.append(torch.as_tensor(th, dtype=torch.float64))
        return torch.stack(rows).to(self.quic_params[name].dtype)

    @staticmethod
    def _cayley(M: torch.Tensor) -> torch.Tensor:
        """A = (I − S)(I + S)⁻¹, S = (M − Mᵀ)/2 (paper code's convention); A(0) = I, det A = +1."""
        S = 0.5 * (M - M.transpose(-1, -2))
        eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device).expand_as(S)
        return torch.linalg.solve(eye + S, eye - S)  # (I+S)⁻¹(I−S) = (I−S)(I+S)⁻¹: they commute

    def set_block_source(self, source: BlockSource | None, adapter_name: str | None = None) -> None:
        """Take this adapter's blocks from ``source`` instead of the exact engine (None: back to it).

        ``adapter_name=None`` sets it for every adapter of the layer. Contract: :data:`BlockSource`.
        """
        names = self.adapter_names() if adapter_name is None else [self._name(adapter_name)]
        for name in names:
            if source is None:
                self.quic_block_source.pop(name, None)
                continue
            if self.quic_spec[name].parameterization == "cayley":
                raise AdapterError(
                    f"{self._where()}: adapter {name!r} uses the cayley parameterization, which has no "
                    "circuit angles to hand to a block source; use a circuit parameterization"
                )
            if not callable(source):
                source = [torch.as_tensor(b) for b in source]
                self._check_blocks(name, source)
            self.quic_block_source[name] = source

    def _check_blocks(self, name: str, blocks: Sequence[torch.Tensor]) -> None:
        spec = self.quic_spec[name]
        if len(blocks) != len(spec.orders):
            raise AdapterError(
                f"{self._where()}: block source for {name!r} returned {len(blocks)} tensors, expected one per "
                f"order {list(spec.orders)}"
            )
        for k, D, B in zip(spec.orders, spec.dims, blocks):
            if not isinstance(B, torch.Tensor) or not B.is_floating_point():
                raise AdapterError(f"{self._where()}: order-{k} block of {name!r} must be a float tensor")
            if B.ndim != 3 or B.shape[-2:] != (D, D) or B.shape[0] not in (1, spec.n_blocks):
                raise AdapterError(
                    f"{self._where()}: order-{k} block of {name!r} has shape {tuple(B.shape)}, expected "
                    f"({spec.n_shared}, {D}, {D})"
                )

    def blocks(self, adapter_name: str | None = None) -> list[torch.Tensor]:
        """Per-order blocks (N', C(n,k), C(n,k)) of an adapter, from its source or the engine."""
        name = self._name(adapter_name)
        spec = self.quic_spec[name]
        p = self.quic_params[name]
        source = self.quic_block_source.get(name)
        if source is not None:
            out = list(source(spec.circuit, p, spec.orders)) if callable(source) else list(source)
            self._check_blocks(name, out)
            return [B.to(device=p.device) for B in out]
        from quicq.engine import compound, sector_blocks

        if spec.parameterization == "cayley":
            A = self._cayley(p)
            return [A if k == 1 else compound(A, k) for k in spec.orders]
        return list(sector_blocks(spec.circuit, p, spec.orders))

    def rotation(self, adapter_name: str | None = None) -> torch.Tensor:
        """The dense d×d rotation of one adapter — for inspection and tests only, never in forward."""
        name = self._name(adapter_name)
        spec = self.quic_spec[name]
        blocks = self.blocks(name)
        eye = torch.eye(spec.d, dtype=blocks[0].dtype, device=blocks[0].device)
        return apply_blocks(eye, blocks, 0, spec.n_blocks, spec.block_size)

    # -- forward --------------------------------------------------------------------------
    def _choose_mode(self, x: torch.Tensor, chain: list[str], grad: bool) -> str:
        if self.apply_mode != "auto":
            return self.apply_mode
        geo = layer_geometry(self.get_base_layer(), self.module_name)
        axis = _channel_axis(self.kind)
        tokens = x.numel() // max(1, x.shape[axis])
        act = wgt = 0
        for a in chain:
            s = self.quic_spec[a]
            rot = s.n_blocks * sum(D * D for D in s.dims)
            act += tokens * rot * (3 if grad else 1)
            other = geo.in_flat if s.rotate == "output" else geo.out_features * geo.kernel_numel
            wgt += rot * other
        if grad:
            wgt += tokens * geo.out_features * geo.in_flat  # dL/dW' of the rotated weight
        return "weight" if wgt < act else "activations"

    def _adapted_forward(self, x: torch.Tensor, chain: list[str]) -> torch.Tensor:
        base = self.get_base_layer()
        grad = self._grad_wanted(chain)
        mode = self._choose_mode(x, chain, grad)
        self.last_apply_mode = mode
        blocks = {a: self.blocks(a) for a in chain}
        if mode == "weight":
            w = self._rotated_weight(_canonical_weight(base, self.kind), chain, blocks)
            return _forward_with_weight(base, self.kind, x, w.to(x.dtype), base.bias)
        axis = _channel_axis(self.kind)
        specs = self.quic_spec
        for a in reversed(chain):  # input side: the last adapter acts on x first
            s = specs[a]
            if s.rotate == "input":
                x = apply_blocks(x, [B.to(x.dtype) for B in blocks[a]], axis, s.n_blocks, s.block_size)
        y = _forward_with_weight(base, self.kind, x, _canonical_weight(base, self.kind), None)
        for a in chain:
            s = specs[a]
            if s.rotate == "output":
                y = apply_blocks(y, [B.to(y.dtype) for B in blocks[a]], axis, s.n_blocks, s.block_size)
        if base.bias is not None:
            shape = (1, -1, 1, 1) if self.kind == "conv2d" else (-1,)
            y = y + base.bias.view(shape)
        return y

    def _rotated_weight(self, w: torch.Tensor, chain: Sequence[str], blocks: dict[str, list[torch.Tensor]],
                        *, inverse: bool = False) -> torch.Tensor:
        """W' = R_out · W · R_in for ``chain`` (first adapter applied first); ``inverse`` undoes it."""
        order = list(reversed(chain)) if inverse else list(chain)
        for a in order:
            s = self.quic_spec[a]
            bl = [B.to(w.dtype) for B in blocks[a]]
            if s.rotate == "output":  # W ← R W (inverse: Rᵀ W)
                w = apply_blocks(w, bl, 0, s.n_blocks, s.block_size, transpose=inverse)
            else:  # W ← W R, i.e. each row w ↦ Rᵀ w (inverse: W Rᵀ)
                w = apply_blocks(w, bl, 1, s.n_blocks, s.block_size, transpose=not inverse)
        return w

    # -- merging --------------------------------------------------------------------------
    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        """Fold adapters (default: the active chain) into the base weight, in chain order.

        The blocks used are kept, so :meth:`unmerge` undoes exactly this merge with Rᵀ even if
        the parameters or the block source change meanwhile. Blocks must be orthogonal (1e-4).
        """
        names = self._chain() if adapter_names is None else [self._name(a) for a in adapter_names]
        names = [a for a in names if a not in self.merged_adapters]
        if not names:
            return
        base = self.get_base_layer()
        with torch.no_grad():
            blocks = {a: [B.detach() for B in self.blocks(a)] for a in names}
            for a in names:
                err = _orthogonality_error(blocks[a])
                if err > 1e-4:
                    raise AdapterError(
                        f"{self._where()}: blocks of adapter {a!r} are not orthogonal "
                        f"(max |BᵀB − I| = {err:.2e}); project them onto O(n) before merging"
                    )
            w0 = _canonical_weight(base, self.kind)
            w = self._rotated_weight(w0.to(blocks[names[0]][0].dtype), names, blocks).to(w0.dtype)
            if safe_merge and not torch.isfinite(w).all():
                raise AdapterError(f"{self._where()}: merging {names} produced non-finite weights")
            _write_canonical_weight(base, self.kind, w)
        for a in names:
            self._merge_cache[a] = blocks[a]
        self.merged_adapters.extend(names)

    def unmerge(self) -> None:
        """Undo :meth:`merge` (last merged first) with the transposed blocks kept at merge time."""
        if not self.merged:
            warnings.warn(f"{self._where()}: already unmerged; nothing to do", stacklevel=2)
            return
        base = self.get_base_layer()
        with torch.no_grad():
            while self.merged_adapters:
                a = self.merged_adapters.pop()
                blocks = self._merge_cache.pop(a)
                w0 = _canonical_weight(base, self.kind)
                w = self._rotated_weight(w0.to(blocks[0].dtype), [a], {a: blocks}, inverse=True)
                _write_canonical_weight(base, self.kind, w.to(w0.dtype))


# ---------------------------------------------------------------------------------------------
# Quantum-PEFT
# ---------------------------------------------------------------------------------------------


class QuantumPEFTLayer(QuicqTunerLayer):
    """Quantum-PEFT on a frozen layer: y = base(x) + Σ_a scale_a · U_a diag(λ_a) V_aᵀ x.

    U = first K columns of Q(θ_U) ∈ SO(d_out) (:func:`quicq.engine.pauli_columns` on
    ``pauli(d_out, L)``), V likewise on d_in, λ ∈ R^K starts at 0 so ΔW = 0. The forward
    computes ((x V) ⊙ λ) Uᵀ and never forms ΔW (for Conv2d: a K-channel convolution with V as
    kernel, then a 1×1 convolution with U, as LoRA does for convolutions).
    """

    adapter_layer_names = ("qpeft_theta_u", "qpeft_theta_v", "qpeft_lambda")
    other_param_names = ("qpeft_spec", "qpeft_block_source")

    def __init__(self, base_layer: nn.Module, module_name: str = "") -> None:
        super().__init__(base_layer, module_name)
        self.qpeft_theta_u = nn.ParameterDict()
        self.qpeft_theta_v = nn.ParameterDict()
        self.qpeft_lambda = nn.ParameterDict()
        self.qpeft_spec: dict[str, QuantumPEFTSpec] = {}
        self.qpeft_block_source: dict[str, ColumnSource] = {}

    def update_layer(self, adapter_name: str, spec: QuantumPEFTSpec, init_weights: bool = True) -> None:
        """Add adapter ``adapter_name``; λ = 0 (ΔW = 0) unless init_weights=False."""
        if adapter_name in self.qpeft_spec:
            raise AdapterError(f"{self._where()}: adapter {adapter_name!r} already exists")
        base = self.get_base_layer()
        kw = {"dtype": _adapter_dtype(base), "device": base.weight.device}
        for attr, shape in spec.param_shapes.items():
            p = torch.zeros(shape, **kw)
            if not init_weights:
                nn.init.normal_(p, std=0.1)
            getattr(self, attr)[adapter_name] = nn.Parameter(p)
        self.qpeft_spec[adapter_name] = spec
        self.set_adapter(self.active_adapters)

    def _name(self, adapter_name: str | None) -> str:
        if adapter_name is None:
            chain = self._chain() or self.adapter_names()
            if not chain:
                raise AdapterError(f"{self._where()} holds no adapter")
            return chain[0]
        if adapter_name not in self.qpeft_spec:
            raise AdapterError(f"{self._where()} has no adapter {adapter_name!r}; it has {self.adapter_names()}")
        return adapter_name

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
        if source is None:
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
            w0 = _canonical_weight(base, self.kind)
            deltas = {a: self.delta_weight(a).detach() for a in names}
            w = w0.reshape(w0.shape[0], -1).to(deltas[names[0]].dtype)
            for a in names:
                w = w + deltas[a]
            if safe_merge and not torch.isfinite(w).all():
                raise AdapterError(f"{self._where()}: merging {names} produced non-finite weights")
            _write_canonical_weight(base, self.kind, w.reshape(w0.shape).to(w0.dtype))
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
                w0 = _canonical_weight(base, self.kind)
                w = w0.reshape(w0.shape[0], -1).to(delta.dtype) - delta
                _write_canonical_weight(base, self.kind, w.reshape(w0.shape).to(w0.dtype))


# ---------------------------------------------------------------------------------------------
# modules_to_save
# ---------------------------------------------------------------------------------------------


class ModulesToSaveWrapper(nn.Module):
    """Keeps a frozen original module and one trainable copy per adapter (peft's semantics).

    The forward uses the copy of the first active adapter that has one, the original when
    adapters are disabled or none has a copy, so ``disable_adapter()`` still gives the base model.
    """

    def __init__(self, module: nn.Module, module_name: str = "") -> None:
        super().__init__()
        self.original_module = module
        self.modules_to_save = nn.ModuleDict()
        self.module_name = module_name
        self._active_adapter: list[str] = []
        self._disable_adapters = False

    def add(self, adapter_name: str) -> None:
        import copy

        clone = copy.deepcopy(self.original_module)
        clone.requires_grad_(True)
        self.modules_to_save[adapter_name] = clone

    @property
    def active_adapters(self) -> list[str]:
        return list(self._active_adapter)

    def adapter_names(self) -> list[str]:
        return list(self.modules_to_save.keys())

    def set_adapter(self, adapter_names: str | list[str], inference_mode: bool = False) -> None:
        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        self.original_module.requires_grad_(False)
        for key, m in self.modules_to_save.items():
            m.requires_grad_(key in names and not inference_mode)
        self._active_adapter = names

    def enable_adapters(self, enabled: bool) -> None:
        params = list(self.modules_to_save.parameters())
        if enabled:
            saved = self.__dict__.pop("_grad_before_disable", None)
            if saved is not None and len(saved) == len(params):
                for p, flag in zip(params, saved):
                    p.requires_grad_(flag)
            else:
                self.set_adapter(self._active_adapter)
        else:
            if not self._disable_adapters:
                self.__dict__["_grad_before_disable"] = [p.requires_grad for p in params]
            self.modules_to_save.requires_grad_(False)
        self._disable_adapters = not enabled

    def delete_adapter(self, adapter_name: str) -> None:
        if adapter_name in self.modules_to_save:
            del self.modules_to_save[adapter_name]
        self._active_adapter = [a for a in self._active_adapter if a != adapter_name]

    def active_module(self) -> nn.Module:
        if not self._disable_adapters:
            for a in self._active_adapter:
                if a in self.modules_to_save:
                    return self.modules_to_save[a]
        return self.original_module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.active_module()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in ("original_module", "modules_to_save"):
                raise
            return getattr(self.active_module(), name)
