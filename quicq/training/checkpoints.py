"""Atomic training checkpoints in one directory, with a SHA-256 tying the two files together.

Every ``checkpoint_every`` steps and at the end of a run :class:`CheckpointStore` writes

* ``ckpt-<step>.safetensors`` — every tensor: trainable parameters (``param/<name>``),
  optimizer tensors (``optim/<param index>/<key>``), the torch RNG state (``rng/torch``);
* ``ckpt-<step>.json`` — everything else: step counter, optimizer hyper-parameters and scalar
  state, numpy / python / named ``numpy.random.Generator`` RNG states, loss history, the run's
  fingerprint, and the SHA-256 of the safetensors file.

Both files are written atomically (:mod:`quicq.training.atomic`), the JSON last, naming the
tensor file's hash: a checkpoint exists only once both files are complete and consistent. A
``kill -9`` at any instant leaves the previous checkpoint intact, and
:meth:`CheckpointStore.latest` skips anything torn. Nothing is pickled; tensors are read with
``safetensors`` (never ``torch.load``). No secret is ever written: checkpoints hold tensors,
counters and RNG states only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from quicq.training.atomic import atomic_write_bytes
from quicq.training.errors import CheckpointError

logger = logging.getLogger(__name__)

__all__ = ["FORMAT", "FORMAT_VERSION", "Checkpoint", "CheckpointStore", "join_optimizer", "split_optimizer"]

CKPT_RE = re.compile(r"^ckpt-(\d{8})\.json$")
FORMAT = "quicq-train-checkpoint"
FORMAT_VERSION = 1


def split_optimizer(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer ``state_dict`` → (tensors for safetensors, JSON-ready rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in state["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim/{idx}/{key}"] = val.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = val
    groups = json.loads(json.dumps(state["param_groups"]))  # tuples → lists; fails loudly if not JSON-able
    return tensors, {"scalars": scalars, "param_groups": groups}


def join_optimizer(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if name.startswith("optim/"):
            _, idx, key = name.split("/", 2)
            state.setdefault(int(idx), {})[key] = t
    for idx, d in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(d)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        for k, v in g.items():  # Adam's betas etc. were tuples
            if isinstance(v, list) and k != "params":
                g[k] = tuple(v)
        groups.append(g)
    return {"state": state, "param_groups": groups}


@dataclass
class Checkpoint:
    """A loaded checkpoint: the step counter, tensors and the JSON metadata."""

    step: int
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    path: Path


class CheckpointStore:
    """Atomic checkpoints in one directory (format in the module docstring).

    Args:
        directory: where ``ckpt-<step>.{safetensors,json}`` live (created if needed).
        keep: how many of the newest checkpoints to keep (older ones are deleted after a new
            one is complete; ≥ 1).
    """

    def __init__(self, directory: str | Path, keep: int = 2) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be an int ≥ 1, got {keep!r}")
        self.directory = Path(directory)
        self.keep = keep

    def _paths(self, step: int) -> tuple[Path, Path]:
        stem = self.directory / f"ckpt-{step:08d}"
        return stem.with_suffix(".safetensors"), stem.with_suffix(".json")

    def steps(self) -> list[int]:
        """Steps that have a JSON file (complete or not), ascending."""
        if not self.directory.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := CKPT_RE.match(p.name)))

    def save(self, step: int, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
        """Write checkpoint ``step`` (tensors first, then the JSON naming their hash); prune old ones."""
        from safetensors.torch import save as st_save

        self.directory.mkdir(parents=True, exist_ok=True)
        blob = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
        tpath, jpath = self._paths(step)
        atomic_write_bytes(tpath, blob)
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "step": step,
               "tensors_file": tpath.name, "tensors_sha256": hashlib.sha256(blob).hexdigest(), **meta}
        atomic_write_bytes(jpath, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())
        self._prune()
        return jpath

    def _prune(self) -> None:
        steps = self.steps()
        for s in steps[: max(0, len(steps) - self.keep)]:
            for p in self._paths(s):
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass
        for p in self.directory.glob(".ckpt-*.tmp"):  # temp files of a writer killed mid-write
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    def load(self, step: int) -> Checkpoint:
        """Load checkpoint ``step``; :class:`CheckpointError` if it is torn, corrupt or foreign."""
        from safetensors.torch import load as st_load

        tpath, jpath = self._paths(step)
        try:
            meta = json.loads(jpath.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{jpath}: unreadable checkpoint metadata ({exc})") from None
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{jpath}: not a quicq training checkpoint (format {meta.get('format')!r}, "
                                  f"version {meta.get('format_version')!r})")
        try:
            blob = tpath.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"{tpath}: missing tensor file ({exc})") from None
        if hashlib.sha256(blob).hexdigest() != meta.get("tensors_sha256"):
            raise CheckpointError(f"{tpath}: SHA-256 does not match {jpath.name} (torn or modified checkpoint)")
        try:
            tensors = st_load(blob)
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise CheckpointError(f"{tpath}: corrupt safetensors file ({exc})") from None
        return Checkpoint(int(meta["step"]), dict(tensors), meta, jpath)

    def latest(self) -> Checkpoint | None:
        """The newest complete checkpoint (torn or corrupt ones are skipped with a warning), or None."""
        for s in reversed(self.steps()):
            try:
                return self.load(s)
            except CheckpointError as exc:
                logger.warning("skipping checkpoint: %s", exc)
        return None

