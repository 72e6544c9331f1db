"""QuIC compound adapters: the spec (every shape decision, made once) and the layer.

Output side (default): y = R_L ··· R_1 · (W x) + bias, with R_a = blockdiag over N blocks of
⊕_{k∈K} C_k(A_i) ⊕ I and any leftover rows (d − N·b) untouched. The bias is added after the
rotation, unrotated, as in the paper's code. Input side: y = W · R_1 ··· R_L · x + bias.
Adapters are chained in activation order, the first one closest to W.

A_i comes from the adapter's :class:`~quicq.adapters.parameterizations.Parameterization`
(A = A(θ)·A₀ᵀ for circuit charts, identity at the start). Compounds are applied as exterior
powers (k = 2: U·X·Uᵀ) unless forming C_k(A) is cheaper (small n); the d×d rotation is never
formed. Per forward the layer also picks the cheaper of rotating activations and rotating the
weight once (then gradients need the tokens·out·in weight gradient), counting the exterior
kernel's multiply-adds at :data:`~quicq.adapters.apply.EXTERIOR_MAC_WEIGHT` GEMM ones: in
training that rotates the weight at MiniLM's width (384, n = 27) and BERT's FFN input
(768 → 3072, n = 77), the activations at 768 → 768 and wider.

Block sources (the hardware path): a source returns the *circuit's* blocks at the circuit's
angles (:meth:`QuICLayer.circuit`, :meth:`QuICLayer.angles`); the layer composes them with the
fixed reference C_k(A₀)ᵀ. See :data:`BlockSource`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from quicq.adapters.apply import Rotation, apply_rotation, rotation_time
from quicq.adapters.config import AdapterConfigError, QuICConfig, resolve_rotate
from quicq.adapters.forward_batch import ForwardBatch
from quicq.adapters.counts import quic_block_dim, quic_fits
from quicq.adapters.geometry import (adapter_dtype, canonical_weight, channel_axis, forward_with_weight,
                                     layer_geometry, write_canonical_weight)
from quicq.adapters.parameterizations import Parameterization, get_parameterization
from quicq.adapters.tuner import AdapterError, QuicqTunerLayer
from quicq.circuits import Circuit

__all__ = ["BlockSource", "QuICLayer", "QuICSpec"]

BlockSource = Callable[[Circuit, torch.Tensor, Sequence[int]], Sequence[torch.Tensor]] | Sequence[torch.Tensor]
"""Where a QuIC adapter's circuit blocks come from, when not from the exact engine.

Either a callable with the signature of :func:`quicq.engine.sector_blocks`,
``source(circuit, angles, orders) -> list[Tensor]``, called on every forward with the adapter's
circuit (:meth:`QuICLayer.circuit`), its angles (shape (N', n_params), N' = 1 with
``block_share`` else N; the live parameter for circuit charts: pass gradients through it if
you can) and the sorted orders; or a fixed list of tensors. The result is one float tensor per
order, of shape (N', C(n,k), C(n,k)): the weight-k sector matrix of the circuit at those angles,
rows/columns indexed by lexicographic k-subsets (B[S,T] = ⟨S|C|T⟩, as the engine). They must be
orthogonal (project shot estimates onto O(n) first); merging checks this."""

#: Largest C(n,j)² (entries of one intermediate compound, j ≤ k: the Laplace recursion forms
#: every lower order) a config may need; beyond it the config is refused before any allocation.
_MAX_SECTOR_ENTRIES = 1 << 24


@lru_cache(maxsize=512)
def _param(name: str, n: int, n_layers: int, start: str) -> Parameterization:
    return get_parameterization(name, n, n_layers, start)


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
    start: str = "sorting"
    compound_mode: str = "auto"

    @property
    def param(self) -> Parameterization:
        """The parameterization object of one block."""
        return _param(self.parameterization, self.n, self.n_layers, self.start)

    @property
    def circuit(self) -> Circuit:
        """The block circuit (for cayley: the pyramid its matrices compile into)."""
        return self.param.circuit

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
        sizing = {"n_blocks": config.n_blocks, "block_size": config.block_size, "orders": config.orders,
                  "parameterization": config.parameterization,
                  "n_layers": config.n_layers if config.parameterization == "brick" else None}
        rotate = resolve_rotate(config.rotate, geo.out_features, geo.in_features,
                                lambda d: quic_fits(d, **sizing))
        d = geo.out_features if rotate == "output" else geo.in_features
        side = "out_features" if rotate == "output" else "in_features"
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
            raise AdapterConfigError(f"module {name!r} ({side}={d}, {N} blocks of size {b}): {exc}") from None
        kmax = max(config.orders)
        fits = [k for k in range(1, n + 1) if max(math.comb(n, j) for j in range(1, k + 1)) ** 2 <= _MAX_SECTOR_ENTRIES]
        if kmax > n or kmax > max(fits, default=0):
            raise AdapterConfigError(
                f"module {name!r} ({side}={d}, block size {b}): orders {list(config.orders)} need "
                f"{'k ≤ n, but only n=' + str(n) + ' qubits fit a block' if kmax > n else 'intermediate compounds larger than the block'}; "
                f"the largest order that fits is {max(fits, default=0)}"
            )
        p = config.parameterization
        chart = _param(p, n, config.n_layers, config.start)
        n_shared = 1 if config.block_share else N
        return cls(
            module_name=name, kind=geo.kind, rotate=rotate, d=d, n_blocks=N, block_size=b, n=n,
            orders=tuple(config.orders), dims=tuple(math.comb(n, k) for k in config.orders),
            parameterization=p, n_layers=config.n_layers, block_share=config.block_share,
            apply_mode=config.apply_mode, param_shape=(n_shared, *chart.param_shape), start=config.start,
            compound_mode=config.compound_mode,
        )


class QuICLayer(QuicqTunerLayer):
    """QuIC compound adapter on a frozen layer (see the module docstring)."""

    adapter_layer_names = ("quic_params",)
    other_param_names = ("quic_spec", "quic_block_source")

    def __init__(self, base_layer: nn.Module, module_name: str = "") -> None:
        super().__init__(base_layer, module_name)
        self.quic_params = nn.ParameterDict()
        self.quic_spec: dict[str, QuICSpec] = {}
        self.quic_block_source: dict[str, BlockSource] = {}
        self.apply_mode = "auto"
        self.last_apply_mode: str | None = None  # "activations" | "weight": what the last forward did
        #: set by :func:`quicq.adapters.forward_batch.forward_batch` during a model forward
        self.forward_batch: ForwardBatch | None = None

    def update_layer(self, adapter_name: str, spec: QuICSpec, init_weights: bool = True) -> None:
        """Add adapter ``adapter_name`` with geometry ``spec`` (identity unless init_weights=False)."""
        if adapter_name in self.quic_params:
            raise AdapterError(f"{self._where()}: adapter {adapter_name!r} already exists")
        base = self.get_base_layer()
        start = spec.param.start_params().to(adapter_dtype(base))
        p = start.expand(spec.param_shape).clone().to(base.weight.device)
        if not init_weights:
            p.add_(torch.randn_like(p), alpha=0.1)
        self.quic_params[adapter_name] = nn.Parameter(p)
        self.quic_spec[adapter_name] = spec
        self.apply_mode = spec.apply_mode
        self.set_adapter(self.active_adapters)

    # -- circuits and blocks ------------------------------------------------------------------
    def parameterization(self, adapter_name: str | None = None) -> Parameterization:
        """The parameterization object of an adapter's blocks."""
        return self.quic_spec[self._name(adapter_name)].param

    def circuit(self, adapter_name: str | None = None) -> Circuit:
        """The quicq circuit of one block of this adapter (all N blocks share it, angles differ)."""
        return self.quic_spec[self._name(adapter_name)].circuit

    def angles(self, adapter_name: str | None = None) -> torch.Tensor:
        """Angles of :meth:`circuit`, shape (N', n_params): the live parameter for circuit charts,
        detached compiled angles for ``cayley``."""
        name = self._name(adapter_name)
        return self.quic_spec[name].param.circuit_angles(self.quic_params[name])

    def set_block_source(self, source: BlockSource | None, adapter_name: str | None = None) -> None:
        """Take this adapter's circuit blocks from ``source`` instead of the engine (None: back to it)."""
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

    def _source_blocks(self, name: str) -> list[torch.Tensor] | None:
        source = self.quic_block_source.get(name)
        if source is None:
            return None
        spec, p = self.quic_spec[name], self.quic_params[name]
        out = list(source(spec.circuit, self.angles(name), spec.orders)) if callable(source) else list(source)
        self._check_blocks(name, out)
        return [B.to(device=p.device) for B in out]

    def blocks(self, adapter_name: str | None = None) -> list[torch.Tensor]:
        """The circuit's per-order blocks (N', C(n,k), C(n,k)) at its angles, from the source or
        the engine — what a backend estimates (before the fixed reference factor)."""
        name = self._name(adapter_name)
        out = self._source_blocks(name)
        if out is not None:
            return out
        spec = self.quic_spec[name]
        from quicq.engine import compound

        A = spec.param.circuit_matrix(self.quic_params[name])
        return [A if k == 1 else compound(A, k) for k in spec.orders]

    def _reference_blocks(self, spec: QuICSpec) -> list[torch.Tensor] | None:
        ref = spec.param.reference()
        if ref is None:
            return None
        from quicq.engine import compound

        return [ref if k == 1 else compound(ref, k) for k in spec.orders]  # exact signed permutations

    def applied_rotation(self, adapter_name: str | None = None) -> Rotation:
        """The rotation the layer applies: A = A(θ)·A₀ᵀ per block (or source blocks · C_k(A₀)ᵀ)."""
        name = self._name(adapter_name)
        spec, p = self.quic_spec[name], self.quic_params[name]
        src = self._source_blocks(name)
        if src is None:
            A = self.forward_batch.matrix(self, name) if self.forward_batch is not None else None
            A = spec.param.matrix(p) if A is None else A
            return Rotation.from_matrix(A, spec.orders, mode=spec.compound_mode)
        refs = self._reference_blocks(spec)
        if refs is not None:
            src = [B @ R.to(B.dtype).to(B.device).t() for B, R in zip(src, refs)]
        return Rotation.from_blocks(src, spec.orders, spec.n)

    def applied_blocks(self, adapter_name: str | None = None) -> list[torch.Tensor]:
        """Dense per-order blocks the layer applies (forms the compounds; for merging and tests)."""
        return self.applied_rotation(adapter_name).blocks()

    def rotation(self, adapter_name: str | None = None) -> torch.Tensor:
        """The dense d×d rotation of one adapter — for inspection and tests only, never in forward."""
        name = self._name(adapter_name)
        spec = self.quic_spec[name]
        rot = self.applied_rotation(name)
        ref = rot.A if rot.A is not None else rot.blocks()[0]
        eye = torch.eye(spec.d, dtype=ref.dtype, device=ref.device)
        return apply_rotation(eye, rot, 0, spec.n_blocks, spec.block_size)  # column j ↦ R e_j

    # -- forward --------------------------------------------------------------------------
    def _choose_mode(self, x: torch.Tensor, chain: list[str], grad: bool) -> str:
        if self.apply_mode != "auto":
            return self.apply_mode
        geo = layer_geometry(self.get_base_layer(), self.module_name)
        tokens = x.numel() // max(1, x.shape[channel_axis(self.kind)])
        # GEMM-equivalent multiply-adds: the exterior kernel is ~3× slower per multiply-add than
        # the one large GEMM (dL/dW') the weight route adds (measured, see EXTERIOR_MAC_WEIGHT)
        act = wgt = 0.0
        for a in chain:
            s = self.quic_spec[a]
            rot = s.n_blocks * rotation_time(s.n, s.orders, s.compound_mode)
            act += tokens * rot * (3 if grad else 1)
            other = geo.in_flat if s.rotate == "output" else geo.out_features * geo.kernel_numel
            wgt += rot * other * (2 if grad else 1)  # backward: only ∂L/∂A (W is frozen)
        if grad:
            wgt += tokens * geo.out_features * geo.in_flat  # dL/dW' of the rotated weight
        return "weight" if wgt < act else "activations"

    def _adapted_forward(self, x: torch.Tensor, chain: list[str]) -> torch.Tensor:
        base = self.get_base_layer()
        mode = self._choose_mode(x, chain, self._grad_wanted(chain))
        self.last_apply_mode = mode
        rots = {a: self.applied_rotation(a) for a in chain}
        if mode == "weight":
            w = self._rotated_weight(canonical_weight(base, self.kind), chain, rots)
            return forward_with_weight(base, self.kind, x, w.to(x.dtype), base.bias)
        axis = channel_axis(self.kind)
        for a in reversed(chain):  # input side: the last adapter acts on x first
            s = self.quic_spec[a]
            if s.rotate == "input":
                x = apply_rotation(x, rots[a].to(x.dtype), axis, s.n_blocks, s.block_size)
        y = forward_with_weight(base, self.kind, x, canonical_weight(base, self.kind), None)
        for a in chain:
            s = self.quic_spec[a]
            if s.rotate == "output":
                y = apply_rotation(y, rots[a].to(y.dtype), axis, s.n_blocks, s.block_size)
        if base.bias is not None:
            shape = (1, -1, 1, 1) if self.kind == "conv2d" else (-1,)
            y = y + base.bias.view(shape)
        return y

    def _rotated_weight(self, w: torch.Tensor, chain: Sequence[str], rots: dict[str, Rotation],
                        *, inverse: bool = False) -> torch.Tensor:
        """W' = R_out · W · R_in for ``chain`` (first adapter applied first); ``inverse`` undoes it."""
        order = list(reversed(chain)) if inverse else list(chain)
        for a in order:
            s = self.quic_spec[a]
            r = rots[a].to(w.dtype)
            if s.rotate == "output":  # W ← R W (inverse: Rᵀ W)
                w = apply_rotation(w, r, 0, s.n_blocks, s.block_size, transpose=inverse)
            else:  # W ← W R, i.e. each row w ↦ Rᵀ w (inverse: W Rᵀ)
                w = apply_rotation(w, r, 1, s.n_blocks, s.block_size, transpose=not inverse)
        return w

    # -- merging --------------------------------------------------------------------------
    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        """Fold adapters (default: the active chain) into the base weight, in chain order.

        The rotations used are kept, so :meth:`unmerge` undoes exactly this merge with Rᵀ even if
        the parameters or the block source change meanwhile. Blocks must be orthogonal (1e-4).
        """
        names = self._chain() if adapter_names is None else [self._name(a) for a in adapter_names]
        names = [a for a in names if a not in self.merged_adapters]
        if not names:
            return
        base = self.get_base_layer()
        with torch.no_grad():
            rots = {}
            for a in names:
                blocks = [B.detach() for B in self.applied_blocks(a)]
                err = _orthogonality_error(blocks)
                if err > 1e-4:
                    raise AdapterError(
                        f"{self._where()}: blocks of adapter {a!r} are not orthogonal "
                        f"(max |BᵀB − I| = {err:.2e}); project them onto O(n) before merging"
                    )
                rots[a] = Rotation.from_blocks(blocks, self.quic_spec[a].orders, self.quic_spec[a].n)
            w0 = canonical_weight(base, self.kind)
            dt = rots[names[0]].dense[0].dtype  # type: ignore[index,union-attr]
            w = self._rotated_weight(w0.to(dt), names, rots).to(w0.dtype)
            if safe_merge and not torch.isfinite(w).all():
                raise AdapterError(f"{self._where()}: merging {names} produced non-finite weights")
            write_canonical_weight(base, self.kind, w)
        for a in names:
            self._merge_cache[a] = rots[a]
        self.merged_adapters.extend(names)

    def unmerge(self) -> None:
        """Undo :meth:`merge` (last merged first) with the transposed rotations kept at merge time."""
        if not self.merged:
            warnings.warn(f"{self._where()}: already unmerged; nothing to do", stacklevel=2)
            return
        base = self.get_base_layer()
        with torch.no_grad():
            while self.merged_adapters:
                a = self.merged_adapters.pop()
                rot = self._merge_cache.pop(a)
                w0 = canonical_weight(base, self.kind)
                dt = rot.dense[0].dtype
                w = self._rotated_weight(w0.to(dt), [a], {a: rot}, inverse=True)
                write_canonical_weight(base, self.kind, w.to(w0.dtype))


def _orthogonality_error(blocks: Sequence[torch.Tensor]) -> float:
    err = 0.0
    for B in blocks:
        B = B.detach().double()
        eye = torch.eye(B.shape[-1], dtype=B.dtype, device=B.device)
        err = max(err, float((B.transpose(-1, -2) @ B - eye).abs().max()))
    return err
