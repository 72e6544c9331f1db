"""What a training run trains on: a base model, a loss over index batches, and a test evaluation.

The data and networks themselves live in :mod:`quicq.tasks` (defined once, shared with the demo,
the examples and the benchmarks); this module only turns a validated ``[task]`` table into a
:class:`TaskBundle`. Everything a task needs from disk (a model directory, a CSV and its
columns) is opened here, before any backend is built, so bad input fails before any job.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quicq.training.atomic import atomic_write_bytes
from quicq.training.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["ADAPTER_DEFAULTS", "TaskBundle", "accuracy", "build_task", "epoch_batches", "skeleton_model"]


@dataclass
class TaskBundle:
    """A task ready to train: ``loss_fn(model, index batch)``, ``evaluate(model) -> accuracy``.

    ``validate(model) -> accuracy`` scores the validation split (carved from the training data,
    never trained on): the number to choose learning rates or configs on; ``None`` when empty.
    """

    base: nn.Module
    n_train: int
    loss_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    evaluate: Callable[[nn.Module], float]
    adapter_defaults: dict[str, Any]
    head_modules: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    validate: Callable[[nn.Module], float] | None = None


def epoch_batches(n: int, batch_size: int, seed: int) -> Callable[[int], torch.Tensor]:
    """``batch_fn(step)`` → index batch: seeded epochs, a pure function of the step (resume-safe)."""
    per_epoch = max(1, n // batch_size)

    def batch_fn(step: int) -> torch.Tensor:
        epoch, i = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        return perm[i * batch_size:(i + 1) * batch_size] if n >= batch_size else perm

    return batch_fn


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Classification accuracy of ``model`` on (x, y), in eval mode without gradients."""
    was = model.training
    model.eval()
    with torch.no_grad():
        acc = float((model(x).argmax(-1) == y).float().mean())
    model.train(was)
    return acc


def _eval_batched(forward: Callable[[nn.Module, slice], torch.Tensor], y: torch.Tensor, batch: int = 128
                  ) -> Callable[[nn.Module], float]:
    def evaluate(model: nn.Module) -> float:
        was = model.training
        model.eval()
        correct = 0
        try:
            with torch.no_grad():
                for i in range(0, y.shape[0], batch):
                    sl = slice(i, i + batch)
                    correct += int((forward(model, sl).argmax(-1) == y[sl]).sum())
        finally:
            model.train(was)
        return correct / max(1, y.shape[0])

    return evaluate


# ---------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------

DIGITS_ADAPTER = {"target_modules": ["conv2", "fc1", "fc2"], "modules_to_save": ["head"], "block_size": 16}


def _digits_base(t: Mapping[str, Any], out: Path) -> nn.Module:
    """The pretrained CNN, cached in ``out/base-<key>.safetensors`` (keyed by the task settings)."""
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    from quicq.tasks.digits import DigitsCNN, pretrain_digits_cnn

    key = hashlib.sha256(json.dumps([t["seed"], t["width"], t["pretrain_epochs"]]).encode()).hexdigest()[:16]
    path = out / f"base-{key}.safetensors"
    model = DigitsCNN(t["width"])
    if path.is_file():
        try:
            model.load_state_dict(st_load(path.read_bytes()))
            return model.eval()
        except Exception as exc:  # noqa: BLE001 - a corrupt cache is rebuilt
            logger.warning("rebuilding the pretrained base model (%s)", exc)
    model = pretrain_digits_cnn(t["seed"], t["pretrain_epochs"], t["width"])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, st_save({k: v.contiguous() for k, v in model.state_dict().items()}))
    return model


def _digits(t: Mapping[str, Any], out: Path) -> TaskBundle:
    from quicq.tasks.digits import digits_split

    data = digits_split(seed=t["seed"])
    if t["train_size"]:
        data = data.subset_train(t["train_size"])
    x, y = data.x_train, data.y_train
    xt, yt = data.x_test, data.y_test
    if t["eval_size"]:
        xt, yt = xt[:t["eval_size"]], yt[:t["eval_size"]]

    def loss_fn(m: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(m(x[idx]), y[idx])

    evaluate = _eval_batched(lambda m, sl: m(xt[sl]), yt, batch=512)
    xv, yv = data.x_val, data.y_val
    validate = _eval_batched(lambda m, sl: m(xv[sl]), yv, batch=512) if yv.numel() else None
    return TaskBundle(_digits_base(t, out), int(x.shape[0]), loss_fn, evaluate, dict(DIGITS_ADAPTER), ["head"],
                      {"task": "digits 0–4 → 5–9", "train_examples": int(x.shape[0]),
                       "val_examples": int(yv.shape[0]), "test_examples": int(yt.shape[0])}, validate)


# ---------------------------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------------------------

TEXT_ADAPTER = {"target_modules": ["query", "value"], "modules_to_save": ["classifier"], "block_size": 16}


def _text_data(t: Mapping[str, Any]) -> Any:
    from quicq.tasks import TaskError, csv_texts, rotten_tomatoes

    sizes = {"seed": t["seed"], "val_size": t["val_size"], "train_size": t["train_size"] or None,
             "test_size": t["eval_size"] or None}
    try:
        if t["data"] == "rotten_tomatoes":
            return rotten_tomatoes(**sizes)
        path = Path(t["data"]).expanduser()
        if not path.is_file():
            raise ConfigError(f"'task.data': data set {str(path)!r} does not exist; give 'rotten_tomatoes' "
                              "or a CSV file with text and label columns")
        return csv_texts(path, t["text_column"], t["label_column"], **sizes)
    except TaskError as exc:
        raise ConfigError(f"'task.data': {exc}") from None


def _text(t: Mapping[str, Any]) -> TaskBundle:
    from quicq.tasks import TaskError, load_minilm_classifier

    data = _text_data(t)  # the data first: a bad CSV fails before a model is loaded
    path = None if t["model"] == "minilm" else Path(t["model"]).expanduser()
    if path is not None and not path.is_dir():
        raise ConfigError(f"'task.model': model directory {str(path)!r} does not exist; give 'minilm' or a local "
                          "Hugging Face model directory")
    try:
        tokenizer, model = load_minilm_classifier(data.num_labels, seed=t["seed"], path=path)
    except TaskError as exc:
        raise ConfigError(f"'task.model': {exc}") from None
    except (OSError, ValueError) as exc:  # transformers: not a model directory
        raise ConfigError(f"'task.model': cannot load a sequence classifier from {str(path)!r}: {exc}") from None

    def encode(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = tokenizer(texts, padding="max_length", truncation=True, max_length=t["max_length"],
                        return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"]

    ids, mask = encode(data.train_texts)
    y = torch.tensor(data.train_labels, dtype=torch.long)
    tids, tmask = encode(data.test_texts)
    yt = torch.tensor(data.test_labels, dtype=torch.long)

    def loss_fn(m: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        return m(input_ids=ids[idx], attention_mask=mask[idx], labels=y[idx]).loss

    evaluate = _eval_batched(lambda m, sl: m(input_ids=tids[sl], attention_mask=tmask[sl]).logits, yt, batch=64)
    validate = None
    if data.val_texts:
        vids, vmask = encode(data.val_texts)
        yv = torch.tensor(data.val_labels, dtype=torch.long)
        validate = _eval_batched(lambda m, sl: m(input_ids=vids[sl], attention_mask=vmask[sl]).logits, yv, batch=64)
    name = "all-MiniLM-L6-v2 (offline)" if path is None else str(path)
    return TaskBundle(model, int(y.shape[0]), loss_fn, evaluate, dict(TEXT_ADAPTER), ["classifier"],
                      {"task": f"text classification: {t['data']}", "model": name, "labels": data.label_names,
                       "train_examples": int(y.shape[0]), "val_examples": len(data.val_texts),
                       "test_examples": int(yt.shape[0])}, validate)


#: task name → adapter defaults (used for any key the [adapter] table leaves out)
ADAPTER_DEFAULTS: dict[str, dict[str, Any]] = {"digits": DIGITS_ADAPTER, "text": TEXT_ADAPTER}


def build_task(t: Mapping[str, Any], out: Path) -> TaskBundle:
    """The :class:`TaskBundle` of a validated ``[task]`` table (data and model loaded)."""
    return _digits(t, out) if t["name"] == "digits" else _text(t)


def skeleton_model(t: Mapping[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """(base model with the task's shapes, adapter defaults) without pretraining — for cost planning."""
    if t["name"] == "digits":
        from quicq.tasks.digits import DigitsCNN

        return DigitsCNN(t["width"]), dict(DIGITS_ADAPTER)
    return _text(t).base, dict(TEXT_ADAPTER)
