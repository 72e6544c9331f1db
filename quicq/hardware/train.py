"""Compatibility module: the training code moved to :mod:`quicq.training`, the QuIC bridge to
:mod:`quicq.hardware.bridge` and the backend-spec parser to :mod:`quicq.hardware.spec`.

Existing imports (``from quicq.hardware.train import backend_from_spec, HardwareBlockSource``)
keep working; new code should import from the new homes.
"""

from __future__ import annotations

from quicq.hardware.bridge import HardwareBlockSource
from quicq.hardware.spec import BACKEND_SPECS, backend_from_spec, backend_kind_ok
from quicq.training.atomic import atomic_write_bytes
from quicq.training.checkpoints import Checkpoint, CheckpointStore
from quicq.training.config import CONFIG_SCHEMA, REQUIRED, TRAIN_GRADIENTS, load_config, validate_config
from quicq.training.errors import CheckpointError, ConfigError, TrainingError
from quicq.training.loop import HybridTrainer, StepCallback, TrainResult
from quicq.training.rng import find_generators
from quicq.training.run import build_adapter_skeleton, run_config
from quicq.training.tasks import epoch_batches

GRADIENT_CHOICES = TRAIN_GRADIENTS

__all__ = [
    "BACKEND_SPECS", "CONFIG_SCHEMA", "GRADIENT_CHOICES", "REQUIRED", "Checkpoint", "CheckpointError",
    "CheckpointStore", "ConfigError", "HardwareBlockSource", "HybridTrainer", "StepCallback", "TrainResult",
    "TrainingError", "atomic_write_bytes", "backend_from_spec", "backend_kind_ok", "build_adapter_skeleton",
    "epoch_batches", "find_generators", "load_config", "run_config", "validate_config",
]
