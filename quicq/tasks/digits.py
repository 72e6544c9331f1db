"""The digits transfer task: a small CNN pretrained on digits 0–4, adapted to digits 5–9.

scikit-learn ships the 1,797 8×8 digit images, so the task is offline and takes seconds. The
demo, ``quicq train``, the examples and the benchmarks all use this one network and this one
split, so their numbers start from the same pretrained weights.

* :func:`digits_split` — a seeded, per-class stratified train / validation / test split. The
  test part depends only on ``seed`` and ``test_fraction``; the validation part is carved from
  what would otherwise be training data, so choosing anything on it never touches the test set.
* :class:`DigitsCNN` — conv1 1→16, conv2 16→``channels``, 2×2 max-pool, ``fc1``, ``fc2`` and a
  5-way ``head`` (the usual adapter targets are ``conv2``, ``fc1``, ``fc2``).
* :func:`pretrain_digits_cnn` — deterministic pretraining on all 0–4 images, then a fresh head.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from quicq._optional import MissingDependencyError, require
from quicq.tasks.errors import DataUnavailable, TaskError

__all__ = ["DIGITS_SOURCE", "DIGITS_TARGET", "DigitsCNN", "DigitsSplit", "digits_split", "load_digits_tensors",
           "pretrain_digits_cnn"]

DIGITS_SOURCE: tuple[int, ...] = (0, 1, 2, 3, 4)
DIGITS_TARGET: tuple[int, ...] = (5, 6, 7, 8, 9)


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits as (images (1797, 1, 8, 8) in [0, 1], labels 0–9), offline.

    Read straight from the ``digits.csv.gz`` scikit-learn ships (importing ``sklearn.datasets``
    costs ~2 s); the values equal ``sklearn.datasets.load_digits``.
    """
    try:
        spec = importlib.util.find_spec("sklearn")
    except ImportError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("sklearn", "examples", needed_by=__name__,
                                     reason="the digits task reads the data scikit-learn ships")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if path.is_file():
        with gzip.open(path, "rt") as fh:
            arr = np.loadtxt(fh, delimiter=",")
        images, target = arr[:, :-1].reshape(-1, 8, 8), arr[:, -1].astype(np.int64)
    else:  # pragma: no cover - a future scikit-learn may move the file
        load_digits = require("sklearn.datasets", "examples").load_digits

        data = load_digits()
        images, target = data.images, data.target
    return torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0, torch.tensor(target, dtype=torch.long)


@dataclass
class DigitsSplit:
    """Images (n, 1, 8, 8) in [0, 1]; labels are positions in the class tuple (5–9 → 0–4)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def subset_train(self, n: int) -> DigitsSplit:
        """The same split with only the first ``n`` training images (validation and test unchanged)."""
        return DigitsSplit(self.x_train[:n], self.y_train[:n], self.x_val, self.y_val, self.x_test, self.y_test)


def _check_fraction(name: str, value: float, *, allow_zero: bool) -> None:
    lo_ok = value >= 0.0 if allow_zero else value > 0.0
    if not (lo_ok and value < 1.0):
        raise TaskError(f"{name} must be in {'[0, 1)' if allow_zero else '(0, 1)'}, got {value}")


def digits_split(classes: tuple[int, ...] = DIGITS_TARGET, seed: int = 0, test_fraction: float = 0.5,
                 val_fraction: float = 0.2) -> DigitsSplit:
    """Seeded, per-class stratified train / validation / test split of the digits in ``classes``.

    Per class: ``round(n·test_fraction)`` images go to test; of the rest, ``round(m·val_fraction)``
    go to validation and the remainder to training. The test images do not depend on
    ``val_fraction``. ``val_fraction = 0`` gives an empty validation set.
    """
    _check_fraction("test_fraction", test_fraction, allow_zero=False)
    _check_fraction("val_fraction", val_fraction, allow_zero=True)
    bad = [c for c in classes if not (isinstance(c, int) and 0 <= c <= 9)]
    if bad or not classes or len(set(classes)) != len(classes):
        raise TaskError(f"classes must be distinct digits 0–9, got {classes!r}")
    x_all, y_all = load_digits_tensors()
    gen = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
    for c in classes:
        idx = torch.nonzero(y_all == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        n_test = round(idx.numel() * test_fraction)
        rest = idx[n_test:]
        n_val = round(rest.numel() * val_fraction)
        parts["test"].append(idx[:n_test])
        parts["val"].append(rest[:n_val])
        parts["train"].append(rest[n_val:])
    tr = torch.cat(parts["train"])
    tr = tr[torch.randperm(tr.numel(), generator=gen)]
    va, te = torch.cat(parts["val"]), torch.cat(parts["test"])
    remap = torch.full((10,), -1, dtype=torch.long)
    remap[torch.tensor(classes)] = torch.arange(len(classes))
    return DigitsSplit(x_all[tr], remap[y_all[tr]], x_all[va], remap[y_all[va]], x_all[te], remap[y_all[te]])


class DigitsCNN(nn.Module):
    """A small CNN for 8×8 digits.

    conv1 1→16, conv2 16→``channels`` (3×3, padding 1), 2×2 max-pool, fc1 (16·channels)→``width``,
    fc2 ``width``→``width``, head ``width``→``n_classes``. With QuIC block size 16 and orders {1,2}
    every adapted layer (conv2: 32 channels = 2 blocks; fc1/fc2: 128 = 8 blocks each) gets 5-qubit
    block circuits, which fit a 5-qubit device such as FakeManilaV2.
    """

    def __init__(self, width: int = 128, n_classes: int = 5, channels: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, channels, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(channels * 4 * 4, width)
        self.fc2 = nn.Linear(width, width)
        self.head = nn.Linear(width, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``width``-dimensional representation the head reads."""
        h = self.pool(torch.relu(self.conv2(torch.relu(self.conv1(x)))))
        return torch.relu(self.fc2(torch.relu(self.fc1(h.flatten(1)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def pretrain_digits_cnn(seed: int = 0, epochs: int = 8, width: int = 128) -> DigitsCNN:
    """A :class:`DigitsCNN` trained deterministically on every image of digits 0–4 (Adam, lr 2e-3,
    batch 64), returned in eval mode with a fresh 5-way head (seeded by ``seed + 1``) for 5–9.

    Pretraining uses only source-class images, so nothing of the 5–9 target task is seen.
    """
    if epochs < 0 or width < 1:
        raise TaskError(f"epochs must be ≥ 0 and width ≥ 1, got epochs={epochs}, width={width}")
    x_all, y_all = load_digits_tensors()
    keep = torch.isin(y_all, torch.tensor(DIGITS_SOURCE))
    x, y = x_all[keep], y_all[keep]
    torch.manual_seed(seed)
    model = DigitsCNN(width)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], 64):
            idx = perm[i:i + 64]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.manual_seed(seed + 1)
    model.head = nn.Linear(width, len(DIGITS_TARGET))
    model.eval()
    return model
