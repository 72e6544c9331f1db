"""peft interop: quicq methods inside ``peft.PeftModel``, and peft OFT adapters as quicq circuits.

**Registration.** peft dispatches on ``peft.utils.PeftType``, a ``str`` Enum with a closed member
list; :func:`register_with_peft` (run on import of this module, idempotent) adds ``QUIC`` and
``QUANTUM_PEFT`` members to it at run time, then calls peft's public ``register_peft_method``
with config classes subclassing ``PeftConfig``, tuners subclassing ``BaseTuner`` and layers that
are quicq's own layers with peft's ``BaseTunerLayer`` mixed in. After that, the ordinary peft API
works::

    import quicq.adapters.peft_interop  # registers QUIC / QUANTUM_PEFT with peft
    from quicq.adapters.peft_interop import QuICPeftConfig
    model = peft.get_peft_model(model, QuICPeftConfig(target_modules=["query", "value"]))
    model.save_pretrained(d); peft.PeftModel.from_pretrained(base, d); model.merge_and_unload()

Loading a saved quicq adapter through ``PeftModel.from_pretrained`` needs this module imported
first (the enum member must exist before peft parses ``"peft_type": "QUIC"``); without it peft
fails with a bare ``KeyError: 'QUIC'``, which quicq cannot intercept since none of its code ran.
The saved ``adapter_config.json`` therefore carries a ``quicq_note`` naming the import, and
quicq's own loaders (``QuicqModel.from_pretrained``, the CLI's ``--adapter``) read such a
directory directly: see :mod:`quicq.adapters.formats`. Each saved config also records the
geometry of every adapted module (``quicq_modules``, as quicq's native format does), so the
circuits can be rebuilt without the base model. Files written before QuIC charts started at a
sorting network lack ``start`` and are read with ``start="identity"``, what they were trained with.

How the enum is extended (checked on CPython 3.11 and against the 3.12/3.13 enum layout): the
member is created with ``str.__new__`` and given ``_name_``/``_value_``/``_sort_order_``; it is
then stored where ``Enum`` looks members up — the class ``__dict__`` (attribute access),
``_member_map_`` (``PeftType["QUIC"]``), ``_value2member_map_`` (``PeftType("QUIC")``, JSON
round trips) and ``_member_names_`` (iteration, ``"QUIC" in list(PeftType)`` which
``register_peft_method`` checks). Python ≥ 3.13 has ``EnumType._add_member_`` for the first two
and it is used when present. Members behave like native ones: equality with the string, hashing,
pickling, ``json.dumps``.

OFT adapters import as QuIC circuits through :mod:`quicq.adapters.peft_oft` (re-exported here).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import nn

from quicq._optional import require
from quicq.adapters.config import (
    AdapterConfig,
    QuantumPEFTConfig,
    QuICConfig,
)
from quicq.adapters.layer import (
    AdapterError,
    QuantumPEFTLayer,
    QuantumPEFTSpec,
    QuICLayer,
    QuICSpec,
)
from quicq.adapters.io import module_record

require("peft", "hf")  # without the extra, name the pip line
try:
    from peft.config import PeftConfig
    from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer
    from peft.utils import PeftType, register_peft_method
except ImportError as exc:  # pragma: no cover - peft is part of the [hf] extra
    raise ImportError("quicq.adapters.peft_interop needs peft: pip install 'quicq[hf]'") from exc

__all__ = [
    "QUICQ_NOTE",
    "PeftQuICLayer",
    "PeftQuantumPEFTLayer",
    "QuICPeftConfig",
    "QuICPeftModel",
    "QuantumPEFTPeftConfig",
    "QuantumPEFTPeftModel",
    "add_peft_type",
    "load_oft_adapter",
    "oft_rotations",
    "quic_from_peft_oft",
    "register_with_peft",
]


# ---------------------------------------------------------------------------------------------
# Extending peft's PeftType enum
# ---------------------------------------------------------------------------------------------


def add_peft_type(name: str) -> PeftType:
    """Add member ``name`` (value = name) to ``peft.utils.PeftType``; return the existing one if present."""
    cls = PeftType
    if name in cls._member_map_:
        return cls._member_map_[name]
    if name in cls.__dict__:
        raise RuntimeError(f"PeftType already has a non-member attribute {name!r}; cannot add it as a member")
    member = str.__new__(cls, name)
    member._name_ = name
    member._value_ = name
    member._sort_order_ = len(cls._member_names_)
    member.__objclass__ = cls
    adder = getattr(cls, "_add_member_", None)  # Python ≥ 3.13
    if adder is not None:
        adder(name, member)
    else:
        type.__setattr__(cls, name, member)  # bypass EnumType.__setattr__'s member guard
        cls._member_map_[name] = member
    cls._value2member_map_.setdefault(name, member)
    if name not in cls._member_names_:
        cls._member_names_.append(name)
    # sanity: every lookup path must now find the same object
    if not (cls[name] is member and cls(name) is member and getattr(cls, name) is member and member in list(cls)):
        raise RuntimeError(f"could not add {name!r} to peft's PeftType on this Python version")
    return member


# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------


def _as_list(v: Any) -> Any:
    return sorted(v) if isinstance(v, (set, frozenset, tuple)) else v


#: Written into every saved peft-format config, for whoever opens it after peft's ``KeyError``.
QUICQ_NOTE = ("written by quicq.adapters.peft_interop: run `import quicq.adapters.peft_interop` before "
              "peft.PeftModel.from_pretrained (peft alone fails with KeyError: '<peft_type>'); "
              "quicq.adapters.QuicqModel.from_pretrained and the quicq CLI (--adapter) read this directory as is")


def _quicq_fields(cfg: PeftConfig) -> None:
    """Shared ``__post_init__`` part: the note, and the module records as a dict."""
    cfg.quicq_note = QUICQ_NOTE
    if cfg.quicq_modules is None:
        cfg.quicq_modules = {}
    if not isinstance(cfg.quicq_modules, dict):
        raise AdapterError(f"quicq_modules must be a dict of module records, got {type(cfg.quicq_modules).__name__}")


@dataclass
class QuICPeftConfig(PeftConfig):
    """peft config for QuIC; the fields and their meaning are those of :class:`QuICConfig`."""

    target_modules: list[str] | str | None = None
    exclude_modules: list[str] | str | None = None
    modules_to_save: list[str] | None = None
    init_weights: bool = True
    n_blocks: int | None = None
    block_size: int | None = None
    orders: list[int] = field(default_factory=lambda: [1, 2])
    parameterization: str = "pyramid"
    n_layers: int = 2
    block_share: bool = False
    rotate: str = "output"
    apply_mode: str = "auto"
    #: ``None``: ``"sorting"`` for a new config; ``"identity"`` for a saved one that lacks the field
    #: (written before ``start`` existed; a loaded config is one that arrives with its ``peft_type``).
    start: str | None = None
    compound_mode: str = "auto"
    quicq_modules: dict[str, dict[str, Any]] | None = None
    quicq_note: str = QUICQ_NOTE

    quicq_config_cls = QuICConfig

    def __post_init__(self) -> None:
        if self.start is None:
            self.start = "sorting" if self.peft_type is None else "identity"
        super().__post_init__()
        self.peft_type = PeftType.QUIC
        self.orders = list(self.orders)
        _quicq_fields(self)
        self.to_quicq()  # validates every field now, with quicq's messages

    def to_quicq(self) -> AdapterConfig:
        """The equivalent quicq-native config."""
        names = [f.name for f in dataclasses.fields(self.quicq_config_cls)]
        kw = {k: _as_list(getattr(self, k)) for k in names}
        if isinstance(kw.get("orders"), list):
            kw["orders"] = tuple(kw["orders"])
        return self.quicq_config_cls(**kw)


@dataclass
class QuantumPEFTPeftConfig(PeftConfig):
    """peft config for Quantum-PEFT; fields as :class:`QuantumPEFTConfig`."""

    target_modules: list[str] | str | None = None
    exclude_modules: list[str] | str | None = None
    modules_to_save: list[str] | None = None
    init_weights: bool = True
    rank: int = 4
    n_layers: int = 1
    scale: float = 1.0
    alpha: float | None = None
    init_angles: str = "random"
    quicq_modules: dict[str, dict[str, Any]] | None = None
    quicq_note: str = QUICQ_NOTE

    quicq_config_cls = QuantumPEFTConfig

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = PeftType.QUANTUM_PEFT
        _quicq_fields(self)
        self.to_quicq()

    to_quicq = QuICPeftConfig.to_quicq


# ---------------------------------------------------------------------------------------------
# Layers and tuners
# ---------------------------------------------------------------------------------------------


class PeftQuICLayer(QuICLayer, BaseTunerLayer):
    """:class:`QuICLayer` registered as a peft tuner layer (its methods take precedence)."""


class PeftQuantumPEFTLayer(QuantumPEFTLayer, BaseTunerLayer):
    """:class:`QuantumPEFTLayer` registered as a peft tuner layer."""


class _QuicqTuner(BaseTuner):
    """Shared ``BaseTuner`` logic: wrap each matched module in the method's quicq layer."""

    target_module_mapping: ClassVar[dict[str, list[str]]] = {}
    _layer_cls: type
    _spec_cls: type

    def _prepare_adapter_config(self, peft_config: PeftConfig, model_config: dict) -> PeftConfig:
        if peft_config.target_modules is None:
            raise ValueError(f"{type(peft_config).__name__} needs target_modules (quicq has no per-model defaults)")
        peft_config.quicq_modules = {}  # filled per target below: the geometry of this model
        return peft_config

    def _create_and_replace(self, peft_config: PeftConfig, adapter_name: str, target: nn.Module, target_name: str,
                            parent: nn.Module, current_key: str, **optional_kwargs: Any) -> None:
        qcfg = peft_config.to_quicq()
        base = target.get_base_layer() if isinstance(target, self._layer_cls) else target
        peft_config.quicq_modules[current_key] = module_record(base, current_key)
        if isinstance(target, self._layer_cls):
            spec = self._spec_cls.build(qcfg, target.get_base_layer(), current_key)
            target.update_layer(adapter_name, spec, init_weights=peft_config.init_weights)
            return
        spec = self._spec_cls.build(qcfg, target, current_key)
        new = self._layer_cls(target, current_key)
        new.update_layer(adapter_name, spec, init_weights=peft_config.init_weights)
        new.set_adapter(self.active_adapters)
        if adapter_name not in self.active_adapters:
            new.requires_grad_(False)
        self._replace_module(parent, target_name, new, target)


class QuICPeftModel(_QuicqTuner):
    """peft ``BaseTuner`` for QuIC (use through ``peft.get_peft_model`` / ``PeftModel``)."""

    prefix = "quic_"
    tuner_layer_cls = PeftQuICLayer
    _layer_cls = PeftQuICLayer
    _spec_cls = QuICSpec


class QuantumPEFTPeftModel(_QuicqTuner):
    """peft ``BaseTuner`` for Quantum-PEFT."""

    prefix = "qpeft_"
    tuner_layer_cls = PeftQuantumPEFTLayer
    _layer_cls = PeftQuantumPEFTLayer
    _spec_cls = QuantumPEFTSpec


_REGISTERED = False


def register_with_peft() -> None:
    """Make ``QUIC`` and ``QUANTUM_PEFT`` peft methods (idempotent; runs on import of this module)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING

    add_peft_type("QUIC")
    add_peft_type("QUANTUM_PEFT")
    for name, cfg, model, prefix in (("quic", QuICPeftConfig, QuICPeftModel, "quic_"),
                                     ("quantum_peft", QuantumPEFTPeftConfig, QuantumPEFTPeftModel, "qpeft_")):
        if PEFT_TYPE_TO_TUNER_MAPPING.get(getattr(PeftType, name.upper())) is not model:
            register_peft_method(name=name, config_cls=cfg, model_cls=model, prefix=prefix)
    _REGISTERED = True


register_with_peft()

from quicq.adapters.peft_oft import load_oft_adapter, oft_rotations, quic_from_peft_oft  # noqa: E402
