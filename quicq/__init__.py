"""quicq: quantum-inspired parameter-efficient fine-tuning with real circuits.

Subpackages: :mod:`quicq.circuits` (IR, layouts, compilers), :mod:`quicq.engine` (exact torch
simulation), :mod:`quicq.adapters` (QuIC and Quantum-PEFT layers, model surgery),
:mod:`quicq.hardware` (backends, tomography, hybrid training).
"""

__version__ = "0.1.0"
