"""peft's tuner-layer protocol, shared by quicq's layers, and the modules_to_save wrapper.

Both layer classes keep peft's tuner-layer protocol (``base_layer``, per-adapter
``nn.ParameterDict`` containers named in ``adapter_layer_names``, ``set_adapter``,
``enable_adapters``, ``delete_adapter``, ``merge``/``unmerge``, ``merged_adapters``), so
:mod:`quicq.adapters.peft_interop` can register them with peft by mixing in peft's
``BaseTunerLayer`` without re-implementing anything. Nothing here imports peft.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from quicq.adapters.geometry import layer_geometry
from quicq.errors import QuicqError

__all__ = ["AdapterError", "ModulesToSaveWrapper", "QuicqTunerLayer"]


class AdapterError(QuicqError, RuntimeError):
    """An adapter cannot be applied, merged or fed as requested; the message names the module."""


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

    def _name(self, adapter_name: str | None) -> str:
        """``adapter_name``, or the first active (else first) adapter when None; raises naming the module."""
        if adapter_name is None:
            chain = self._chain() or self.adapter_names()
            if not chain:
                raise AdapterError(f"{self._where()} holds no adapter")
            return chain[0]
        if adapter_name not in self.adapter_names():
            raise AdapterError(f"{self._where()} has no adapter {adapter_name!r}; it has {self.adapter_names()}")
        return adapter_name

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
