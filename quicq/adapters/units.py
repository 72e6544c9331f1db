"""Circuits and trained angles of a saved adapter directory, without the model it was trained on.

:func:`adapter_units` rebuilds a stand-in of the adapted model from the module sizes recorded in
``adapter_config.json`` — nn.Linear, transformers' Conv1D, nn.Conv2d of the recorded kernel size,
parameter holders for ``modules_to_save`` — and loads the adapter into it with
:meth:`QuicqModel.from_pretrained`, so every check of the loader (config fields, tensor names,
shapes, finiteness) applies, and each circuit comes from the adapter layer itself.

The circuits depend on sizes only, except that Quantum-PEFT on a Conv2d acts on in·kh·kw inputs.
Files that record ``kernel_size`` for a conv2d module use it; for older files the kernel size
is the one whose V-circuit angle count matches the saved tensor, preferring square kernels
(1×1 … 11×11); several matching square kernels is an error rather than a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from quicq.adapters.io import AdapterLoadError, read_adapter

__all__ = ["AdapterUnit", "adapter_units"]


@dataclass
class AdapterUnit:
    """One circuit of a saved adapter with its trained angles.

    ``which`` is ``""`` for QuIC, ``"U"``/``"V"`` for Quantum-PEFT; ``angles`` has shape
    (bindings, n_params); ``orders`` (QuIC) or ``columns`` (Quantum-PEFT, the rank K) say what to
    estimate; ``layer`` is the rebuilt adapter layer (for cost planning).
    """

    module: str
    which: str
    circuit: Any
    angles: np.ndarray
    orders: tuple[int, ...] | None
    columns: int | None
    layer: Any

    @property
    def tag(self) -> str:
        """``module`` or ``module.U`` — a file-name stem."""
        return self.module + (f".{self.which}" if self.which else "")


class _Holder(nn.Module):
    """A stand-in for a ``modules_to_save`` module: parameters of the saved names and shapes."""


def _kernel_size(name: str, rec: dict[str, Any], loaded: Any) -> tuple[int, int]:
    """The recorded kernel size, or for older files one that fits the saved angles (k×k as (k², 1))."""
    if "kernel_size" in rec:
        ks = rec["kernel_size"]
        if (not isinstance(ks, list) or len(ks) != 2
                or not all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 64 for k in ks)):
            raise AdapterLoadError(f"adapter at {loaded.directory}: module {name!r} has a bad kernel_size {ks!r}")
        return (ks[0], ks[1])
    if loaded.config.method != "quantum_peft":
        return (1, 1)  # QuIC rotates channels: the kernel does not enter any circuit
    from quicq.circuits.pauli import pauli

    theta_v = loaded.tensors.get(f"{name}.qpeft_theta_v")
    if theta_v is None:
        return (1, 1)  # the loader reports the missing tensor
    n_in, want = int(rec["in_features"]), int(theta_v.numel())
    squares = [k * k for k in range(1, 12) if pauli(n_in * k * k, loaded.config.n_layers).n_params == want]
    if len(squares) == 1:
        return (squares[0], 1)
    raise AdapterLoadError(
        f"adapter at {loaded.directory}: module {name!r} is a Conv2d whose kernel size is not recorded and "
        f"{'no' if not squares else 'more than one'} square kernel fits its V angles ({want}); re-save the adapter "
        "with this quicq version"
    )


def _set(root: nn.Module, dotted: str, module: nn.Module) -> None:
    parent = root
    parts = dotted.split(".")
    for p in parts[:-1]:
        if not hasattr(parent, p):
            parent.add_module(p, nn.Module())
        parent = getattr(parent, p)
    parent.add_module(parts[-1], module)


def _stand_in(loaded: Any) -> nn.Module:
    root = nn.Module()
    for name, rec in sorted(loaded.meta["modules"].items()):
        if rec == {}:  # peft's format, written by a quicq that did not record module sizes yet
            raise AdapterLoadError(
                f"adapter at {loaded.directory} (peft's format) records no size for module {name!r}, so its "
                "circuits cannot be rebuilt without the model: load it with QuicqModel.from_pretrained(model, dir) "
                "and save_pretrained it again (quicq's format records every size)"
            )
        try:
            out_f, in_f, kind = int(rec["out_features"]), int(rec["in_features"]), rec["kind"]
        except (KeyError, TypeError, ValueError):
            raise AdapterLoadError(f"adapter at {loaded.directory}: bad module record {name!r}: {rec!r}") from None
        if kind == "conv2d":
            kernel = _kernel_size(name, rec, loaded)
            layer: nn.Module = nn.Conv2d(in_f, out_f, kernel_size=kernel, bias=False)
        elif kind == "conv1d":  # transformers' Conv1D (GPT-2): the loader checks the recorded kind
            from quicq._optional import require

            layer = require("transformers.pytorch_utils", "hf").Conv1D(out_f, in_f)
        else:
            layer = nn.Linear(in_f, out_f, bias=False)
        _set(root, name, layer)
    for saved in loaded.meta["modules_to_save"]:
        holder = _Holder()
        prefix = f"{saved}."
        for key, t in loaded.tensors.items():
            if key.startswith(prefix):
                pname = key[len(prefix):]
                owner = holder
                *path, leaf = pname.split(".")
                for p in path:
                    if not hasattr(owner, p):
                        owner.add_module(p, _Holder())
                    owner = getattr(owner, p)
                owner.register_parameter(leaf, nn.Parameter(torch.empty(t.shape, dtype=t.dtype)))
        _set(root, saved, holder)
    return root


def adapter_units(directory: str | Path) -> list[AdapterUnit]:
    """Every circuit of the adapter saved in ``directory``, with its trained angles, in module order.

    Raises :class:`~quicq.adapters.io.AdapterLoadError` (or ``FileNotFoundError``) naming what is
    wrong with the directory; nothing else is read or written.
    """
    from quicq.adapters.model import QuicqModel

    loaded = read_adapter(directory)
    if not isinstance(loaded.meta.get("modules"), dict) or not loaded.meta["modules"]:
        raise AdapterLoadError(f"adapter at {directory} records no adapted module")
    qm = QuicqModel.from_pretrained(_stand_in(loaded), directory)
    units: list[AdapterUnit] = []
    with torch.no_grad():
        for name, layer in qm.quicq_layers().items():
            if loaded.config.method == "quantum_peft":
                rank = int(loaded.config.rank)
                for which in ("u", "v"):
                    units.append(AdapterUnit(name, which.upper(), layer.circuit(None, which),
                                             layer.angles(None, which).detach().double().numpy()[None, :],
                                             None, rank, layer))
            else:
                spec = next(iter(layer.quic_spec.values()))
                units.append(AdapterUnit(name, "", layer.circuit(), layer.angles().detach().double().numpy(),
                                         tuple(spec.orders), None, layer))
    return units
