"""Compatibility module: the training code moved to :mod:`quicq.training`, the QuIC bridge to
:mod:`quicq.hardware.bridge` and the backend-spec parser to :mod:`quicq.hardware.spec`.

Existing imports (``from quicq.hardware.train import backend_from_spec, HardwareBlockSource``)
keep working; new code should import from the new homes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

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


class DigitsCNN(nn.Module):
    """A small CNN for scikit-learn's 8×8 digits.

    conv1 1→16, conv2 16→``channels`` (3×3, padding 1), 2×2 max-pool, fc1 (16·channels)→``width``,
    fc2 ``width``→``width``, head ``width``→5. With QuIC block size 16 and orders {1,2} every
    adapted layer (conv2: 32 channels = 2 blocks; fc1/fc2: 128 = 8 blocks each) gets 5-qubit
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.conv2(torch.relu(self.conv1(x)))))
        h = torch.relu(self.fc2(torch.relu(self.fc1(h.flatten(1)))))
        return self.head(h)


@dataclass
class DigitsData:
    """Images (n, 1, 8, 8) in [0, 1] and labels 0..4 (positions in the class tuple)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8×8 digits as ((1797, 1, 8, 8) in [0, 1], labels), offline.

    Read straight from the ``digits.csv.gz`` scikit-learn ships (importing ``sklearn.datasets``
    costs ~2 s); the same values as ``sklearn.datasets.load_digits``.
    """
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the digits task needs scikit-learn (it ships the data): pip install scikit-learn")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if path.is_file():
        with gzip.open(path, "rt") as fh:
            arr = np.loadtxt(fh, delimiter=",")
        images, target = arr[:, :-1].reshape(-1, 8, 8), arr[:, -1].astype(np.int64)
    else:  # pragma: no cover - a future scikit-learn may move the file
        from sklearn.datasets import load_digits

        data = load_digits()
        images, target = data.images, data.target
    return torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0, torch.tensor(target, dtype=torch.long)


def digits_data(classes: tuple[int, ...], seed: int = 0, test_fraction: float = 0.5) -> DigitsData:
    """Seeded, per-class stratified split of scikit-learn's bundled digits (no download)."""
    x_all, y_all = _load_digits()
    gen = torch.Generator().manual_seed(seed)
    tr, te = [], []
    for c in classes:
        idx = torch.nonzero(y_all == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        n_test = round(idx.numel() * test_fraction)
        te.append(idx[:n_test])
        tr.append(idx[n_test:])
    tr_i = torch.cat(tr)
    tr_i = tr_i[torch.randperm(tr_i.numel(), generator=gen)]
    te_i = torch.cat(te)
    remap = torch.full((10,), -1, dtype=torch.long)
    remap[torch.tensor(classes)] = torch.arange(len(classes))
    return DigitsData(x_all[tr_i], remap[y_all[tr_i]], x_all[te_i], remap[y_all[te_i]])


def pretrain_digits_cnn(seed: int = 0, epochs: int = 8, width: int = 128) -> DigitsCNN:
    """A :class:`DigitsCNN` trained (deterministically) on all of digits 0–4, with a fresh head for 5–9."""
    torch.manual_seed(seed)
    src = digits_data((0, 1, 2, 3, 4), seed=seed, test_fraction=0.1)
    x = torch.cat([src.x_train, src.x_test])
    y = torch.cat([src.y_train, src.y_test])
    model = DigitsCNN(width)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], 64):
            idx = perm[i:i + 64]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.manual_seed(seed + 1)
    model.head = nn.Linear(width, 5)
    model.eval()
    return model


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Classification accuracy of ``model`` on (x, y), in eval mode without gradients."""
    was = model.training
    model.eval()
    with torch.no_grad():
        acc = float((model(x).argmax(-1) == y).float().mean())
    model.train(was)
    return acc

