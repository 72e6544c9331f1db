"""Hugging Face ``Trainer`` integration: checkpoints that hold only the adapter.

``transformers.Trainer`` writes the full ``model.state_dict()`` for any model that is not a
``PreTrainedModel`` or a peft ``PeftModel`` — for a :class:`~quicq.adapters.model.QuicqModel`
that is the whole frozen base model in every checkpoint. :class:`QuicqTrainer` is a drop-in
``Trainer`` whose checkpoints and ``save_model`` hold the adapter directory quicq writes
(``adapter_config.json`` + ``adapter_model.safetensors``, checksummed) and the training
arguments as JSON, and which resumes (``resume_from_checkpoint``) and reloads the best model
from such directories. Importing this module imports transformers (the ``hf`` extra).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from quicq._optional import require
from quicq.adapters.io import AdapterLoadError, read_adapter
from quicq.adapters.model import QuicqModel

transformers = require("transformers", "hf")

__all__ = ["QuicqTrainer", "load_adapter_weights"]


def load_adapter_weights(qmodel: QuicqModel, directory: str | Path, adapter_name: str = "default") -> None:
    """Copy a saved adapter's tensors into the existing adapter ``adapter_name`` of ``qmodel``.

    Every tensor name and shape is checked against the model before anything is copied."""
    loaded = read_adapter(directory)
    wanted: dict[str, torch.Tensor] = {}
    for name, layer in qmodel.quicq_layers(adapter_name).items():
        for attr in layer.adapter_layer_names:
            wanted[f"{name}.{attr}"] = getattr(layer, attr)[adapter_name]
    for name, wrapper in qmodel._saved_wrappers().items():
        if adapter_name in wrapper.modules_to_save:
            for pname, p in wrapper.modules_to_save[adapter_name].named_parameters():
                wanted[f"{name}.{pname}"] = p
    if set(wanted) != set(loaded.tensors):
        raise AdapterLoadError(f"adapter at {directory} holds other tensors than adapter {adapter_name!r} of this model")
    for key, p in wanted.items():
        if tuple(loaded.tensors[key].shape) != tuple(p.shape):
            raise AdapterLoadError(f"adapter at {directory}: tensor {key!r} has shape "
                                   f"{tuple(loaded.tensors[key].shape)}, the model's is {tuple(p.shape)}")
    with torch.no_grad():
        for key, p in wanted.items():
            p.copy_(loaded.tensors[key].to(dtype=p.dtype, device=p.device))


class QuicqTrainer(transformers.Trainer):
    """``transformers.Trainer`` that saves and loads only the quicq adapter (see module docstring)."""

    def _quicq_model(self, model: Any = None) -> QuicqModel | None:
        m = self.accelerator.unwrap_model(model if model is not None else self.model)
        return m if isinstance(m, QuicqModel) else None

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        qm = self._quicq_model()
        if qm is None:
            return super()._save(output_dir, state_dict)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        qm.save_pretrained(output_dir, selected_adapters=[qm.active_adapter])
        # JSON, not Trainer's torch.save(args): adapter directories never hold pickles
        Path(output_dir, "training_args.json").write_text(self.args.to_json_string())
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        qm = self._quicq_model(model)
        if qm is None:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_adapter_weights(qm, resume_from_checkpoint, qm.active_adapter)

    def _load_best_model(self) -> None:
        qm = self._quicq_model()
        if qm is None:
            return super()._load_best_model()
        load_adapter_weights(qm, self.state.best_model_checkpoint, qm.active_adapter)
