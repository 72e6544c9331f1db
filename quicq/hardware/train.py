"""Hybrid training loop with crash-safe checkpoints, and the config-driven run behind ``quicq train``.

**The loop** (:class:`HybridTrainer`). A step is: batch ``batch_fn(step)`` (a pure function of
the step number, so a resumed run sees exactly the batches it would have seen), loss, backward,
optimizer step. The model's quicq adapters take their blocks from wherever their block source
says: the exact engine, or a backend through :mod:`quicq.hardware.hybrid` (forward = block
estimate, backward = parameter shift / SPSA / surrogate). Backend jobs are retried with backoff by
the backend layer (:class:`~quicq.hardware.backends.Backend`); if a step still fails, the loop
writes a checkpoint of the state *at the start of that step* and raises :class:`TrainingError`
— a step is never silently dropped, and rerunning resumes at the failed step.

**Checkpoints** (:class:`CheckpointStore`), every ``checkpoint_every`` steps and at the end:

* ``ckpt-<step>.safetensors`` — every tensor: trainable parameters (``param/<name>``),
  optimizer tensors (``optim/<param index>/<key>``), the torch RNG state (``rng/torch``);
* ``ckpt-<step>.json`` — everything else: step counter, optimizer hyper-parameters and scalar
  state, numpy / python / named ``numpy.random.Generator`` RNG states, loss history, the run's
  fingerprint, and the SHA-256 of the safetensors file.

Each file is written to a temporary file in the same directory, fsynced, then ``os.replace``d
into place, and the directory is fsynced; the JSON is written last and names the tensor file's
hash, so a checkpoint exists only once both files are complete and consistent. A ``kill -9`` at
any instant leaves the previous checkpoint intact, and :meth:`CheckpointStore.latest` skips
anything torn. Nothing is pickled; tensors are read with ``safetensors`` (never ``torch.load``).
No secret is ever written: checkpoints hold tensors, counters and RNG states only.

**Config runs** (:func:`run_config`): ``quicq train config.toml`` builds the built-in digits
task (a small CNN pretrained on scikit-learn digits 0–4, adapted to 5–9), injects a QuIC
adapter, connects the backend and runs the loop; see :data:`CONFIG_SCHEMA` for every key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from quicq._optional import require
from quicq.hardware.errors import HardwareError, redact

logger = logging.getLogger(__name__)

__all__ = [
    "CONFIG_SCHEMA", "CheckpointError", "CheckpointStore", "ConfigError", "HardwareBlockSource", "HybridTrainer",
    "TrainResult",
    "TrainingError", "backend_from_spec", "load_config", "run_config", "validate_config",
]

CKPT_RE = re.compile(r"^ckpt-(\d{8})\.json$")
FORMAT = "quicq-train-checkpoint"
FORMAT_VERSION = 1


class TrainingError(RuntimeError):
    """A training step failed for good (after the backend's retries); the state was saved first."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written, or does not fit the model/optimizer/run it is loaded into."""


class ConfigError(ValueError):
    """A training config is malformed; the message names the offending key."""


# ---------------------------------------------------------------------------------------------
# Atomic files
# ---------------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same directory, fsync, rename, fsync dir."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


# ---------------------------------------------------------------------------------------------
# RNG states
# ---------------------------------------------------------------------------------------------


def _rng_json(generators: Mapping[str, np.random.Generator]) -> dict[str, Any]:
    """JSON-ready numpy-global, python and named-Generator states (the torch state goes to tensors)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    return {
        "numpy": {"name": name, "keys": [int(k) for k in keys], "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": {"version": py[0], "state": list(py[1]), "gauss_next": py[2]},
        "generators": {k: g.bit_generator.state for k, g in generators.items()},
    }


def _restore_rng(state: Mapping[str, Any], torch_state: torch.Tensor,
                 generators: Mapping[str, np.random.Generator]) -> None:
    torch.set_rng_state(torch_state)
    npst = state["numpy"]
    np.random.set_state((npst["name"], np.asarray(npst["keys"], dtype=np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    saved = state.get("generators", {})
    missing = sorted(set(generators) - set(saved))
    if missing:
        raise CheckpointError(f"checkpoint has no state for random generator(s) {missing}; it was written by another run")
    for k, g in generators.items():
        g.bit_generator.state = saved[k]


@dataclass
class _Snapshot:
    """Every RNG state at one instant (to checkpoint the start of a failed step)."""

    torch_state: torch.Tensor
    json_state: dict[str, Any]

    @classmethod
    def take(cls, generators: Mapping[str, np.random.Generator]) -> _Snapshot:
        return cls(torch.get_rng_state().clone(), copy.deepcopy(_rng_json(generators)))


def find_generators(*objects: Any, prefix: str = "") -> dict[str, np.random.Generator]:
    """Named ``numpy.random.Generator`` objects held by ``objects`` (attribute ``rng`` or ``_rng``).

    Seeded backends draw their shots (or simulator seeds) from such a generator; a bit-exact
    resume must restore it too.
    """
    out: dict[str, np.random.Generator] = {}
    for i, obj in enumerate(objects):
        if obj is None:
            continue
        for attr in ("rng", "_rng"):
            g = getattr(obj, attr, None)
            if isinstance(g, np.random.Generator):
                out[f"{prefix}{i}.{attr}"] = g
    return out


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def _split_optimizer(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
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


def _join_optimizer(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What a (possibly resumed) run did."""

    steps: int
    resumed_from: int | None
    losses: list[float]
    checkpoints: list[int] = field(default_factory=list)
    seconds: float = 0.0


StepCallback = Callable[[int, float], None]


class HybridTrainer:
    """Train the trainable parameters of ``model`` with checkpoints and exact resume.

    Args:
        model: any module; its parameters with ``requires_grad`` are trained and checkpointed.
        optimizer: a torch optimizer over (a subset of) those parameters.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``.
        batch_fn: ``batch_fn(step) -> batch``; must depend on the step number only, so a resumed
            run sees the same batches.
        checkpoint_dir: directory of the checkpoints (``None``: no checkpoints, no resume).
        checkpoint_every: write a checkpoint after every this many steps (and after the last).
        keep: checkpoints kept on disk.
        generators: extra ``numpy.random.Generator`` objects to checkpoint by name (seeded
            backends' shot samplers, SPSA perturbations — see :func:`find_generators`).
        fingerprint: JSON-able description of the run; a checkpoint written under a different
            fingerprint is refused instead of silently mixing two runs.
        on_step_end: callbacks ``f(step, loss)`` after every completed step (1-based step).
        on_checkpoint: callbacks ``f(step, path)`` after every checkpoint.
        progress: show a tqdm bar.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 loss_fn: Callable[[nn.Module, Any], torch.Tensor], batch_fn: Callable[[int], Any], *,
                 checkpoint_dir: str | Path | None = None, checkpoint_every: int = 10, keep: int = 2,
                 generators: Mapping[str, np.random.Generator] | None = None,
                 fingerprint: Any = None, on_step_end: Iterable[StepCallback] = (),
                 on_checkpoint: Iterable[Callable[[int, Path], None]] = (), progress: bool = False) -> None:
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be an int ≥ 1, got {checkpoint_every!r}")
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.batch_fn = batch_fn
        self.store = CheckpointStore(checkpoint_dir, keep) if checkpoint_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.generators = dict(generators or {})
        self.fingerprint = json.loads(json.dumps(fingerprint)) if fingerprint is not None else None
        self.on_step_end = list(on_step_end)
        self.on_checkpoint = list(on_checkpoint)
        self.progress = progress
        self.step = 0
        self.losses: list[float] = []
        self._params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if not self._params:
            raise ValueError("the model has no trainable parameter")

    # -- state ---------------------------------------------------------------------------------
    def _state(self, snap: _Snapshot) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {f"param/{n}": p.detach() for n, p in self._params.items()}
        opt_t, opt_meta = _split_optimizer(self.optimizer.state_dict())
        tensors.update(opt_t)
        tensors["rng/torch"] = snap.torch_state
        meta = {"optimizer": opt_meta, "rng": snap.json_state, "losses": list(self.losses),
                "fingerprint": self.fingerprint, "params": {n: list(p.shape) for n, p in self._params.items()},
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        return tensors, meta

    def save_checkpoint(self, snap: _Snapshot | None = None) -> Path | None:
        """Checkpoint the current state (``snap``: RNG states to record instead of the current ones)."""
        if self.store is None:
            return None
        tensors, meta = self._state(snap or _Snapshot.take(self.generators))
        path = self.store.save(self.step, tensors, meta)
        for cb in self.on_checkpoint:
            cb(self.step, path)
        return path

    def load_checkpoint(self, ckpt: Checkpoint) -> None:
        """Restore parameters, optimizer, RNG states, step counter and history from ``ckpt``."""
        meta = ckpt.meta
        if self.fingerprint is not None and meta.get("fingerprint") != self.fingerprint:
            raise CheckpointError(
                f"{ckpt.path} was written by a run with a different configuration; use another checkpoint "
                "directory (or delete this one) to start afresh"
            )
        names = {k[len("param/"):] for k in ckpt.tensors if k.startswith("param/")}
        if names != set(self._params):
            raise CheckpointError(
                f"{ckpt.path}: trainable parameters differ from the model's (missing {sorted(set(self._params) - names)},"
                f" unexpected {sorted(names - set(self._params))})"
            )
        for n, p in self._params.items():
            t = ckpt.tensors[f"param/{n}"]
            if t.shape != p.shape or t.dtype != p.dtype:
                raise CheckpointError(f"{ckpt.path}: parameter {n!r} is {tuple(t.shape)} {t.dtype}, the model's "
                                      f"is {tuple(p.shape)} {p.dtype}")
        with torch.no_grad():
            for n, p in self._params.items():
                p.copy_(ckpt.tensors[f"param/{n}"])
        try:
            self.optimizer.load_state_dict(_join_optimizer(ckpt.tensors, meta["optimizer"]))
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"{ckpt.path}: optimizer state does not fit this optimizer ({exc})") from None
        _restore_rng(meta["rng"], ckpt.tensors["rng/torch"], self.generators)
        self.step = ckpt.step
        self.losses = [float(x) for x in meta.get("losses", [])]

    def resume(self) -> int | None:
        """Load the newest complete checkpoint if there is one; returns its step (or None)."""
        if self.store is None:
            return None
        ckpt = self.store.latest()
        if ckpt is None:
            return None
        self.load_checkpoint(ckpt)
        return ckpt.step

    # -- running -------------------------------------------------------------------------------
    def run(self, steps: int, *, resume: bool = True) -> TrainResult:
        """Run until ``steps`` steps are done in total (resuming from the newest checkpoint)."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be an int ≥ 0, got {steps!r}")
        t0 = time.perf_counter()
        resumed = self.resume() if resume else None
        written: list[int] = []
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=min(self.step, steps), desc="training", disable=not self.progress,
                   dynamic_ncols=True, leave=False)
        self.model.train()
        try:
            while self.step < steps:
                snap = _Snapshot.take(self.generators)
                loss = self._one_step(snap)
                self.step += 1
                self.losses.append(loss)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                due = self.step % self.checkpoint_every == 0 or self.step == steps
                if due and self.save_checkpoint() is not None:
                    written.append(self.step)
                for cb in self.on_step_end:
                    cb(self.step, loss)
        finally:
            bar.close()
        return TrainResult(self.step, resumed, list(self.losses), written, time.perf_counter() - t0)

    def _one_step(self, snap: _Snapshot) -> float:
        step = self.step + 1
        try:
            batch = self.batch_fn(self.step)
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.model, batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"the loss is {value}")
            loss.backward()
        except Exception as exc:  # noqa: BLE001 - every failure is saved, then re-raised as TrainingError
            # Parameters are untouched (the optimizer has not stepped): checkpoint the state at
            # the start of this step, with the RNG states of that instant, then fail loudly.
            path = self.save_checkpoint(snap)
            where = f"; state saved to {path}, rerun to resume at step {step}" if path else ""
            kind = "backend" if isinstance(exc, HardwareError) else "computation"
            raise TrainingError(f"step {step} failed ({kind}): {redact(exc)}{where}") from exc
        self.optimizer.step()
        return value


# ---------------------------------------------------------------------------------------------
# Backends from spec strings
# ---------------------------------------------------------------------------------------------

BACKEND_SPECS = ("exact", "aer", "aer-noisy:<fake device>", "fake:<fake device>", "ibm:<device>",
                 "pennylane:<device>")


def _aer_threads(threads: int | None) -> dict[str, Any]:
    return {} if threads is None else {"max_parallel_threads": int(threads)}


def backend_from_spec(spec: str, *, shots: int | None = 1024, seed: int | None = None,
                      retries: int = 3, retry_delay: float = 1.0, timeout: float | None = None,
                      sim_threads: int | None = 1) -> Any:
    """Build a quicq backend from a spec string.

    ``exact`` (engine; ``shots=None`` exact probabilities), ``aer`` (ideal Aer),
    ``aer-noisy:<fake>`` (Aer with a fake IBM device's noise model, e.g. ``aer-noisy:fake_manila``),
    ``fake:<fake>`` (IBM Runtime local mode on a fake device), ``ibm:<device>`` (IBM Quantum; needs
    ``QISKIT_IBM_TOKEN`` or a saved account), ``pennylane:<device>`` (e.g. ``pennylane:lightning.qubit``).
    ``sim_threads`` caps Aer's threads (see :class:`~quicq.hardware.aer.AerBackend`; ``None``: Aer's default).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"backend must be one of {', '.join(BACKEND_SPECS)}; got {spec!r}")
    kind, _, arg = spec.strip().partition(":")
    common = {"retries": retries, "retry_delay": retry_delay, "timeout": timeout}
    if kind == "exact" and not arg:
        from quicq.hardware.backends import ExactBackend

        return ExactBackend(shots, seed=seed, **common)
    if kind == "aer" and not arg:
        from quicq.hardware.aer import AerBackend

        return AerBackend(shots, seed=seed, simulator_options=_aer_threads(sim_threads), **common)
    if kind == "aer-noisy" and arg:
        from quicq.hardware.aer import AerBackend

        return AerBackend(shots, seed=seed, noise=arg, simulator_options=_aer_threads(sim_threads), **common)
    if kind in ("fake", "ibm") and arg:
        from quicq.hardware.ibm import IBMRuntimeBackend, is_fake_name

        if kind == "fake" and not is_fake_name(arg):
            raise ValueError(f"fake:<name> needs a fake device name such as fake_manila, got {arg!r}")
        if shots is None:
            raise ValueError(f"{spec}: a device samples shots; give shots > 0")
        return IBMRuntimeBackend(arg, shots=shots, seed=seed, **common)
    if kind == "pennylane" and arg:
        from quicq.hardware.pennylane import PennyLaneBackend

        return PennyLaneBackend(arg, shots, seed=seed, **common)
    raise ValueError(f"unknown backend {spec!r}; use one of {', '.join(BACKEND_SPECS)}")


# ---------------------------------------------------------------------------------------------
# The built-in task: digits 0–4 → 5–9
# ---------------------------------------------------------------------------------------------


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
        require("sklearn", "examples")  # not importable: raises the pip line of the extra
        raise ConfigError("the digits task needs scikit-learn's bundled data files (sklearn/datasets/data)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if path.is_file():
        with gzip.open(path, "rt") as fh:
            arr = np.loadtxt(fh, delimiter=",")
        images, target = arr[:, :-1].reshape(-1, 8, 8), arr[:, -1].astype(np.int64)
    else:  # pragma: no cover - a future scikit-learn may move the file
        require("sklearn", "examples")
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


# ---------------------------------------------------------------------------------------------
# Config files
# ---------------------------------------------------------------------------------------------

#: Every config key: section → key → (type(s), default, help). ``REQUIRED`` marks required keys.
REQUIRED = object()
CONFIG_SCHEMA: dict[str, dict[str, tuple[Any, Any, str]]] = {
    "task": {
        "name": (str, "digits", "built-in task; only 'digits' (CNN pretrained on 0–4, adapted to 5–9)"),
        "seed": (int, 0, "seed of data split, pretraining, head init and batches"),
        "train_size": (int, 0, "use at most this many training images (0: all ≈ 450)"),
        "batch_size": (int, 32, "images per step"),
        "width": (int, 128, "hidden width of fc1/fc2"),
        "pretrain_epochs": (int, 8, "epochs of pretraining on digits 0–4"),
        "threads": (int, 1, "torch intra-op threads (1 is fastest for this small CNN)"),
    },
    "adapter": {
        "target_modules": (list, ["conv2", "fc1", "fc2"], "modules to adapt"),
        "block_size": (int, 16, "QuIC block size b (16 with orders [1,2] → 5-qubit circuits)"),
        "orders": (list, [1, 2], "Hamming weights k"),
        "parameterization": (str, "pyramid", "pyramid | x | butterfly | brick"),
        "n_layers": (int, 2, "brick layers"),
        "block_share": (bool, False, "one circuit per layer shared by all blocks"),
    },
    "backend": {
        "name": (str, "exact", "exact | aer | aer-noisy:<fake> | fake:<fake> | ibm:<device> | pennylane:<device>"),
        "shots": ((int, type(None)), 1024, "shots per circuit (null: exact probabilities, simulators only)"),
        "seed": ((int, type(None)), 1, "seed of the sampler (reproducible runs)"),
        "retries": (int, 3, "attempts per job before a step fails"),
        "retry_delay": ((int, float), 1.0, "seconds before the first retry (doubles each time)"),
        "timeout": ((int, float, type(None)), None, "seconds per job before it counts as failed"),
        "magnitudes": (bool, True, "also measure Z-basis magnitudes (2n circuits per estimate)"),
        "postselect": (bool, True, "drop Z-basis outcomes of the wrong Hamming weight"),
    },
    "train": {
        "steps": (int, REQUIRED, "total optimizer steps"),
        "gradient": (str, "parameter_shift", "exact | parameter_shift | spsa | surrogate"),
        "lr": ((int, float), 0.01, "learning rate of the adapter angles (Adam)"),
        "head_lr": ((int, float), 0.01, "learning rate of the task head (Adam)"),
        "spsa_eps": ((int, float), 0.1, "SPSA perturbation size (radians)"),
        "checkpoint_every": (int, 5, "checkpoint every this many steps"),
        "keep": (int, 2, "checkpoints kept"),
        "out": (str, "out/train", "output directory (checkpoints, adapter, summary.json)"),
    },
}
GRADIENT_CHOICES = ("exact", "parameter_shift", "spsa", "surrogate")


def _type_name(t: Any) -> str:
    ts = t if isinstance(t, tuple) else (t,)
    return " or ".join("null" if x is type(None) else {"int": "integer", "str": "string", "bool": "true/false",
                                                        "float": "number", "list": "list"}.get(x.__name__, x.__name__)
                       for x in ts)


def validate_config(raw: Any, *, source: str = "config") -> dict[str, dict[str, Any]]:
    """Check a config dict against :data:`CONFIG_SCHEMA`; return it with defaults filled in.

    Raises :class:`ConfigError` naming the bad key (``train.steps``), what was expected and
    what was found.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a table/object with sections {sorted(CONFIG_SCHEMA)}")
    unknown = sorted(set(raw) - set(CONFIG_SCHEMA))
    if unknown:
        raise ConfigError(f"{source}: unknown section {unknown[0]!r}; sections are {sorted(CONFIG_SCHEMA)}")
    out: dict[str, dict[str, Any]] = {}
    for sec, keys in CONFIG_SCHEMA.items():
        given = raw.get(sec, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{source}: [{sec}] must be a table/object, got {type(given).__name__}")
        bad = sorted(set(given) - set(keys))
        if bad:
            raise ConfigError(f"{source}: unknown key '{sec}.{bad[0]}'; keys of [{sec}] are {sorted(keys)}")
        out[sec] = {}
        for key, (typ, default, _help) in keys.items():
            if key not in given:
                if default is REQUIRED:
                    raise ConfigError(f"{source}: missing required key '{sec}.{key}'")
                out[sec][key] = copy.deepcopy(default)
                continue
            val = given[key]
            types = typ if isinstance(typ, tuple) else (typ,)
            ok = isinstance(val, types) and not (isinstance(val, bool) and bool not in types)
            if not ok:
                raise ConfigError(f"{source}: '{sec}.{key}' must be {_type_name(typ)}, got {val!r}")
            out[sec][key] = val
    _check_values(out, source)
    return out


def _check_values(cfg: dict[str, dict[str, Any]], source: str) -> None:
    def fail(key: str, msg: str) -> None:
        raise ConfigError(f"{source}: '{key}' {msg}")

    t, a, b, tr = cfg["task"], cfg["adapter"], cfg["backend"], cfg["train"]
    if t["name"] != "digits":
        fail("task.name", f"must be 'digits' (the built-in task), got {t['name']!r}")
    for key in ("batch_size", "width", "pretrain_epochs", "threads"):
        if t[key] < 1:
            fail(f"task.{key}", f"must be ≥ 1, got {t[key]}")
    if t["train_size"] < 0:
        fail("task.train_size", f"must be ≥ 0, got {t['train_size']}")
    if not a["target_modules"] or not all(isinstance(m, str) for m in a["target_modules"]):
        fail("adapter.target_modules", f"must be a non-empty list of module names, got {a['target_modules']!r}")
    if not a["orders"] or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in a["orders"]):
        fail("adapter.orders", f"must be a non-empty list of integers ≥ 1, got {a['orders']!r}")
    if b["shots"] is not None and b["shots"] <= 0:
        fail("backend.shots", f"must be a positive integer (or null for exact probabilities), got {b['shots']}")
    if b["retries"] < 1:
        fail("backend.retries", f"must be ≥ 1, got {b['retries']}")
    if tr["steps"] < 0:
        fail("train.steps", f"must be ≥ 0, got {tr['steps']}")
    if tr["gradient"] not in GRADIENT_CHOICES:
        fail("train.gradient", f"must be one of {list(GRADIENT_CHOICES)}, got {tr['gradient']!r}")
    for key in ("checkpoint_every", "keep"):
        if tr[key] < 1:
            fail(f"train.{key}", f"must be ≥ 1, got {tr[key]}")
    for key in ("lr", "head_lr", "spsa_eps"):
        if not tr[key] > 0:
            fail(f"train.{key}", f"must be > 0, got {tr[key]}")
    try:
        backend_kind_ok(b["name"])
    except ValueError as exc:
        fail("backend.name", str(exc))


def backend_kind_ok(spec: str) -> None:
    """Validate a backend spec's syntax without building anything (no imports, no network)."""
    kind, _, arg = spec.partition(":")
    if (kind in ("exact", "aer") and not arg) or (kind in ("aer-noisy", "fake", "ibm", "pennylane") and arg):
        return
    raise ValueError(f"must be one of {', '.join(BACKEND_SPECS)}, got {spec!r}")


def load_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and validate a JSON (``.json``) or TOML (``.toml``) training config."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ImportError:
                raise ConfigError("TOML configs need Python ≥ 3.11 or 'pip install tomli'; or use JSON") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    elif path.suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    else:
        raise ConfigError(f"{path}: config files must end in .json or .toml")
    return validate_config(raw, source=str(path))


# ---------------------------------------------------------------------------------------------
# Config runs
# ---------------------------------------------------------------------------------------------


class HardwareBlockSource:
    """A QuIC :data:`~quicq.adapters.layer.BlockSource` whose blocks come from a backend.

    One :class:`~quicq.hardware.hybrid.HardwareBlock` per distinct block circuit (layers with the
    same circuit share it): forward = one block estimate per layer call, backward = ``gradient``
    (parameter shift / SPSA / exact surrogate), every shifted binding of a backward pass in one
    backend call. :meth:`prepare` builds the bridges for a model up front, so their random
    generators exist before a checkpoint is restored (see :meth:`generators`).

    Args:
        backend: a quicq backend.
        gradient: ``"parameter_shift"``, ``"spsa"`` or ``"surrogate"``.
        magnitudes, postselect: tomography options (:class:`~quicq.hardware.tomography.BlockTomography`).
        spsa_eps: SPSA perturbation size.
        seed: seeds the SPSA directions (bridge i gets ``seed + i``).
        shots: shots per circuit (default: the backend's).
    """

    def __init__(self, backend: Any, gradient: str = "parameter_shift", *, magnitudes: bool = True,
                 postselect: bool = True, spsa_eps: float = 0.1, seed: int | None = None,
                 shots: Any = None) -> None:
        from quicq.hardware.backends import DEFAULT_SHOTS
        from quicq.hardware.hybrid import GRADIENTS

        if gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
        self.backend = backend
        self.gradient = gradient
        self.magnitudes = magnitudes
        self.postselect = postselect
        self.spsa_eps = spsa_eps
        self.seed = seed
        self.shots = DEFAULT_SHOTS if shots is None else shots
        self._blocks: dict[tuple[Any, tuple[int, ...]], Any] = {}
        self.calls = 0

    def bridge(self, circuit: Any, orders: Iterable[int]) -> Any:
        """The :class:`~quicq.hardware.hybrid.HardwareBlock` serving ``circuit`` at ``orders``."""
        key = (circuit, tuple(sorted(int(k) for k in orders)))
        hb = self._blocks.get(key)
        if hb is None:
            from quicq.hardware.hybrid import HardwareBlock
            from quicq.hardware.tomography import BlockTomography

            plan = BlockTomography(circuit, key[1], magnitudes=self.magnitudes, postselect=self.postselect)
            seed = None if self.seed is None else self.seed + len(self._blocks)
            hb = HardwareBlock(None, self.backend, tomography=plan, gradient=self.gradient, shots=self.shots,
                               spsa_eps=self.spsa_eps, seed=seed)
            self._blocks[key] = hb
        return hb

    def prepare(self, model: Any) -> HardwareBlockSource:
        """Build the bridges of every QuIC layer of ``model`` (a QuicqModel) now, in module order."""
        for layer in model.quicq_layers().values():
            for a in layer.adapter_names():
                self.bridge(layer.circuit(a), layer.quic_spec[a].orders)
        return self

    def generators(self) -> dict[str, np.random.Generator]:
        """Named random generators to checkpoint: the backend's sampler and each bridge's SPSA stream."""
        out = find_generators(self.backend, prefix="backend")
        for i, hb in enumerate(self._blocks.values()):
            g = hb.rng
            if isinstance(g, np.random.Generator):
                out[f"bridge{i}.rng"] = g
        return out

    @property
    def last_results(self) -> list[Any]:
        """The latest tomography result of each bridge (error bars, kept fractions)."""
        return [hb.last_result for hb in self._blocks.values()]

    def __call__(self, circuit: Any, angles: torch.Tensor, orders: Iterable[int]) -> list[torch.Tensor]:
        self.calls += 1
        return list(self.bridge(circuit, orders)(angles))


def build_adapter_skeleton(cfg: Mapping[str, Any]) -> Any:
    """The config's adapted model with an untrained base (sizes only): for planning, no pretraining."""
    from quicq.adapters import QuICConfig, get_quicq_model

    a = cfg["adapter"]
    try:
        return get_quicq_model(DigitsCNN(cfg["task"]["width"]), QuICConfig(
            target_modules=list(a["target_modules"]), block_size=a["block_size"], orders=tuple(a["orders"]),
            parameterization=a["parameterization"], n_layers=a["n_layers"], block_share=a["block_share"]))
    except ValueError as exc:
        raise ConfigError(f"[adapter]: {exc}") from None


@dataclass
class DigitsRun:
    """Everything :func:`build_digits_run` sets up: model, data, trainer, backend."""

    model: Any
    data: DigitsData
    trainer: HybridTrainer
    backend: Any
    source: Any


def _base_model(cfg: Mapping[str, Any], out: Path) -> DigitsCNN:
    """The pretrained base CNN, cached in ``out/base.safetensors`` (keyed by the task settings)."""
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    t = cfg["task"]
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


def build_digits_run(cfg: Mapping[str, Any], *, progress: bool = False,
                     on_step_end: Iterable[StepCallback] = (),
                     on_checkpoint: Iterable[Callable[[int, Path], None]] = ()) -> DigitsRun:
    """Set up a validated config's run (nothing is trained yet)."""
    from quicq.adapters import QuICConfig, get_quicq_model

    t, a, b, tr = cfg["task"], cfg["adapter"], cfg["backend"], cfg["train"]
    out = Path(tr["out"])
    torch.set_num_threads(t["threads"])
    # Seed every global generator: a fresh run is reproducible, a resumed one restores them.
    random.seed(t["seed"])
    np.random.seed(t["seed"])
    torch.manual_seed(t["seed"])
    data = digits_data((5, 6, 7, 8, 9), seed=t["seed"])
    if t["train_size"]:
        data = DigitsData(data.x_train[:t["train_size"]], data.y_train[:t["train_size"]], data.x_test, data.y_test)
    base = _base_model(cfg, out)
    try:
        qcfg = QuICConfig(target_modules=list(a["target_modules"]), block_size=a["block_size"],
                          orders=tuple(a["orders"]), parameterization=a["parameterization"],
                          n_layers=a["n_layers"], block_share=a["block_share"], modules_to_save=["head"])
        model = get_quicq_model(base, qcfg)
    except ValueError as exc:
        raise ConfigError(f"[adapter]: {exc}") from None
    backend = source = None
    if tr["gradient"] != "exact":
        backend = backend_from_spec(b["name"], shots=b["shots"], seed=b["seed"], retries=b["retries"],
                                    retry_delay=float(b["retry_delay"]), timeout=b["timeout"])
        source = HardwareBlockSource(backend, tr["gradient"], magnitudes=b["magnitudes"], postselect=b["postselect"],
                                     spsa_eps=float(tr["spsa_eps"]), seed=b["seed"]).prepare(model)
        model.set_block_source(source)
    head = [p for n, p in model.named_parameters() if p.requires_grad and ".head." in f".{n}."]
    body = [p for n, p in model.named_parameters() if p.requires_grad and ".head." not in f".{n}."]
    opt = torch.optim.Adam([{"params": body, "lr": float(tr["lr"])}, {"params": head, "lr": float(tr["head_lr"])}])
    x, y = data.x_train, data.y_train
    batch_fn = epoch_batches(x.shape[0], t["batch_size"], t["seed"])

    def loss_fn(m: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(m(x[idx]), y[idx])

    generators = source.generators() if source is not None else {}
    fingerprint = {k: v for k, v in cfg.items() if k != "train"} | {
        "train": {k: v for k, v in tr.items() if k not in ("steps", "checkpoint_every", "keep", "out")}}
    trainer = HybridTrainer(model, opt, loss_fn, batch_fn, checkpoint_dir=out / "checkpoints",
                            checkpoint_every=tr["checkpoint_every"], keep=tr["keep"], generators=generators,
                            fingerprint=fingerprint, on_step_end=on_step_end, on_checkpoint=on_checkpoint,
                            progress=progress)
    return DigitsRun(model, data, trainer, backend, source)


def run_config(cfg: Mapping[str, Any], *, progress: bool = False, on_step_end: Iterable[StepCallback] = (),
               on_checkpoint: Iterable[Callable[[int, Path], None]] = ()) -> dict[str, Any]:
    """Run (or resume) a validated config; write the adapter and ``summary.json``; return the summary."""
    run = build_digits_run(cfg, progress=progress, on_step_end=on_step_end, on_checkpoint=on_checkpoint)
    tr = cfg["train"]
    out = Path(tr["out"])
    result = run.trainer.run(tr["steps"])
    model = run.model
    model.set_block_source(None)
    acc_exact = accuracy(model, run.data.x_test, run.data.y_test)
    model.save_pretrained(out / "adapter")
    summary = {
        "steps": result.steps, "resumed_from": result.resumed_from, "losses": result.losses,
        "final_loss": result.losses[-1] if result.losses else None,
        "test_accuracy_exact_blocks": acc_exact, "backend": cfg["backend"]["name"] if run.backend else "engine",
        "gradient": tr["gradient"], "checkpoints": str(out / "checkpoints"), "adapter": str(out / "adapter"),
        "seconds": result.seconds,
    }
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=1) + "\n").encode())
    return summary
