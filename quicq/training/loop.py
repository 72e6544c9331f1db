"""The hybrid training loop: steps, checkpoints and bit-exact resume, failures never dropped.

A step is: batch ``batch_fn(step)`` (a pure function of the step number, so a resumed run sees
exactly the batches it would have seen), loss, backward, optimizer step. The model's quicq
adapters take their blocks from wherever their block source says: the exact engine, or a
backend through :mod:`quicq.hardware.hybrid` (forward = block estimate, backward = parameter
shift / SPSA / surrogate). Backend jobs are retried with backoff by the backend layer
(:class:`~quicq.hardware.backends.Backend`); if a step still fails, the loop writes a checkpoint
of the state *at the start of that step* and raises :class:`TrainingError` — a step is never
silently dropped, and rerunning resumes at the failed step.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from quicq.hardware.errors import HardwareError, redact
from quicq.training.checkpoints import Checkpoint, CheckpointStore, join_optimizer, split_optimizer
from quicq.training.errors import CheckpointError, TrainingError
from quicq.training.rng import Snapshot, restore_rng

__all__ = ["HybridTrainer", "StepCallback", "TrainResult", "show_progress"]


def show_progress(requested: bool) -> bool:
    """Progress bars only when asked for *and* stderr is a terminal (never into logs or pipes)."""
    try:
        return bool(requested) and sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced stderr
        return False



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
        progress: show a tqdm bar (only when stderr is a terminal).
        lr_schedule: ``f(step) -> multiplier`` of every group's base lr at 0-based ``step``
            (e.g. :func:`quicq.training.schedule.lr_factor`); ``None``: the optimizer's lrs as
            they are. A pure function of the step, so resume needs no scheduler state; base lrs
            live in each group's ``initial_lr`` (torch's scheduler convention), which the
            optimizer's state dict carries.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 loss_fn: Callable[[nn.Module, Any], torch.Tensor], batch_fn: Callable[[int], Any], *,
                 checkpoint_dir: str | Path | None = None, checkpoint_every: int = 10, keep: int = 2,
                 generators: Mapping[str, np.random.Generator] | None = None,
                 fingerprint: Any = None, on_step_end: Iterable[StepCallback] = (),
                 on_checkpoint: Iterable[Callable[[int, Path], None]] = (), progress: bool = False,
                 lr_schedule: Callable[[int], float] | None = None) -> None:
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
        self.lr_schedule = lr_schedule
        if lr_schedule is not None:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        self.step = 0
        self.losses: list[float] = []
        self._params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if not self._params:
            raise ValueError("the model has no trainable parameter")

    # -- state ---------------------------------------------------------------------------------
    def _state(self, snap: Snapshot) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {f"param/{n}": p.detach() for n, p in self._params.items()}
        opt_t, opt_meta = split_optimizer(self.optimizer.state_dict())
        tensors.update(opt_t)
        tensors["rng/torch"] = snap.torch_state
        meta = {"optimizer": opt_meta, "rng": snap.json_state, "losses": list(self.losses),
                "fingerprint": self.fingerprint, "params": {n: list(p.shape) for n, p in self._params.items()},
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        return tensors, meta

    def save_checkpoint(self, snap: Snapshot | None = None) -> Path | None:
        """Checkpoint the current state (``snap``: RNG states to record instead of the current ones)."""
        if self.store is None:
            return None
        tensors, meta = self._state(snap or Snapshot.take(self.generators))
        path = self.store.save(self.step, tensors, meta)
        for cb in self.on_checkpoint:
            cb(self.step, path)
        return path

    def load_checkpoint(self, ckpt: Checkpoint) -> None:
        """Restore parameters, optimizer, RNG states, step counter and history from ``ckpt``."""
        meta = ckpt.meta
        if self.fingerprint is not None and meta.get("fingerprint") != self.fingerprint:
            diff = _differences(meta.get("fingerprint"), self.fingerprint)
            where = f" ({'; '.join(diff[:3])})" if diff else ""
            hint = ("; a decaying lr schedule depends on train.steps, so resume with the steps the run was "
                    "started with (or train with schedule = 'constant' to extend runs)"
                    if any(d.startswith("train.steps") for d in diff) else "")
            raise CheckpointError(
                f"{ckpt.path} was written by a run with a different configuration{where}{hint}; use another "
                "checkpoint directory (or delete this one) to start afresh"
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
            self.optimizer.load_state_dict(join_optimizer(ckpt.tensors, meta["optimizer"]))
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"{ckpt.path}: optimizer state does not fit this optimizer ({exc})") from None
        restore_rng(meta["rng"], ckpt.tensors["rng/torch"], self.generators)
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

        bar = tqdm(total=steps, initial=min(self.step, steps), desc="training",
                   disable=not show_progress(self.progress), dynamic_ncols=True, leave=False)
        self.model.train()
        try:
            while self.step < steps:
                snap = Snapshot.take(self.generators)
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

    def _one_step(self, snap: Snapshot) -> float:
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
        if self.lr_schedule is not None:
            factor = float(self.lr_schedule(self.step))
            for group in self.optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
        self.optimizer.step()
        return value


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two JSON-like fingerprints differ, with both values (for error messages)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {json.dumps(old)} → {json.dumps(new)}"]

