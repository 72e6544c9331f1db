"""Adapter configurations: what to adapt and how, as plain dataclasses (peft's style).

Two methods (docs/design.md#adapters):

* :class:`QuICConfig` — QuIC compound adapters: a frozen layer's output (or input) is split into
  blocks, each rotated by ⊕_k C_k(A_i) ⊕ I with A_i an n×n orthogonal matrix given by circuit
  angles (pyramid, X, butterfly, brick) or a Cayley matrix.
* :class:`QuantumPEFTConfig` — Quantum-PEFT: ΔW = scale·U·diag(λ)·Vᵀ with U, V the first ``rank``
  columns of Pauli-circuit orthogonal matrices.

Targeting follows peft exactly so existing habits carry over: ``target_modules`` is a list of
names (a module matches when its qualified name equals an entry or ends with ``"." + entry``),
a regex string (must match the whole name), or ``"all-linear"`` (every Linear / Conv1D except
the output head of a transformers model). ``exclude_modules`` uses the same rules and wins over
``target_modules``; ``modules_to_save`` names extra modules (e.g. a fresh classifier) that are
trained in full and saved with the adapter.

Everything that can be checked without a model is checked in ``__post_init__``; what depends on
module sizes (blocks that cannot fit, a rank above the layer width) is checked when the adapter
is planned against a model, with the module's name and size in the message.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any, ClassVar

from quicq.errors import QuicqError

__all__ = [
    "METHODS",
    "QUIC_PARAMETERIZATIONS",
    "AdapterConfig",
    "AdapterConfigError",
    "QuICConfig",
    "QuantumPEFTConfig",
    "config_from_dict",
]

#: Parameterizations of a QuIC block's n×n orthogonal matrix A_i.
QUIC_PARAMETERIZATIONS: tuple[str, ...] = ("pyramid", "x", "butterfly", "brick", "cayley")
ROTATE_SIDES: tuple[str, ...] = ("output", "input", "auto")
APPLY_MODES: tuple[str, ...] = ("auto", "activations", "weight")
CHART_STARTS: tuple[str, ...] = ("sorting", "identity")
COMPOUND_MODES: tuple[str, ...] = ("auto", "exterior", "dense")
ALL_LINEAR = "all-linear"
#: peft's TaskType values; the classification ones train the model's head.
TASK_TYPES: tuple[str, ...] = ("SEQ_CLS", "TOKEN_CLS", "CAUSAL_LM", "SEQ_2_SEQ_LM", "QUESTION_ANS",
                               "FEATURE_EXTRACTION")
CLASSIFICATION_TASKS: tuple[str, ...] = ("SEQ_CLS", "TOKEN_CLS")
#: peft (LoRA) field names and what quicq calls them.
PEFT_FIELD_HINTS: dict[str, str] = {
    "r": "QuantumPEFTConfig(rank=…) is the rank; QuICConfig sizes blocks with n_blocks / block_size",
    "lora_alpha": "QuantumPEFTConfig(alpha=…) (scale = alpha / rank)",
    "lora_dropout": "quicq adapters have no dropout",
    "bias": "quicq never trains biases; list a module in modules_to_save to train it whole",
    "fan_in_fan_out": "not needed: transformers' Conv1D is recognised by its type",
    "use_rslora": "QuantumPEFTConfig(scale=…) sets the scale directly",
    "peft_type": "the config class chooses the method (QuICConfig or QuantumPEFTConfig)",
    "layers_to_transform": "use target_modules with a regex",
    "rank_pattern": "not supported: one rank per adapter",
    "block_size": "QuICConfig(block_size=…) (for OFT users: the size of each rotated block)",
}


def unknown_fields_message(cls: type, unknown: list[str], known: set[str]) -> str:
    """The error for unknown config fields, with quicq's name for every peft field it recognises."""
    hints = [f"'{u}': {PEFT_FIELD_HINTS[u]}" for u in unknown if u in PEFT_FIELD_HINTS and u not in known]
    msg = f"unknown {cls.__name__} field(s) {unknown}; known fields: {sorted(known)}"
    return msg + ("; peft names → quicq: " + "; ".join(hints) if hints else "")


class AdapterConfigError(QuicqError, ValueError):
    """A configuration is invalid, or cannot be applied to a given model; the message says why."""


def _check_names(value: Any, field_name: str, *, allow_all_linear: bool) -> Any:
    """Normalise a target/exclude spec: None, a regex string, or a list of names (→ sorted list)."""
    if value is None:
        return None
    if isinstance(value, str):
        if allow_all_linear and value.lower() == ALL_LINEAR:
            return ALL_LINEAR
        try:
            re.compile(value)
        except re.error as exc:
            raise AdapterConfigError(f"{field_name}={value!r} is not a valid regular expression: {exc}") from None
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        names = list(value)
        if not names:
            raise AdapterConfigError(f"{field_name} is an empty list; give module names, a regex, or None")
        bad = [v for v in names if not isinstance(v, str) or not v]
        if bad:
            raise AdapterConfigError(f"{field_name} entries must be non-empty strings, got {bad!r}")
        return sorted(set(names))
    raise AdapterConfigError(
        f"{field_name} must be a list of module names or a regex string, got {type(value).__name__}"
    )


def _positive_int(value: Any, name: str, *, minimum: int = 1, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise AdapterConfigError(f"{name} must be an int ≥ {minimum}, got {value!r}")
    return value


@dataclass
class AdapterConfig:
    """Fields shared by every quicq method (see the module docstring for the matching rules).

    Attributes:
        target_modules: module names (exact or ``.``-suffix match), a regex (full match), or
            ``"all-linear"``. Required: quicq has no per-architecture defaults.
        exclude_modules: names or regex of modules never to adapt.
        modules_to_save: modules trained in full (a trainable copy per adapter) and saved.
        init_weights: ``True`` (default) starts at the identity / ΔW = 0, so the adapted model
            starts as the pretrained one. ``False`` draws small random parameters (N(0, 0.1²)):
            meant for tests and ablations.
        task_type: peft's task types. ``"SEQ_CLS"`` / ``"TOKEN_CLS"`` add the model's fresh head
            (``classifier`` or ``score``) to ``modules_to_save``, as peft does; the others only
            record the task.
        inference_mode: peft's flag: the adapter is created frozen.
    """

    method: ClassVar[str] = ""

    target_modules: list[str] | str | None = None
    exclude_modules: list[str] | str | None = None
    modules_to_save: list[str] | None = None
    init_weights: bool = True
    task_type: str | None = None
    inference_mode: bool = False

    def __post_init__(self) -> None:
        if self.task_type is not None:
            tt = getattr(self.task_type, "value", self.task_type)  # peft's TaskType is a str Enum
            if not isinstance(tt, str) or tt not in TASK_TYPES:
                raise AdapterConfigError(f"task_type must be one of {list(TASK_TYPES)} or None, got {self.task_type!r}")
            self.task_type = str(tt)
        if not isinstance(self.inference_mode, bool):
            raise AdapterConfigError(f"inference_mode must be True or False, got {self.inference_mode!r}")
        if self.target_modules is None:
            raise AdapterConfigError(
                f"{type(self).__name__} needs target_modules: a list of module names (e.g. "
                "['query', 'value']), a regex, or 'all-linear'"
            )
        self.target_modules = _check_names(self.target_modules, "target_modules", allow_all_linear=True)
        self.exclude_modules = _check_names(self.exclude_modules, "exclude_modules", allow_all_linear=False)
        if self.modules_to_save is not None:
            if isinstance(self.modules_to_save, str):
                self.modules_to_save = [self.modules_to_save]
            self.modules_to_save = _check_names(self.modules_to_save, "modules_to_save", allow_all_linear=False)
        if not isinstance(self.init_weights, bool):
            raise AdapterConfigError(f"init_weights must be True or False, got {self.init_weights!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, (tuple, set)) else v
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdapterConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown fields are an error, not ignored."""
        if not isinstance(data, dict):
            raise AdapterConfigError(f"a {cls.__name__} must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AdapterConfigError(unknown_fields_message(cls, unknown, known))
        return cls(**data)


@dataclass
class QuICConfig(AdapterConfig):
    """QuIC compound adapter (docs/design.md#adapters).

    A targeted layer's rotated side (``rotate``) of size d is split into N blocks of size
    b = ⌊d/N⌋ (the last d − N·b rows stay untouched, as in the paper's code). Block i holds an
    n×n orthogonal A_i, n the largest integer with Σ_{k∈orders} C(n,k) ≤ b, and rotates by
    ⊕_{k∈orders} C_k(A_i) ⊕ I_{b − Σ C(n,k)}.

    Attributes:
        n_blocks: N. Give ``n_blocks`` or ``block_size``, not both; neither means N = 4.
        block_size: b; then N = ⌊d/b⌋.
        orders: the Hamming weights k kept (default (1, 2)).
        parameterization: ``"pyramid"`` (n(n−1)/2 RBS angles, all of SO(n)), ``"x"``,
            ``"butterfly"`` (FBS gates; n is lowered to the largest power of two that fits),
            ``"brick"`` (``n_layers`` layers), or ``"cayley"`` (paper parity: an n×n matrix M
            per block, A = (I − S)(I + S)⁻¹ with S = (M − Mᵀ)/2, n² parameters).
        n_layers: brick layers (brick only).
        block_share: one A shared by all N blocks of a layer.
        rotate: ``"output"`` (default; y = R·(W x) + bias, bias not rotated, as the paper's
            code) or ``"input"`` (y = W·R·x + bias, the side peft's OFT rotates). Both sides,
            y = R_out·W·R_in·x + bias, are two chained adapters: an input-side one added with
            ``model.add_adapter("input", QuICConfig(..., rotate="input"))`` and
            ``model.set_adapter(["default", "input"])`` (docs/design.md#quic; the most accurate
            QuIC configuration measured on MiniLM). ``"auto"``: per layer the narrower side,
            the output on a tie (square attention projections rotate their output, a 768 → 3072
            FFN input its input; :func:`resolve_rotate`).
        apply_mode: ``"auto"`` picks per forward the cheaper of rotating activations and
            rotating the weight (see :class:`quicq.adapters.quic.QuICLayer`); or force one.
        start: where circuit charts start. ``"sorting"`` (default): every gate at 0 or π/2 so
            that the tangent has full rank and condition number 1, the adapter still exactly
            the identity (see :mod:`quicq.adapters.parameterizations`). ``"identity"``: all
            angles 0 (quicq ≤ 0.1; a nearest-neighbour layout then has tangent rank n − 1).
        compound_mode: how order-k ≥ 2 blocks are applied: ``"auto"`` (exterior power, e.g.
            U·X·Uᵀ for k = 2, unless forming C_k is cheaper for small n), ``"exterior"`` or
            ``"dense"`` (form C_k(A)).
    """

    method: ClassVar[str] = "quic"

    n_blocks: int | None = None
    block_size: int | None = None
    orders: tuple[int, ...] = (1, 2)
    parameterization: str = "pyramid"
    n_layers: int = 2
    block_share: bool = False
    rotate: str = "output"
    apply_mode: str = "auto"
    start: str = "sorting"
    compound_mode: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_blocks is not None and self.block_size is not None:
            raise AdapterConfigError(
                f"give n_blocks or block_size, not both (got n_blocks={self.n_blocks}, "
                f"block_size={self.block_size})"
            )
        _positive_int(self.n_blocks, "n_blocks", allow_none=True)
        _positive_int(self.block_size, "block_size", minimum=2, allow_none=True)
        if self.parameterization not in QUIC_PARAMETERIZATIONS:
            raise AdapterConfigError(
                f"unknown parameterization {self.parameterization!r}; choose one of {list(QUIC_PARAMETERIZATIONS)}"
            )
        try:
            ks = [int(k) for k in self.orders]
        except (TypeError, ValueError):
            raise AdapterConfigError(f"orders must be a list of ints, got {self.orders!r}") from None
        if not ks or any(k < 1 for k in ks) or len(set(ks)) != len(ks) or any(
            isinstance(k, bool) or int(k) != k for k in self.orders
        ):
            raise AdapterConfigError(f"orders must be distinct ints ≥ 1, got {self.orders!r}")
        self.orders = tuple(sorted(ks))
        _positive_int(self.n_layers, "n_layers")
        if not isinstance(self.block_share, bool):
            raise AdapterConfigError(f"block_share must be True or False, got {self.block_share!r}")
        if self.rotate not in ROTATE_SIDES:
            raise AdapterConfigError(f"rotate must be one of {list(ROTATE_SIDES)}, got {self.rotate!r}")
        if self.apply_mode not in APPLY_MODES:
            raise AdapterConfigError(f"apply_mode must be one of {list(APPLY_MODES)}, got {self.apply_mode!r}")
        if self.start not in CHART_STARTS:
            raise AdapterConfigError(f"start must be one of {list(CHART_STARTS)}, got {self.start!r}")
        if self.compound_mode not in COMPOUND_MODES:
            raise AdapterConfigError(
                f"compound_mode must be one of {list(COMPOUND_MODES)}, got {self.compound_mode!r}")

    @property
    def lr_hint(self) -> float:
        """An AdamW learning rate for the adapter angles that worked for this parameterization
        (MiniLM / Rotten Tomatoes, chosen on a validation split; see README)."""
        from quicq.adapters.parameterizations import PARAMETERIZATIONS

        return PARAMETERIZATIONS[self.parameterization].lr_hint

    @property
    def effective_n_blocks(self) -> int | None:
        """N when fixed by the config (4 when neither n_blocks nor block_size is given)."""
        if self.block_size is not None:
            return None
        return 4 if self.n_blocks is None else self.n_blocks


@dataclass
class QuantumPEFTConfig(AdapterConfig):
    """Quantum-PEFT (docs/design.md#adapters): ΔW = scale · U·diag(λ)·Vᵀ, λ = 0 at start.

    U is the first ``rank`` columns of Q(θ_U) ∈ SO(d_out) from ``quicq.circuits.pauli(d_out,
    n_layers)``, V likewise for d_in; any sizes ≥ 2 work.

    Attributes:
        rank: K, the number of columns (≤ min(d_out, d_in)). Each column costs one λ; the
            circuits do not grow with K (their angles depend on the sizes and ``n_layers`` only),
            while the compute grows like LoRA's with its rank. On MiniLM / Rotten Tomatoes q/v
            (``results/accuracy.json``, lr on validation, 3 seeds) K = 8 / 32 / 64 reached test
            0.722 / 0.746 / 0.749 (LoRA r=8: 0.792) with 672 / 960 / 1,344 parameters.
        n_layers: L, entangling layers of each Pauli circuit.
        scale: multiplies ΔW.
        alpha: LoRA-style alternative: when set, scale = alpha / rank (then leave ``scale`` at 1).
        init_angles: start of the circuit angles (λ = 0 keeps ΔW = 0 for any): ``"random"``
            (default; uniform in [−π, π), seeded per module), ``"zero"`` (Q = I: θ gets no
            gradient until λ moves) or ``"spread"`` (flat columns). On MiniLM / Rotten Tomatoes,
            chosen on validation: random with lr 5e-2 for θ and 2e-1 for λ (see
            :func:`quicq.engine.pauli_init.qpeft_param_groups` and ``results/qpeft_study.json``).
    """

    method: ClassVar[str] = "quantum_peft"

    rank: int = 4
    n_layers: int = 1
    scale: float = 1.0
    alpha: float | None = None
    init_angles: str = "random"

    def __post_init__(self) -> None:
        super().__post_init__()
        from quicq.engine.pauli_init import START_RULES

        if self.init_angles not in START_RULES:
            raise AdapterConfigError(f"init_angles must be one of {list(START_RULES)}, got {self.init_angles!r}")
        _positive_int(self.rank, "rank")
        _positive_int(self.n_layers, "n_layers", minimum=0)
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not math.isfinite(self.scale):
            raise AdapterConfigError(f"scale must be a finite number, got {self.scale!r}")
        if self.alpha is not None:
            if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not math.isfinite(self.alpha):
                raise AdapterConfigError(f"alpha must be a finite number or None, got {self.alpha!r}")
            if self.scale != 1.0:
                raise AdapterConfigError(
                    f"give scale or alpha, not both (scale={self.scale}, alpha={self.alpha}); alpha sets "
                    "scale = alpha / rank"
                )

    #: AdamW learning rates that worked for the angles and for λ (MiniLM / Rotten Tomatoes).
    lr_hint: ClassVar[dict[str, float]] = {"theta": 5e-2, "lambda": 2e-1}

    @property
    def effective_scale(self) -> float:
        """The factor ΔW is multiplied by."""
        return float(self.alpha) / self.rank if self.alpha is not None else float(self.scale)


def resolve_rotate(rotate: str, out_features: int, in_features: int,
                   fits: Callable[[int], bool] = lambda d: True) -> str:
    """The side (``"output"`` or ``"input"``) a QuIC adapter with ``rotate`` acts on in a layer of
    these sizes. ``"auto"`` is the narrower side that ``fits`` the blocks, the output on a tie: a
    one-block {1,2} rotation of d coordinates has n ≈ √(2d) qubits, ~n³ work per rotated vector
    and n(n−1)/2 angles, so for a 768 → 3072 FFN input the 768-wide side (n = 38, not 77) is ~8×
    cheaper and has 4× fewer angles. A side too narrow for the blocks (a 16-channel conv under
    blocks of 32) is passed over; if neither fits, the narrower is returned (its error names why)."""
    if rotate != "auto":
        return rotate
    order = ("input", "output") if in_features < out_features else ("output", "input")
    size = {"output": out_features, "input": in_features}
    return next((side for side in order if fits(size[side])), order[0])


def _answer_peft_names(cls: type[AdapterConfig]) -> None:
    """Wrap the dataclass __init__ so peft's field names get quicq's error with a hint, not a
    bare TypeError about an unexpected keyword."""
    init = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise AdapterConfigError(unknown_fields_message(cls, unknown, known))
        init(self, *args, **kwargs)

    __init__.__doc__, __init__.__wrapped__ = init.__doc__, init  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[method-assign]


_answer_peft_names(QuICConfig)
_answer_peft_names(QuantumPEFTConfig)

METHODS: dict[str, type[AdapterConfig]] = {"quic": QuICConfig, "quantum_peft": QuantumPEFTConfig}


def config_from_dict(method: str, data: dict[str, Any]) -> AdapterConfig:
    """Build the config of ``method`` ("quic" or "quantum_peft") from a dict of fields."""
    try:
        cls = METHODS[method]
    except (KeyError, TypeError):
        raise AdapterConfigError(f"unknown adapter method {method!r}; quicq knows {sorted(METHODS)}") from None
    return cls.from_dict(data)
