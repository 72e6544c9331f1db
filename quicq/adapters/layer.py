"""The adapter layers, gathered in one namespace (compatibility: older code imports from here).

The code lives by concern, as peft splits its tuners: :mod:`~quicq.adapters.tuner` (the tuner-
layer protocol, modules_to_save), :mod:`~quicq.adapters.geometry` (base-layer shapes),
:mod:`~quicq.adapters.parameterizations` (block charts), :mod:`~quicq.adapters.apply` (block
application), :mod:`~quicq.adapters.quic` and :mod:`~quicq.adapters.quantum_peft` (the methods).
"""

from quicq.adapters.apply import apply_blocks, apply_rotation
from quicq.adapters.geometry import SUPPORTED_LAYERS, LayerGeometry, layer_geometry
from quicq.adapters.quantum_peft import ColumnSource, QuantumPEFTLayer, QuantumPEFTSpec
from quicq.adapters.quic import BlockSource, QuICLayer, QuICSpec
from quicq.adapters.tuner import AdapterError, ModulesToSaveWrapper, QuicqTunerLayer

__all__ = [
    "SUPPORTED_LAYERS",
    "AdapterError",
    "BlockSource",
    "ColumnSource",
    "LayerGeometry",
    "ModulesToSaveWrapper",
    "QuICLayer",
    "QuICSpec",
    "QuantumPEFTLayer",
    "QuantumPEFTSpec",
    "QuicqTunerLayer",
    "apply_blocks",
    "apply_rotation",
    "layer_geometry",
]
