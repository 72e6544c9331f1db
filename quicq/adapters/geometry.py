"""Shape facts of the base layers quicq adapts, and the canonical (out, in) view of their weights.

Supported: ``nn.Linear``; transformers' ``Conv1D`` (weight stored (in, out)); ``nn.Conv2d`` with
``groups == 1`` (a QuIC rotation acts on channels, which commutes with the spatial convolution;
Quantum-PEFT treats the kernel as an (out, in·kh·kw) matrix, like LoRA). Internally every weight
is read with the output axis first and the input (channel) axis second.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from quicq.adapters.config import AdapterConfigError

__all__ = ["SUPPORTED_LAYERS", "LayerGeometry", "adapter_dtype", "canonical_weight", "channel_axis",
           "conv1d_class", "forward_with_weight", "layer_geometry", "write_canonical_weight"]

SUPPORTED_LAYERS = "nn.Linear, transformers' Conv1D and nn.Conv2d (groups=1)"


def conv1d_class() -> type | None:
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


def layer_geometry(module: nn.Module, name: str = "") -> LayerGeometry:
    """Classify ``module`` as a supported base layer, or raise :class:`AdapterConfigError`."""
    where = f"module {name!r}" if name else "module"
    if isinstance(module, nn.Linear):
        return LayerGeometry("linear", module.out_features, module.in_features, module.in_features, 1)
    conv1d = conv1d_class()
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


def canonical_weight(base: nn.Module, kind: str) -> torch.Tensor:
    """The weight with the output axis first and input axis second (a view, no copy)."""
    return base.weight.t() if kind == "conv1d" else base.weight


def write_canonical_weight(base: nn.Module, kind: str, w: torch.Tensor) -> None:
    """Overwrite the base weight in place from its canonical (out, in, …) form."""
    with torch.no_grad():
        base.weight.copy_(w.t() if kind == "conv1d" else w)


def forward_with_weight(base: nn.Module, kind: str, x: torch.Tensor, w: torch.Tensor,
                        bias: torch.Tensor | None) -> torch.Tensor:
    """The base layer's computation with a canonical weight ``w`` and ``bias`` substituted."""
    if kind == "conv2d":
        return base._conv_forward(x, w, bias)
    return F.linear(x, w, bias)


def channel_axis(kind: str) -> int:
    """The activation axis a rotation acts on: channels (1) for Conv2d, features (−1) otherwise."""
    return 1 if kind == "conv2d" else -1


def adapter_dtype(base: nn.Module) -> torch.dtype:
    """Adapters train in float32 (float64 if the base layer is float64), whatever the base dtype."""
    return torch.float64 if base.weight.dtype == torch.float64 else torch.float32
