"""Adapters: QuIC compound adapters and Quantum-PEFT, injected into torch / transformers models.

Quick start (peft users will recognise it)::

    from quicq.adapters import QuICConfig, get_quicq_model
    model = get_quicq_model(model, QuICConfig(target_modules=["query", "value"], n_blocks=4))
    model.print_trainable_parameters()
    ...train...
    model.save_pretrained("out")                       # adapter_config.json + safetensors
    model = QuicqModel.from_pretrained(base, "out")     # validated before anything changes
    merged = model.merge_and_unload()                   # plain model, adapter folded in

Modules: :mod:`~quicq.adapters.config` (dataclass configs), :mod:`~quicq.adapters.layer`
(layers), :mod:`~quicq.adapters.model` (surgery, :class:`QuicqModel`), :mod:`~quicq.adapters.io`
(save/load), :mod:`~quicq.adapters.formats` (quicq's and peft's adapter formats, both read),
:mod:`~quicq.adapters.counts` (parameter counts from shapes),
:mod:`~quicq.adapters.peft_interop` (registration with peft; imports peft), :mod:`~quicq.adapters.peft_oft`
(peft OFT adapters imported as QuIC circuits).
"""

from quicq.adapters.config import (
    QUIC_PARAMETERIZATIONS,
    AdapterConfig,
    AdapterConfigError,
    QuantumPEFTConfig,
    QuICConfig,
    config_from_dict,
)
from quicq.adapters.formats import adapter_format, describe_adapter, load_with_peft
from quicq.adapters.io import AdapterLoadError, read_adapter, save_adapter
from quicq.adapters.layer import (
    AdapterError,
    BlockSource,
    ColumnSource,
    ModulesToSaveWrapper,
    QuantumPEFTLayer,
    QuantumPEFTSpec,
    QuICLayer,
    QuicqTunerLayer,
    QuICSpec,
)
from quicq.adapters.model import AdapterPlan, QuicqModel, get_quicq_model, plan_adapter

__all__ = [
    "QUIC_PARAMETERIZATIONS",
    "AdapterConfig",
    "AdapterConfigError",
    "AdapterError",
    "AdapterLoadError",
    "AdapterPlan",
    "BlockSource",
    "ColumnSource",
    "ModulesToSaveWrapper",
    "QuICConfig",
    "QuICLayer",
    "QuICSpec",
    "QuantumPEFTConfig",
    "QuantumPEFTLayer",
    "QuantumPEFTSpec",
    "QuicqModel",
    "QuicqTunerLayer",
    "adapter_format",
    "config_from_dict",
    "describe_adapter",
    "get_quicq_model",
    "load_with_peft",
    "plan_adapter",
    "read_adapter",
    "save_adapter",
]
