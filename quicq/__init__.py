"""quicq: quantum-inspired parameter-efficient fine-tuning with real circuits.

Subpackages: :mod:`quicq.circuits` (IR, layouts, compilers), :mod:`quicq.engine` (exact torch
simulation), :mod:`quicq.adapters` (QuIC and Quantum-PEFT layers, model surgery),
:mod:`quicq.hardware` (backends, tomography, hybrid training).
"""

from typing import Any

__version__ = "0.1.0"

#: peft's habit ``from peft import LoraConfig, get_peft_model`` works here too; loaded lazily so
#: ``import quicq`` stays light (quicq.errors, quicq.circuits need no adapter code).
_EXPORTS = {"QuICConfig": "quicq.adapters", "QuantumPEFTConfig": "quicq.adapters",
            "get_quicq_model": "quicq.adapters", "QuicqModel": "quicq.adapters", "QuicqError": "quicq.errors"}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'quicq' has no attribute {name!r}")
