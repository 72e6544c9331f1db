"""Training adapters through hardware: the loop, checkpoints, configs and config-driven runs.

* :mod:`~quicq.training.loop` — :class:`HybridTrainer`: steps, checkpoints, bit-exact resume.
* :mod:`~quicq.training.checkpoints` — :class:`CheckpointStore` (atomic, SHA-256-checked files).
* :mod:`~quicq.training.atomic`, :mod:`~quicq.training.rng` — crash-safe writes, RNG capture.
* :mod:`~quicq.training.config` — the TOML/JSON schema of ``quicq train``.
* :mod:`~quicq.training.schedule` — the lr schedule (warmup + cosine) of every quicq recipe.
* :mod:`~quicq.training.run` — :func:`train` / :func:`run_config`: task, adapter, backend,
  mitigation options, evaluation, plot; :mod:`~quicq.training.sources` puts one model-level
  bridge (:class:`~quicq.hardware.model_bridge.ModelHardwareBridge`: QuIC blocks and Quantum-PEFT
  columns alike, one job per step direction) on the model; :mod:`~quicq.training.tasks` wraps
  :mod:`quicq.tasks`.

Submodules that need optional packages import them on use; ``import quicq.training`` is light.
"""

import importlib
from typing import Any

#: public name → submodule (imported on first use, so ``quicq.training.atomic`` stays light)
_EXPORTS = {
    "atomic_write_bytes": "atomic", "atomic_write_text": "atomic",
    "Checkpoint": "checkpoints", "CheckpointStore": "checkpoints",
    "CONFIG_SCHEMA": "config", "REQUIRED": "config", "TRAIN_GRADIENTS": "config", "load_config": "config",
    "validate_config": "config",
    "CheckpointError": "errors", "ConfigError": "errors", "TrainingError": "errors",
    "HybridTrainer": "loop", "TrainResult": "loop",
    "find_generators": "rng",
    "lr_factor": "schedule",
    "build_run": "run", "run_config": "run", "train": "run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"quicq.training.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'quicq.training' has no attribute {name!r}")
