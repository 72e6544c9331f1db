"""Adapter parameter counts from module shapes alone — no weights, no adapter objects.

Everything here is pure arithmetic on Linear shapes, so a count for LLaMA-7B takes
milliseconds: build the model on the meta device (:func:`reference_meta_model`) and call
:func:`count_model`.

**QuIC** (docs/design.md#adapters). A frozen Linear with output size ``d_out`` is split into ``N`` blocks of
size ``b = d_out // N``. Block i carries an n×n orthogonal A_i and rotates
⊕_{k∈K} C_k(A_i) ⊕ I, with n the largest integer such that Σ_{k∈K} C(n, k) ≤ b
(:func:`quic_block_dim`). When N does not divide ``d_out`` the last ``d_out − N·b`` outputs are
left untouched (identity), exactly as the paper's code does (it takes
``block_size = int(d_out / N)`` and pads the block-diagonal matrix with an identity). Angles per
block, by parameterization of A_i:

=============  ==========================================================================
pyramid        n(n−1)/2 nearest-neighbour RBS angles (all of SO(n))
x              the X layout of :func:`quicq.circuits.layouts.x_layout`: 2n−3 (even n), 2n−4 (odd n)
butterfly      n is lowered to the largest power of two with Σ C(n,k) ≤ b; (n/2)·log2 n
brick          L layers alternating even/odd nearest-neighbour pairs: Σ_layers ⌊(n−s)/2⌋,
               s = layer mod 2
cayley         n² (paper parity: the paper's code stores a full n×n matrix per block and
               takes its skew part, so its published counts are n² per block)
=============  ==========================================================================

With ``block_share=True`` all N blocks of a module share one A, so a module costs one block.

**Quantum-PEFT** (docs/design.md#adapters): ΔW = U·diag(λ)·Vᵀ with U from a Pauli circuit on ``d_out`` and
V from one on ``d_in`` (:func:`quicq.circuits.pauli.pauli_param_count`) plus ``rank`` λ's.

**LoRA**: r·(d_in + d_out) (A is r×d_in, B is d_out×r; biases are not adapted).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from quicq._optional import require
from quicq.adapters.config import ROTATE_SIDES, resolve_rotate
from quicq.circuits.pauli import pauli_param_count

__all__ = [
    "QUIC_PARAMETERIZATIONS",
    "REFERENCE_ARCHITECTURES",
    "ModuleShape",
    "quic_block_dim",
    "quic_block_size",
    "quic_block_params",
    "quic_params",
    "qpeft_params",
    "lora_params",
    "linear_shapes",
    "count_model",
    "count_model_detail",
    "reference_meta_model",
]

QUIC_PARAMETERIZATIONS: tuple[str, ...] = ("pyramid", "x", "butterfly", "brick", "cayley")


def _check_orders(orders: Iterable[int]) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(k) for k in orders}))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"orders must be an iterable of positive ints, got {orders!r}") from exc
    if not ks:
        raise ValueError("orders must name at least one Hamming weight k")
    if ks[0] < 1:
        raise ValueError(f"orders must be ≥ 1, got {ks}")
    return ks


def _sector_total(n: int, orders: Sequence[int]) -> int:
    return sum(math.comb(n, k) for k in orders)


def quic_block_dim(b: int, orders: Iterable[int] = (1, 2), *, power_of_two: bool = False) -> int:
    """Largest n with Σ_{k∈orders} C(n, k) ≤ b (optionally also a power of two).

    Raises ``ValueError`` if no n ≥ 2 fits: a 1-qubit "block" has no rotation to learn.

    >>> quic_block_dim(256, (1, 2))   # DeBERTaV3-base, N = 3: 22 + 231 = 253 ≤ 256
    22
    """
    if not isinstance(b, int) or b < 1:
        raise ValueError(f"block size b must be a positive int, got {b!r}")
    ks = _check_orders(orders)
    if _sector_total(2, ks) > b:
        raise ValueError(
            f"block size b={b} is too small for orders {ks}: even n=2 needs "
            f"{_sector_total(2, ks)} rows; use fewer blocks"
        )
    n = 2
    if power_of_two:
        while _sector_total(2 * n, ks) <= b:
            n *= 2
        return n
    while _sector_total(n + 1, ks) <= b:
        n += 1
    return n


def quic_block_size(d_out: int, n_blocks: int) -> int:
    """Block size b = ⌊d_out / N⌋ (paper parity); the ``d_out − N·b`` leftover rows stay identity."""
    if not isinstance(d_out, int) or d_out < 1:
        raise ValueError(f"d_out must be a positive int, got {d_out!r}")
    if not isinstance(n_blocks, int) or not 1 <= n_blocks <= d_out:
        raise ValueError(f"n_blocks must be an int in [1, d_out={d_out}], got {n_blocks!r}")
    return d_out // n_blocks


def quic_block_params(n: int, parameterization: str = "pyramid", n_layers: int | None = None) -> int:
    """Trainable parameters of one n×n block A under ``parameterization``.

    ``n_layers`` is required for (and only meaningful with) ``"brick"``. For ``"butterfly"``,
    ``n`` must already be a power of two.
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"a block needs n ≥ 2, got {n!r}")
    if parameterization != "brick" and n_layers is not None:
        raise ValueError(f"n_layers only applies to 'brick', not {parameterization!r}")
    if parameterization == "pyramid":
        return n * (n - 1) // 2
    if parameterization == "x":
        return 2 * n - 3 - n % 2
    if parameterization == "butterfly":
        if n & (n - 1):
            raise ValueError(f"butterfly needs n a power of two, got n={n}")
        return (n // 2) * (n.bit_length() - 1)
    if parameterization == "brick":
        if not isinstance(n_layers, int) or n_layers < 1:
            raise ValueError(f"brick needs n_layers ≥ 1, got {n_layers!r}")
        return sum((n - layer % 2) // 2 for layer in range(n_layers))
    if parameterization == "cayley":
        return n * n
    raise ValueError(
        f"unknown parameterization {parameterization!r}; choose one of {QUIC_PARAMETERIZATIONS}"
    )


def quic_fits(d: int, **kw: Any) -> bool:
    """Whether QuIC blocks with the keywords of :func:`quic_params` tile a side of size ``d``."""
    try:
        quic_params(d, **kw)
    except ValueError:
        return False
    return True


def quic_params(
    d_out: int,
    n_blocks: int | None = None,
    orders: Iterable[int] = (1, 2),
    parameterization: str = "pyramid",
    n_layers: int | None = None,
    block_share: bool = False,
    *,
    block_size: int | None = None,
) -> int:
    """QuIC parameters of one Linear whose rotated side has size ``d_out``.

    Give ``n_blocks`` (N; b = ⌊d_out/N⌋) or ``block_size`` (b; N = ⌊d_out/b⌋), as
    :class:`quicq.adapters.config.QuICConfig` does; neither means N = 4 (its default).

    >>> quic_params(768, 3, (1, 2), "cayley")   # 3 blocks × 22²
    1452
    """
    if n_blocks is not None and block_size is not None:
        raise ValueError(f"give n_blocks or block_size, not both (got {n_blocks}, {block_size})")
    if block_size is not None:
        if not isinstance(block_size, int) or not 2 <= block_size <= d_out:
            raise ValueError(f"block_size must be an int in [2, d_out={d_out}], got {block_size!r}")
        n_blocks, b = d_out // block_size, block_size  # the d_out − N·b leftover rows stay identity
    else:
        if n_blocks is None:
            n_blocks = 4
        b = quic_block_size(d_out, n_blocks)
    n = quic_block_dim(b, orders, power_of_two=parameterization == "butterfly")
    per_block = quic_block_params(n, parameterization, n_layers)
    return per_block if block_share else n_blocks * per_block


def qpeft_params(d_out: int, d_in: int, rank: int, n_layers: int) -> int:
    """Quantum-PEFT parameters: Pauli angles of U (d_out) and V (d_in) plus ``rank`` λ's."""
    for name, v in (("d_out", d_out), ("d_in", d_in)):
        if not isinstance(v, int) or v < 2:
            raise ValueError(f"{name} must be an int ≥ 2, got {v!r}")
    if not isinstance(rank, int) or not 1 <= rank <= min(d_out, d_in):
        raise ValueError(f"rank must be an int in [1, min(d_out, d_in)={min(d_out, d_in)}], got {rank!r}")
    return pauli_param_count(d_out, n_layers) + pauli_param_count(d_in, n_layers) + rank


def lora_params(d_out: int, d_in: int, r: int) -> int:
    """LoRA parameters r·(d_in + d_out)."""
    if not all(isinstance(v, int) and v >= 1 for v in (d_out, d_in, r)):
        raise ValueError(f"d_out, d_in, r must be positive ints, got {(d_out, d_in, r)!r}")
    return r * (d_in + d_out)


@dataclass(frozen=True)
class ModuleShape:
    """A Linear module's qualified name and weight shape (out, in)."""

    name: str
    d_out: int
    d_in: int


def _matches(name: str, target: str | Sequence[str]) -> bool:
    """peft's convention: a string is a regex that must match the whole name; a list holds
    suffixes (``name == t`` or ``name.endswith("." + t)``)."""
    if isinstance(target, str):
        return re.fullmatch(target, name) is not None
    return any(name == t or name.endswith("." + t) for t in target)


def linear_shapes(model: Any, target_modules: str | Sequence[str]) -> list[ModuleShape]:
    """Shapes of the ``torch.nn.Linear`` modules of ``model`` whose names match ``target_modules``.

    Works on meta-device models (only ``in_features``/``out_features`` are read).
    """
    import torch

    if not isinstance(target_modules, str) and (
        not isinstance(target_modules, Sequence) or not target_modules
    ):
        raise ValueError(f"target_modules must be a regex string or a non-empty list, got {target_modules!r}")
    shapes = [
        ModuleShape(name, mod.out_features, mod.in_features)
        for name, mod in model.named_modules()
        if isinstance(mod, torch.nn.Linear) and _matches(name, target_modules)
    ]
    if not shapes:
        raise ValueError(f"no Linear module of the model matches target_modules={target_modules!r}")
    return shapes


def _module_count(shape: ModuleShape, method: str, kw: dict[str, Any]) -> int:
    if method == "quic":
        kw = dict(kw)
        rotate = kw.pop("rotate", "output")
        if rotate not in ROTATE_SIDES:
            raise ValueError(f"rotate must be one of {list(ROTATE_SIDES)}, got {rotate!r}")
        side = resolve_rotate(rotate, shape.d_out, shape.d_in, lambda d: quic_fits(d, **kw))
        return quic_params(shape.d_out if side == "output" else shape.d_in, **kw)
    if method == "qpeft":
        return qpeft_params(shape.d_out, shape.d_in, **kw)
    if method == "lora":
        return lora_params(shape.d_out, shape.d_in, **kw)
    raise ValueError(f"unknown method {method!r}; choose 'quic', 'qpeft' or 'lora'")


def count_model_detail(
    model: Any, target_modules: str | Sequence[str], method: str, **kw: Any
) -> list[tuple[ModuleShape, int]]:
    """Per-module counts: ``[(shape, params), ...]`` for every matching Linear.

    ``method`` is ``"quic"`` (keywords of :func:`quic_params` except ``d_out``, plus
    ``rotate="output"|"input"|"auto"``: which side of the Linear is split into blocks), ``"qpeft"``
    (``rank``, ``n_layers``) or ``"lora"`` (``r``).
    """
    return [(s, _module_count(s, method, kw)) for s in linear_shapes(model, target_modules)]


def count_model(model: Any, target_modules: str | Sequence[str], method: str, **kw: Any) -> int:
    """Total adapter parameters over the matching Linear modules (see :func:`count_model_detail`)."""
    return sum(c for _, c in count_model_detail(model, target_modules, method, **kw))


# Published architecture numbers (no hub access): model_type and config keyword arguments.
REFERENCE_ARCHITECTURES: dict[str, tuple[str, dict[str, Any]]] = {
    "deberta-v3-base": (
        "deberta-v2",
        dict(
            vocab_size=128100, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072, hidden_act="gelu", max_position_embeddings=512,
            type_vocab_size=0, relative_attention=True, max_relative_positions=-1,
            position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True,
            pos_att_type=["p2c", "c2p"], position_biased_input=False, layer_norm_eps=1e-7,
        ),
    ),
    "llama-7b": (
        "llama",
        dict(
            vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
            num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048,
            rms_norm_eps=1e-6, hidden_act="silu",
        ),
    ),
    "dinov2-large": (
        "dinov2",
        dict(
            hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4,
            patch_size=14, image_size=518, layerscale_value=1.0, hidden_act="gelu",
        ),
    ),
    "minilm-l6": (
        "bert",
        dict(
            vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
            intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2,
        ),
    ),
}


def reference_meta_model(name: str) -> Any:
    """One of :data:`REFERENCE_ARCHITECTURES` as a transformers ``AutoModel`` on the meta device.

    No weights are allocated and nothing is downloaded; needs ``transformers``.
    """
    try:
        model_type, kwargs = REFERENCE_ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(REFERENCE_ARCHITECTURES)}") from None
    import torch

    require("transformers", "hf")
    from transformers import AutoConfig, AutoModel

    cfg = AutoConfig.for_model(model_type, **kwargs)
    with torch.device("meta"):
        return AutoModel.from_config(cfg)
