"""peft OFT adapters as quicq circuits: each OFT block rotation becomes a QuIC pyramid of RBS gates.

peft's OFT stores, per layer, the upper triangles of skew matrices Q_i and uses
R_i = Cayley(Q_i) (exact, or a truncated Neumann series) on the *input* side: it feeds
``x @ blockdiag(R_i)`` to the frozen layer, so y = W·blockdiag(R_iᵀ)·x. :func:`quic_from_peft_oft`
and :func:`load_oft_adapter` rebuild every R_i exactly as peft does, compile R_iᵀ into pyramid
RBS angles with the Givens compiler, and return a :class:`~quicq.adapters.model.QuicqModel` with
QuIC adapters (orders (1,), block size = OFT block size, ``rotate="input"``) computing the same
function.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quicq._optional import require
from quicq.adapters.config import QuICConfig
from quicq.adapters.layer import AdapterError
from quicq.adapters.model import QuicqModel, get_quicq_model

require("peft", "hf")
from peft.utils import PeftType  # noqa: E402

__all__ = ["load_oft_adapter", "oft_rotations", "quic_from_peft_oft"]


def oft_rotations(weight: torch.Tensor, block_size: int, *, use_cayley_neumann: bool,
                  num_cayley_neumann_terms: int = 5, coft: bool = False, eps: float = 6e-5) -> torch.Tensor:
    """peft OFT's block rotations R_i (r, b, b) from its stored ``oft_R.weight`` (r, b(b−1)/2).

    Reproduces peft 0.18+'s ``OFTRotationModule``: Q_i skew with Q[rows, cols] = vec over
    ``triu_indices(b, b, 1)``; optional COFT projection of Q_i into the ball of radius
    eps/√r; then the exact Cayley map R = (I − Q)(I + Q)⁻¹, or peft's Neumann form
    R = I + 2Q + 2Q² + … + 2Q^(t−2) + Q^(t−1) (t = ``num_cayley_neumann_terms``). Computed in
    float64. peft applies R to row vectors: x ↦ x·R.
    """
    w = weight.detach().to(torch.float64)
    r, n_el = w.shape
    b = block_size
    if n_el != b * (b - 1) // 2:
        raise AdapterError(f"OFT weight has {n_el} entries per block, block size {b} needs {b * (b - 1) // 2}")
    rows, cols = torch.triu_indices(b, b, 1)
    Q = torch.zeros(r, b, b, dtype=torch.float64)
    Q[:, rows, cols] = w
    Q = Q - Q.transpose(-1, -2)
    if coft:
        bound = eps / math.sqrt(r)
        norm = torch.linalg.matrix_norm(Q, keepdim=True)
        Q = torch.where(norm <= bound, Q, bound * Q / norm)
    eye = torch.eye(b, dtype=torch.float64).expand(r, b, b)
    if not use_cayley_neumann:
        return torch.linalg.solve(eye + Q, eye - Q, left=False)
    t = num_cayley_neumann_terms
    R = eye.clone()
    if t > 1:
        R = R + 2 * Q
        if t > 2:
            power = Q @ Q
            R = R + 2 * power
            for _ in range(3, t - 1):
                power = power @ Q
                R = R + 2 * power
            R = R + power @ Q
    return R


def _quic_from_rotations(model: nn.Module, rotations: dict[str, torch.Tensor], block_share: bool,
                         adapter_name: str, project: bool, tol: float) -> QuicqModel:
    """Build QuIC input-side adapters whose blocks are Rᵀ for each module's OFT rotations R."""
    if not rotations:
        raise AdapterError("the OFT adapter adapts no module")
    sizes = {R.shape[-1] for R in rotations.values()}
    if len(sizes) != 1:
        raise AdapterError(
            f"OFT block sizes differ between modules ({sorted(sizes)}); import them one size at a time"
        )
    (b,) = sizes
    angles: dict[str, torch.Tensor] = {}
    for name, R in rotations.items():
        B = R.transpose(-1, -2)  # OFT feeds x·R to the layer: the column-vector block is Rᵀ
        err = float((B.transpose(-1, -2) @ B - torch.eye(b, dtype=B.dtype)).abs().max())
        if err > tol:
            if not project:
                raise AdapterError(
                    f"module {name!r}: OFT rotations deviate from orthogonal by {err:.1e} (the truncated "
                    "Cayley-Neumann series is only approximately orthogonal); a circuit can only give an "
                    "orthogonal block. Pass project=True to use the nearest orthogonal matrices, or train "
                    "OFT with use_cayley_neumann=False"
                )
            U, _, Vh = torch.linalg.svd(B)
            B = U @ Vh
        if bool((torch.linalg.det(B) < 0).any()):
            raise AdapterError(
                f"module {name!r}: an OFT block has determinant −1 and needs a reflection the QuIC "
                "pyramid cannot express"
            )
        angles[name] = B  # the block; turned into chart parameters once the layers exist
    pattern = "|".join(re.escape(n) for n in rotations)
    config = QuICConfig(target_modules=f"(?:{pattern})", block_size=b, orders=(1,), parameterization="pyramid",
                        rotate="input", block_share=block_share)
    qm = get_quicq_model(model, config, adapter_name)
    layers = qm.quicq_layers(adapter_name)
    with torch.no_grad():
        for name, B in angles.items():
            p = layers[name].quic_params[adapter_name]
            th = layers[name].parameterization(adapter_name).from_matrix(B)
            if p.shape != th.shape:
                raise AdapterError(
                    f"module {name!r}: OFT gives angles of shape {tuple(th.shape)}, QuIC expects {tuple(p.shape)}"
                )
            p.copy_(th.to(p.dtype))
    return qm


def _check_oft_config(cfg: Any) -> None:
    if getattr(cfg, "bias", "none") != "none":
        raise AdapterError(f"OFT adapters with bias={cfg.bias!r} train biases; only bias='none' can be imported")
    if getattr(cfg, "modules_to_save", None):
        raise AdapterError("OFT adapters with modules_to_save are not supported by the importer")


def _oft_in_features(module: nn.Module, name: str) -> int:
    if isinstance(module, nn.Linear):
        return module.in_features
    if isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1:
        return module.in_channels
    raise AdapterError(
        f"module {name!r} ({type(module).__name__}): OFT import supports Linear and 1×1 Conv2d only (OFT on "
        "larger kernels rotates unfolded patches, not channels)"
    )


def quic_from_peft_oft(peft_model: Any, adapter_name: str = "default", *, project: bool = False,
                       tol: float = 1e-6) -> QuicqModel:
    """Turn a live ``PeftModel`` with an OFT adapter into a QuicqModel computing the same function.

    Like ``merge_and_unload``, this consumes ``peft_model``: its OFT layers are removed and the
    returned QuicqModel wraps the same base model object.
    """
    from peft.tuners.oft import OFTLayer

    cfg = peft_model.peft_config[adapter_name]
    if cfg.peft_type != PeftType.OFT:
        raise AdapterError(f"adapter {adapter_name!r} is {cfg.peft_type}, not OFT")
    _check_oft_config(cfg)
    rotations: dict[str, torch.Tensor] = {}
    base_model = peft_model.get_base_model()
    for name, module in base_model.named_modules():
        if isinstance(module, OFTLayer) and adapter_name in module.oft_R:
            if module.merged:
                raise AdapterError(f"module {name!r}: OFT adapter is merged; unmerge it before importing")
            _oft_in_features(module.get_base_layer(), name)
            rot = module.oft_R[adapter_name]
            rotations[name] = oft_rotations(
                rot.weight, rot.block_size, use_cayley_neumann=rot.use_cayley_neumann,
                num_cayley_neumann_terms=rot.num_cayley_neumann_terms, coft=rot.coft, eps=rot.eps,
            )
    model = peft_model.unload()
    return _quic_from_rotations(model, rotations, cfg.block_share, adapter_name, project, tol)


def load_oft_adapter(model: nn.Module, directory: str | Path, adapter_name: str = "default", *,
                     project: bool = False, tol: float = 1e-6) -> QuicqModel:
    """Import a saved peft OFT adapter (``save_pretrained`` directory) into ``model`` as QuIC.

    Reads ``adapter_config.json`` and ``adapter_model.safetensors`` only (no pickle); checks
    every tensor against ``model`` before changing it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    try:
        cfg = json.loads((directory / "adapter_config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AdapterError(f"cannot read {directory / 'adapter_config.json'}: {exc}") from None
    if cfg.get("peft_type") != "OFT":
        raise AdapterError(f"{directory} holds a {cfg.get('peft_type')!r} adapter, not OFT")
    ns = type("OFTCfg", (), cfg)
    _check_oft_config(ns)
    try:
        tensors = load_file(str(directory / "adapter_model.safetensors"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise AdapterError(f"cannot read {directory / 'adapter_model.safetensors'}: {exc}") from None
    suffix, prefix = ".oft_R.weight", "base_model.model."
    rotations: dict[str, torch.Tensor] = {}
    share = bool(cfg.get("block_share", False))
    for key, w in tensors.items():
        if not key.endswith(suffix):
            raise AdapterError(f"unexpected tensor {key!r} in an OFT adapter")
        name = key[len(prefix):-len(suffix)] if key.startswith(prefix) else key[:-len(suffix)]
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise AdapterError(f"the OFT adapter adapts {name!r}, which this model does not have") from None
        d = _oft_in_features(module, name)
        r, b = int(cfg.get("r", 0)), int(cfg.get("oft_block_size", 0))
        if b == 0 and r:
            b = d // r
        b = round((1 + math.sqrt(1 + 8 * w.shape[-1])) / 2) if w.ndim == 2 else b
        n_rows = 1 if share else d // b
        if w.ndim != 2 or d % b or w.shape != (n_rows, b * (b - 1) // 2):
            raise AdapterError(
                f"OFT tensor {key!r} has shape {tuple(w.shape)}, but module {name!r} with {d} inputs and "
                f"block size {b} needs ({n_rows}, {b * (b - 1) // 2})"
            )
        rotations[name] = oft_rotations(
            w, b, use_cayley_neumann=bool(cfg.get("use_cayley_neumann", True)),
            num_cayley_neumann_terms=int(cfg.get("num_cayley_neumann_terms", 5)),
            coft=bool(cfg.get("coft", False)), eps=float(cfg.get("eps", 6e-5)),
        )
    return _quic_from_rotations(model, rotations, share, adapter_name, project, tol)
