"""Which modules an adapter goes into, and with which shapes: planned without touching the model.

Targeting follows peft exactly (see :mod:`quicq.adapters.config`). :func:`plan_adapter` returns an
:class:`AdapterPlan` — every shape decision for every target module, or a clear error naming the
module and its size — which :class:`~quicq.adapters.model.QuicqModel` applies and
:mod:`~quicq.adapters.io` checks saved tensors against.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from quicq.adapters.config import ALL_LINEAR, CLASSIFICATION_TASKS, AdapterConfig, AdapterConfigError
from quicq.adapters.geometry import conv1d_class, layer_geometry
from quicq.adapters.quantum_peft import QuantumPEFTLayer, QuantumPEFTSpec
from quicq.adapters.quic import QuICLayer, QuICSpec
from quicq.adapters.tuner import ModulesToSaveWrapper, QuicqTunerLayer

__all__ = ["HEAD_NAMES", "LAYER_CLASSES", "AdapterPlan", "TargetPlan", "plan_adapter", "set_submodule"]

Spec = QuICSpec | QuantumPEFTSpec
#: Layer class and spec class per method.
LAYER_CLASSES: dict[str, tuple[type[QuicqTunerLayer], type]] = {
    "quic": (QuICLayer, QuICSpec),
    "quantum_peft": (QuantumPEFTLayer, QuantumPEFTSpec),
}
#: Top-level heads that "all-linear" leaves alone (peft excludes the output embeddings and, for
#: classification, the ``classifier``/``score`` head; quicq always excludes these names).
HEAD_NAMES: tuple[str, ...] = ("classifier", "score", "qa_outputs")


# ---------------------------------------------------------------------------------------------
# Matching (peft's rules)
# ---------------------------------------------------------------------------------------------


def _name_matches(spec: list[str] | str, name: str) -> bool:
    if isinstance(spec, str):
        return re.fullmatch(spec, name) is not None
    return any(name == t or name.endswith("." + t) for t in spec)


def _candidates(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Named modules, skipping the insides of quicq layers and modules_to_save wrappers."""
    inside: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(p + ".") for p in inside):
            continue
        if isinstance(module, (QuicqTunerLayer, ModulesToSaveWrapper)):
            inside.append(name)
        yield name, module


def _is_linear(module: nn.Module) -> bool:
    base = module.get_base_layer() if isinstance(module, QuicqTunerLayer) else module
    conv1d = conv1d_class()
    return isinstance(base, nn.Linear) or (conv1d is not None and isinstance(base, conv1d))


def _head_modules(model: nn.Module) -> set[str]:
    """Names excluded by ``"all-linear"``: the output embeddings and classification heads."""
    heads: list[nn.Module] = []
    get_out = getattr(model, "get_output_embeddings", None)
    if callable(get_out):
        try:
            emb = get_out()
        except (NotImplementedError, AttributeError):
            emb = None
        if isinstance(emb, nn.Module):
            heads.append(emb)
    for attr in HEAD_NAMES:
        head = model._modules.get(attr)
        if isinstance(head, nn.Module):
            heads.append(head)
    out: set[str] = set()
    for name, module in model.named_modules():
        if any(module is h for h in heads):
            out.add(name)
    # and everything inside a head
    return {n for n, _ in model.named_modules() if any(n == h or n.startswith(h + ".") for h in out)}


@dataclass
class TargetPlan:
    """One module to adapt: its qualified name, resolved spec, and existing quicq layer if any."""

    name: str
    spec: Spec
    existing: QuicqTunerLayer | None


@dataclass
class AdapterPlan:
    """Everything adding one adapter will do, computed without touching the model."""

    adapter_name: str
    config: AdapterConfig
    targets: list[TargetPlan]
    saved: list[tuple[str, nn.Module]] = field(default_factory=list)  # modules_to_save (name, module)

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Checkpoint tensor names (without adapter name) and shapes this adapter consists of."""
        out: dict[str, tuple[int, ...]] = {}
        for t in self.targets:
            if isinstance(t.spec, QuICSpec):
                out[f"{t.name}.quic_params"] = tuple(t.spec.param_shape)
            else:
                for attr, shape in t.spec.param_shapes.items():
                    out[f"{t.name}.{attr}"] = tuple(shape)
        for name, module in self.saved:
            original = module.original_module if isinstance(module, ModulesToSaveWrapper) else module
            for pname, p in original.named_parameters():
                out[f"{name}.{pname}"] = tuple(p.shape)
        return out


def _check_adapter_name(name: Any) -> None:
    if not isinstance(name, str) or not name or "." in name:
        raise AdapterConfigError(f"adapter names must be non-empty strings without '.', got {name!r}")


def plan_adapter(model: nn.Module, config: AdapterConfig, adapter_name: str = "default") -> AdapterPlan:
    """Resolve ``config`` against ``model``: which modules, which shapes — or a clear error.

    Pure: the model is not modified. Errors name the module and its size.
    """
    _check_adapter_name(adapter_name)
    if config.method not in LAYER_CLASSES:
        raise AdapterConfigError(f"unknown adapter method {config.method!r}")
    layer_cls, spec_cls = LAYER_CLASSES[config.method]
    saved_specs = list(config.modules_to_save or [])
    heads = [h for h in HEAD_NAMES if isinstance(model._modules.get(h), nn.Module)]
    if config.task_type in CLASSIFICATION_TASKS:  # peft's rule: a classification task trains its head
        saved_specs += [h for h in heads if h not in saved_specs]
    elif heads and config.task_type is None and not any(h in saved_specs for h in heads):
        warnings.warn(
            f"the model has a task head {heads} that stays frozen (it is not in modules_to_save); if it "
            f"is freshly initialised, pass modules_to_save={heads!r} or task_type='SEQ_CLS'", stacklevel=3)
    saved: list[tuple[str, nn.Module]] = []
    for entry in saved_specs:
        hits = [(n, m) for n, m in _candidates(model) if n and _name_matches([entry], n)]
        if not hits:
            raise AdapterConfigError(f"modules_to_save entry {entry!r} matches no module of the model")
        saved.extend(h for h in hits if h[0] not in {s[0] for s in saved})
    saved_names = [n for n, _ in saved]
    for n, m in saved:
        if isinstance(m, QuicqTunerLayer):
            raise AdapterConfigError(
                f"module {n!r} is already an adapted layer; it cannot also be in modules_to_save"
            )
        if isinstance(m, ModulesToSaveWrapper) and adapter_name in m.modules_to_save:
            raise AdapterConfigError(f"module {n!r} already keeps a copy for adapter {adapter_name!r}")

    targets_spec = config.target_modules
    heads = _head_modules(model) if targets_spec == ALL_LINEAR else set()
    targets: list[TargetPlan] = []
    for name, module in _candidates(model):
        if not name:
            continue
        if targets_spec == ALL_LINEAR:
            if not _is_linear(module) or name in heads:
                continue
        elif not _name_matches(targets_spec, name):
            continue
        if config.exclude_modules and _name_matches(config.exclude_modules, name):
            continue
        if any(name == s or name.startswith(s + ".") for s in saved_names):
            continue
        if isinstance(module, ModulesToSaveWrapper):
            continue
        existing = module if isinstance(module, QuicqTunerLayer) else None
        if existing is not None:
            if not isinstance(existing, layer_cls):
                raise AdapterConfigError(
                    f"module {name!r} already holds {type(existing).__name__} adapters; one module cannot mix "
                    f"quicq methods (new adapter {adapter_name!r} is {config.method})"
                )
            if adapter_name in existing.adapter_names():
                raise AdapterConfigError(f"module {name!r} already has an adapter named {adapter_name!r}")
            base = existing.get_base_layer()
        else:
            base = module
        targets.append(TargetPlan(name, spec_cls.build(config, base, name), existing))
    if not targets:
        adaptable = [n for n, m in _candidates(model) if n and _is_adaptable(m)]
        shown = ", ".join(adaptable[:12]) + (" …" if len(adaptable) > 12 else "")
        raise AdapterConfigError(
            f"target_modules={config.target_modules!r} matched no adaptable module of "
            f"{type(model).__name__}; its Linear/Conv1D/Conv2d modules are: {shown or 'none'}"
        )
    return AdapterPlan(adapter_name, config, targets, saved)


def _is_adaptable(module: nn.Module) -> bool:
    try:
        layer_geometry(module.get_base_layer() if isinstance(module, QuicqTunerLayer) else module)
        return True
    except AdapterConfigError:
        return False


def set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
