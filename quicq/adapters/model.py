"""Model surgery: find target modules, wrap them in adapter layers, manage adapters.

:func:`get_quicq_model` is the entry point; it returns a :class:`QuicqModel`, whose methods
mirror peft's ``PeftModel`` (``print_trainable_parameters``, ``merge_and_unload``,
``disable_adapter``, ``add_adapter``/``set_adapter``/``delete_adapter``, ``save_pretrained``/
``from_pretrained``). Every change is planned first and applied only once the whole plan is
valid, so a bad config or a bad checkpoint never leaves a model half-adapted.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from quicq.adapters.forward_batch import forward_batch
from quicq.adapters.config import AdapterConfig, AdapterConfigError, QuantumPEFTConfig, QuICConfig
from quicq.adapters.io import read_adapter, save_adapter
from quicq.adapters.targeting import LAYER_CLASSES, AdapterPlan, plan_adapter, set_submodule
from quicq.adapters.tuner import AdapterError, ModulesToSaveWrapper, QuicqTunerLayer

__all__ = ["LAYER_CLASSES", "AdapterPlan", "LayerStatus", "ModelStatus", "QuicqModel", "get_quicq_model",
           "plan_adapter"]


@dataclass
class LayerStatus:
    """State of one adapted module (the fields of peft's ``TunerLayerStatus``)."""

    name: str
    module_type: str
    enabled: bool
    active_adapters: list[str]
    merged_adapters: list[str]
    requires_grad: dict[str, bool]
    available_adapters: list[str]
    devices: dict[str, list[str]]


@dataclass
class ModelStatus:
    """Model-wide adapter state (the fields of peft's ``TunerModelStatus``); "irregular" where
    layers disagree."""

    base_model_type: str
    adapter_type: list[str]
    base_params: int
    trainable_params: int
    enabled: bool | str
    active_adapters: list[str] | str
    merged_adapters: list[str] | str
    requires_grad: dict[str, bool | str]
    available_adapters: list[str]

# ---------------------------------------------------------------------------------------------
# The wrapper
# ---------------------------------------------------------------------------------------------


class _Forward:
    """A QuicqModel's bound forward: calls the base model (its hooks included) and reports the
    base model's signature, so tools that inspect ``model.forward`` (transformers' Trainer keeps
    only the dataset columns the forward names) see the real arguments."""

    def __init__(self, module: nn.Module) -> None:
        self._module = module

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with forward_batch(self._module):  # every layer's blocks / columns in one engine call
            return self._module(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self._module.forward)


def _forward(self: QuicqModel, *args: Any, **kwargs: Any) -> Any:
    """Call the base model with the same arguments."""
    with forward_batch(self.base_model):
        return self.base_model(*args, **kwargs)


class _ForwardDescriptor:
    """``QuicqModel.forward``: on an instance a :class:`_Forward`; on the class a plain function
    (so class-level introspection such as Trainer's label detection still gets a callable)."""

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return _forward
        return _Forward(obj.base_model)


class QuicqModel(nn.Module):
    """A model with quicq adapters injected in place; attribute access falls through to it.

    Build with :func:`get_quicq_model` or :meth:`from_pretrained`. ``base_model`` is the
    original model object, whose targeted modules are now :class:`QuICLayer` /
    :class:`QuantumPEFTLayer` wrappers; calling the QuicqModel calls it.
    """

    def __init__(self, model: nn.Module, config: AdapterConfig, adapter_name: str = "default") -> None:
        super().__init__()
        if isinstance(model, QuicqModel):
            raise AdapterConfigError("model is already a QuicqModel; use add_adapter() to add another adapter")
        plan = plan_adapter(model, config, adapter_name)
        self.base_model = model
        self.peft_config: dict[str, AdapterConfig] = {}
        self._active: list[str] = []
        self._apply_plan(plan)
        for p in self.base_model.parameters():
            p.requires_grad_(False)
        self.set_adapter(adapter_name, inference_mode=config.inference_mode)

    # -- delegation ---------------------------------------------------------------------------
    forward = _ForwardDescriptor()  # type: ignore[assignment]

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_model":
                raise
            return getattr(self.base_model, name)

    def get_base_model(self) -> nn.Module:
        """The wrapped model (with adapter layers in place)."""
        return self.base_model

    # -- iteration ----------------------------------------------------------------------------
    def quicq_layers(self, adapter_name: str | None = None) -> dict[str, QuicqTunerLayer]:
        """Adapted modules by qualified name (those holding ``adapter_name``, if given)."""
        return {
            n: m for n, m in self.base_model.named_modules()
            if isinstance(m, QuicqTunerLayer) and (adapter_name is None or adapter_name in m.adapter_names())
        }

    def _saved_wrappers(self) -> dict[str, ModulesToSaveWrapper]:
        return {n: m for n, m in self.base_model.named_modules() if isinstance(m, ModulesToSaveWrapper)}

    @property
    def active_adapters(self) -> list[str]:
        return list(self._active)

    @property
    def active_adapter(self) -> str:
        """The first active adapter (peft's attribute); see :attr:`active_adapters` for chains."""
        return self._active[0] if self._active else ""

    # -- adapters -----------------------------------------------------------------------------
    def _apply_plan(self, plan: AdapterPlan) -> None:
        """Apply a validated plan; on any failure undo what was done and re-raise."""
        name = plan.adapter_name
        try:
            layer_cls, _ = LAYER_CLASSES[plan.config.method]
            for t in plan.targets:
                layer = t.existing
                if layer is None:
                    layer = layer_cls(self.base_model.get_submodule(t.name), t.name)
                    set_submodule(self.base_model, t.name, layer)
                layer.update_layer(name, t.spec, init_weights=plan.config.init_weights)
            for mname, module in plan.saved:
                wrapper = module
                if not isinstance(wrapper, ModulesToSaveWrapper):
                    wrapper = ModulesToSaveWrapper(module, mname)
                    set_submodule(self.base_model, mname, wrapper)
                wrapper.add(name)
            self.peft_config[name] = plan.config
        except Exception:
            self._remove_adapter(name)
            raise
        for layer in self.quicq_layers(name).values():
            layer.set_adapter(self._active)
        for w in self._saved_wrappers().values():
            w.set_adapter(self._active)

    def add_adapter(self, adapter_name: str, config: AdapterConfig) -> None:
        """Add a new (inactive, frozen) adapter; activate it with :meth:`set_adapter`."""
        if adapter_name in self.peft_config:
            raise AdapterConfigError(f"an adapter named {adapter_name!r} already exists")
        self._apply_plan(plan_adapter(self.base_model, config, adapter_name))

    def set_adapter(self, adapter_name: str | Sequence[str], inference_mode: bool = False) -> None:
        """Activate one adapter, or several chained in the given order; only they are trainable."""
        names = [adapter_name] if isinstance(adapter_name, str) else list(adapter_name)
        unknown = [a for a in names if a not in self.peft_config]
        if unknown or not names:
            raise AdapterConfigError(f"unknown adapter(s) {unknown or names}; available: {list(self.peft_config)}")
        if any(layer.merged for layer in self.quicq_layers().values()):
            warnings.warn("adapters are merged; unmerging before switching adapters", stacklevel=2)
            self.unmerge_adapter()
        for layer in self.quicq_layers().values():
            layer.set_adapter(names, inference_mode=inference_mode)
        for w in self._saved_wrappers().values():
            w.set_adapter(names, inference_mode=inference_mode)
        self._active = names

    def _remove_adapter(self, adapter_name: str) -> None:
        """Drop an adapter everywhere and unwrap modules left without adapters."""
        for name, layer in list(self.quicq_layers().items()):
            if adapter_name in layer.adapter_names() or adapter_name in getattr(layer, layer.other_param_names[0]):
                layer.delete_adapter(adapter_name)
            if not layer.adapter_names():
                set_submodule(self.base_model, name, layer.base_layer)
        for name, w in list(self._saved_wrappers().items()):
            w.delete_adapter(adapter_name)
            if not w.adapter_names():
                set_submodule(self.base_model, name, w.original_module)
        self.peft_config.pop(adapter_name, None)

    def delete_adapter(self, adapter_name: str) -> None:
        """Delete an adapter; if it was active, the remaining active ones (or the first left) take over."""
        if adapter_name not in self.peft_config:
            raise AdapterConfigError(f"no adapter named {adapter_name!r}; available: {list(self.peft_config)}")
        if any(adapter_name in layer.merged_adapters for layer in self.quicq_layers().values()):
            raise AdapterError(f"adapter {adapter_name!r} is merged; call unmerge_adapter() before deleting it")
        self._remove_adapter(adapter_name)
        rest = [a for a in self._active if a != adapter_name]
        if not rest and self.peft_config:
            rest = [next(iter(self.peft_config))]
            warnings.warn(f"deleted the active adapter; {rest[0]!r} is active now", stacklevel=2)
        if rest:
            self.set_adapter(rest)
        else:
            self._active = []

    # -- merging ------------------------------------------------------------------------------
    def merge_adapter(self, adapter_names: list[str] | None = None, safe_merge: bool = False) -> None:
        """Fold the active adapters (or ``adapter_names``) into the base weights; reversible."""
        names = self._active if adapter_names is None else list(adapter_names)
        for layer in self.quicq_layers().values():
            layer.merge(safe_merge=safe_merge, adapter_names=[a for a in names if a in layer.adapter_names()])

    def unmerge_adapter(self) -> None:
        """Undo :meth:`merge_adapter` on every layer."""
        for layer in self.quicq_layers().values():
            if layer.merged:
                layer.unmerge()

    def _unload(self, merge: bool, safe_merge: bool = False, adapter_names: list[str] | None = None) -> nn.Module:
        if merge:
            self.merge_adapter(adapter_names, safe_merge=safe_merge)
        for name, layer in self.quicq_layers().items():
            set_submodule(self.base_model, name, layer.get_base_layer())
        for name, w in self._saved_wrappers().items():
            set_submodule(self.base_model, name, w.active_module() if merge else w.original_module)
        self.peft_config = {}
        self._active = []
        return self.base_model

    def merge_and_unload(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> nn.Module:
        """Merge the active adapters and return the plain base model (modules_to_save: the trained copy).

        Use the returned model; this QuicqModel holds no adapters afterwards.
        """
        return self._unload(True, safe_merge, adapter_names)

    def unload(self) -> nn.Module:
        """Remove all adapters without merging and return the original model."""
        return self._unload(False)

    @contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """Context manager: inside, the model computes exactly the base model (unmerges if needed)."""
        if any(layer.merged for layer in self.quicq_layers().values()):
            warnings.warn("disabling merged adapters: unmerging them first", stacklevel=3)
            self.unmerge_adapter()
        modules = list(self.quicq_layers().values()) + list(self._saved_wrappers().values())
        for m in modules:
            m.enable_adapters(False)
        try:
            yield
        finally:
            for m in modules:
                m.enable_adapters(True)

    # -- block sources and circuits ----------------------------------------------------------
    def set_block_source(self, source: Any, adapter_name: str | None = None,
                         module_names: Sequence[str] | None = None) -> None:
        """Set (or with None, clear) a block source on every adapted layer (or ``module_names``).

        QuIC layers take a :data:`~quicq.adapters.layer.BlockSource`, Quantum-PEFT layers a
        :data:`~quicq.adapters.layer.ColumnSource`.
        """
        layers = self.quicq_layers(adapter_name)
        if module_names is not None:
            missing = [n for n in module_names if n not in layers]
            if missing:
                raise AdapterConfigError(f"no adapted module(s) {missing}; adapted: {sorted(layers)}")
            layers = {n: layers[n] for n in module_names}
        for layer in layers.values():
            layer.set_block_source(source, adapter_name)

    # -- status (peft's names) -----------------------------------------------------------------
    def get_layer_status(self) -> list[LayerStatus]:
        """One :class:`LayerStatus` per adapted module (peft's ``get_layer_status``)."""
        out = []
        for name, layer in self.quicq_layers().items():
            grads = {a: all(getattr(layer, attr)[a].requires_grad for attr in layer.adapter_layer_names)
                     for a in layer.adapter_names()}
            devices = {a: sorted({str(getattr(layer, attr)[a].device) for attr in layer.adapter_layer_names})
                       for a in layer.adapter_names()}
            out.append(LayerStatus(name, type(layer.get_base_layer()).__name__, not layer.disable_adapters,
                                   list(layer.active_adapters), list(layer.merged_adapters), grads,
                                   layer.adapter_names(), devices))
        return out

    def get_model_status(self) -> ModelStatus:
        """The model-wide summary of :meth:`get_layer_status` (peft's ``get_model_status``)."""
        layers = self.get_layer_status()
        trainable, total = self.get_nb_trainable_parameters()

        def agree(values: list[Any]) -> Any:
            return values[0] if values and all(v == values[0] for v in values) else "irregular"

        names = sorted({a for s in layers for a in s.available_adapters})
        return ModelStatus(type(self.base_model).__name__, [type(self.peft_config[a]).__name__ for a in names],
                           total - trainable, trainable, agree([s.enabled for s in layers]),
                           agree([s.active_adapters for s in layers]), agree([s.merged_adapters for s in layers]),
                           {a: agree([s.requires_grad.get(a) for s in layers if a in s.requires_grad]) for a in names},
                           names)

    def set_requires_grad(self, adapter_names: str | Sequence[str], requires_grad: bool = True) -> None:
        """Make the named adapters' parameters (and their modules_to_save copies) trainable or not."""
        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        unknown = [a for a in names if a not in self.peft_config]
        if unknown:
            raise AdapterConfigError(f"unknown adapter(s) {unknown}; available: {list(self.peft_config)}")
        for layer in self.quicq_layers().values():
            for attr in layer.adapter_layer_names:
                for a, p in getattr(layer, attr).items():
                    if a in names:
                        p.requires_grad_(requires_grad)
        for w in self._saved_wrappers().values():
            for a, m in w.modules_to_save.items():
                if a in names:
                    m.requires_grad_(requires_grad)

    # -- parameters ---------------------------------------------------------------------------
    def get_nb_trainable_parameters(self) -> tuple[int, int]:
        """(trainable parameters, all parameters), each counted once."""
        seen: set[int] = set()
        trainable = total = 0
        for p in self.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            if p.requires_grad:
                trainable += p.numel()
        return trainable, total

    def print_trainable_parameters(self) -> None:
        """Print ``trainable params: … || all params: … || trainable%: …`` (peft's format)."""
        trainable, total = self.get_nb_trainable_parameters()
        pct = 100 * trainable / total if total else 0.0
        print(f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {pct:.4f}")

    # -- persistence (quicq.adapters.io) ------------------------------------------------------
    def save_pretrained(self, save_directory: str | Path, selected_adapters: Sequence[str] | None = None) -> None:
        """Write each adapter as ``adapter_config.json`` + ``adapter_model.safetensors``.

        ``"default"`` goes to ``save_directory`` itself, any other adapter to
        ``save_directory/<name>/`` (peft's layout).
        """
        names = list(self.peft_config) if selected_adapters is None else list(selected_adapters)
        for name in names:
            if name not in self.peft_config:
                raise AdapterConfigError(f"no adapter named {name!r}; available: {list(self.peft_config)}")
            target = Path(save_directory) if name == "default" else Path(save_directory) / name
            save_adapter(self, target, name)

    def load_adapter(self, directory: str | Path, adapter_name: str, is_trainable: bool = False) -> None:
        """Load a saved adapter under ``adapter_name``; validated in full before the model changes."""
        if adapter_name in self.peft_config:
            raise AdapterConfigError(f"an adapter named {adapter_name!r} already exists")
        loaded = read_adapter(directory)
        plan = loaded.validate_plan(self.base_model, adapter_name)
        self._apply_plan(plan)
        loaded.copy_into(self, adapter_name)
        if not is_trainable:
            for layer in self.quicq_layers(adapter_name).values():
                for attr in layer.adapter_layer_names:
                    getattr(layer, attr)[adapter_name].requires_grad_(False)

    @classmethod
    def from_pretrained(cls, model: nn.Module, directory: str | Path, adapter_name: str = "default",
                        is_trainable: bool = False) -> QuicqModel:
        """Wrap ``model`` with a saved adapter. Nothing touches ``model`` until all checks pass.

        ``is_trainable=False`` (peft's default) loads the adapter frozen, for inference.
        """
        loaded = read_adapter(directory)
        loaded.validate_plan(model, adapter_name)
        qm = cls(model, loaded.config, adapter_name)
        loaded.copy_into(qm, adapter_name)
        qm.set_adapter(adapter_name, inference_mode=not is_trainable)
        return qm


def get_quicq_model(model: nn.Module, config: AdapterConfig, adapter_name: str = "default") -> QuicqModel:
    """Inject a QuIC or Quantum-PEFT adapter into ``model`` (in place) and wrap it.

    All base parameters are frozen; the adapter (and ``modules_to_save`` copies) are trainable.
    Raises :class:`~quicq.adapters.config.AdapterConfigError` before any change when the config
    cannot be applied (no matching module, blocks that do not fit a module, ...).
    """
    if not isinstance(config, (QuICConfig, QuantumPEFTConfig)):
        raise AdapterConfigError(
            f"config must be a QuICConfig or QuantumPEFTConfig, got {type(config).__name__}"
        )
    return QuicqModel(model, config, adapter_name)
