"""Tasks as the recipe sees them: a fresh model per run, training batches, a loss, evaluation.

A :class:`Workload` wraps one :mod:`quicq.tasks` data set and model with the recipe defaults
of that task (steps, batch size, head lr, adapter targets). ``benchmarks/accuracy.py`` and the
examples build their runs from these, so they share data, model and recipe.

* ``digits`` — the :class:`quicq.tasks.DigitsCNN` pretrained on digits 0–4 (seed 0, fixed for
  every run), adapted to 5–9; adapters on ``conv2``, ``fc1``, ``fc2``.
* ``text`` — MiniLM-L6 on the Rotten Tomatoes snippets; adapters on the attention ``query`` and
  ``value`` projections, trained classifier.
* ``csv:PATH`` — MiniLM on a user CSV (``text`` / ``label`` columns unless told otherwise).

``evaluate(model, "val" | "test")`` returns (accuracy, mean cross-entropy).
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from common import Recipe, cycle_batches


@dataclass(frozen=True)
class TaskSettings:
    """Everything that defines a task's data and recipe; part of every result key."""

    task: str
    steps: int
    batch_size: int
    head_lr: float
    train_size: int = 0  # 0: all
    val_size: int = 0  # 0: the task's default
    test_size: int = 0  # 0: all
    seq_len: int = 64
    pretrain_epochs: int = 8
    text_column: str = "text"
    label_column: str = "label"

    def fingerprint(self) -> str:
        data = asdict(self)
        if self.task.startswith("csv:"):
            data["csv_sha256"] = hashlib.sha256(Path(self.task[4:]).read_bytes()).hexdigest()
        return hashlib.sha256(repr(sorted(data.items())).encode()).hexdigest()[:12]

    @property
    def recipe(self) -> Recipe:
        return Recipe(self.steps, self.batch_size, self.head_lr)


#: Recipe defaults per task family (the issue's MiniLM recipe: 250 steps of batch 16).
DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"steps": 300, "batch_size": 32, "head_lr": 1e-2},
    "text": {"steps": 250, "batch_size": 16, "head_lr": 2e-3},
}
TARGETS = {"digits": ("conv2", "fc1", "fc2"), "text": ("query", "value")}
HEADS = {"digits": ("head",), "text": ("classifier",)}


def family(task: str) -> str:
    """``digits`` or ``text`` (a CSV task is a text task)."""
    if task == "digits":
        return "digits"
    if task == "text" or task.startswith("csv:"):
        return "text"
    raise SystemExit(f"unknown task {task!r}: use digits, text or csv:PATH")


class Workload:
    """One task's data and base model, loaded once per process and reused by every run."""

    def __init__(self, settings: TaskSettings) -> None:
        self.settings = settings
        self.family = family(settings.task)
        self.targets = TARGETS[self.family]
        self.head = HEADS[self.family]
        if self.family == "digits":
            self._init_digits()
        else:
            self._init_text()

    # -- digits
    def _init_digits(self) -> None:
        from quicq.tasks import digits_split, pretrain_digits_cnn

        s = self.settings
        split = digits_split(seed=0)
        if s.train_size:
            split = split.subset_train(s.train_size)
        self.split = split
        self.n_train = len(split.x_train)
        self.sizes = {"train": len(split.x_train), "val": len(split.x_val), "test": len(split.x_test)}
        self._base = pretrain_digits_cnn(seed=0, epochs=s.pretrain_epochs)

    # -- text
    def _init_text(self) -> None:
        from quicq.tasks import csv_texts, load_minilm_classifier, rotten_tomatoes

        s = self.settings
        kw: dict[str, Any] = {"seed": 0, "train_size": s.train_size or None, "test_size": s.test_size or None}
        if s.val_size:
            kw["val_size"] = s.val_size
        if s.task == "text":
            self.data = rotten_tomatoes(**kw)
        else:
            self.data = csv_texts(s.task[4:], s.text_column, s.label_column, **kw)
        self.tokenizer, _ = load_minilm_classifier(num_labels=self.data.num_labels)
        self.n_train = len(self.data.train_texts)
        self.sizes = {"train": self.n_train, "val": len(self.data.val_texts), "test": len(self.data.test_texts)}
        self._train_y = torch.tensor(self.data.train_labels)
        self._eval = {part: self._encode_all(getattr(self.data, f"{part}_texts"), getattr(self.data, f"{part}_labels"))
                      for part in ("val", "test")}

    def _encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return dict(self.tokenizer(texts, padding="longest", truncation=True, max_length=self.settings.seq_len,
                                   return_tensors="pt"))

    def _encode_all(self, texts: list[str], labels: list[int], bs: int = 128) -> list[tuple[dict, torch.Tensor]]:
        # sorted by length so padding is small; accuracy does not depend on the order
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        return [(self._encode([texts[i] for i in order[j:j + bs]]), torch.tensor([labels[i] for i in order[j:j + bs]]))
                for j in range(0, len(order), bs)]

    # -- the interface the recipe uses
    def fresh_model(self, seed: int) -> nn.Module:
        """The base model with a fresh head seeded by ``seed`` (the body is the same for every run)."""
        if self.family == "digits":
            model = copy.deepcopy(self._base)
            torch.manual_seed(seed)
            model.head.reset_parameters()
            return model
        from quicq.tasks import load_minilm_classifier

        return load_minilm_classifier(num_labels=self.data.num_labels, seed=seed)[1]

    def batches(self, seed: int) -> Iterator[Any]:
        """Seeded training batches, prepared outside the timed step."""
        for idx in cycle_batches(self.n_train, self.settings.batch_size, seed):
            if self.family == "digits":
                yield self.split.x_train[idx], self.split.y_train[idx]
            else:
                yield self._encode([self.data.train_texts[i] for i in idx.tolist()]), self._train_y[idx]

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        out = model(x) if self.family == "digits" else model(**x).logits
        return nn.functional.cross_entropy(out, y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, part: str) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) on ``part`` ("val" or "test"), in eval mode."""
        if part not in ("val", "test"):
            raise ValueError(f"part must be 'val' or 'test', got {part!r}")
        model.eval()
        if self.family == "digits":
            x, y = getattr(self.split, f"x_{part}"), getattr(self.split, f"y_{part}")
            if len(y) == 0:
                return float("nan"), float("nan")
            logits = model(x)
            return float((logits.argmax(-1) == y).float().mean()), float(nn.functional.cross_entropy(logits, y))
        correct, loss, n = 0, 0.0, 0
        for enc, y in self._eval[part]:
            logits = model(**enc).logits
            correct += int((logits.argmax(-1) == y).sum())
            loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            n += len(y)
        return (correct / n, loss / n) if n else (float("nan"), float("nan"))


def run_method(wl: Workload, method: str, settings: dict[str, Any], lr: float, seed: int, *,
               recipe: Recipe | None = None, progress: bool = False) -> dict[str, Any]:
    """Set up ``method`` on a fresh model, train it with the recipe at ``lr``, evaluate val and test.

    For ``head`` the lr is the head's own. A diverged run returns ``error`` and no accuracies.
    """
    from common import ExampleError, build_method, param_summary, train
    from methods import METHOD_SPECS

    spec = METHOD_SPECS[method]
    recipe = recipe or wl.settings.recipe
    if spec.kind == "head":
        recipe = replace(recipe, head_lr=lr)
    torch.manual_seed(seed)
    model = build_method(wl.fresh_model(seed), spec, settings, targets=wl.targets, head=wl.head)
    out: dict[str, Any] = {"method": method, "label": spec.label, "kind": spec.kind, "lr": lr, "seed": seed,
                           "steps": recipe.steps, "params": param_summary(model, wl.head, spec.effective),
                           "threads": torch.get_num_threads(), "sizes": wl.sizes}
    try:
        stats = train(model, recipe, lr, head=wl.head, batches=wl.batches(seed), loss_fn=wl.loss,
                      lr_groups=spec.lr_groups, desc=f"{method} lr={lr:g} seed={seed}", progress=progress)
    except ExampleError as exc:  # this lr is too large: a result, not a crash
        out.update(error=str(exc), val_acc=None, val_loss=None, test_acc=None, test_loss=None, step_ms=math.nan,
                   train_s=math.nan, final_train_loss=None)
        return out
    val_acc, val_loss = wl.evaluate(model, "val")
    test_acc, test_loss = wl.evaluate(model, "test")
    out.update(val_acc=val_acc, val_loss=val_loss, test_acc=test_acc, test_loss=test_loss, step_ms=stats.step_ms,
               train_s=stats.train_s, final_train_loss=stats.final_loss)
    return out
