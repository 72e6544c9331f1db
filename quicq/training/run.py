"""Config-driven training runs: ``quicq train CONFIG`` and its Python API :func:`train`.

:func:`build_run` turns a validated config (:mod:`quicq.training.config`) into a ready
:class:`Run` — task (data + base model), adapter, backend, the model-level hardware bridge, optimizer and
:class:`~quicq.training.loop.HybridTrainer` — checking everything it can (paths, CSV columns,
adapter fields, backend and mitigation options) before any circuit is submitted.
:func:`run_config` trains (resuming from the newest checkpoint), evaluates, saves the adapter,
``summary.json`` and ``training_curve.png``. Rerunning the same command after a crash resumes;
a run whose checkpoints were written under another configuration is refused, never overwritten.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quicq.training.atomic import atomic_write_text
from quicq.training.config import adapter_config, load_config, validate_config
from quicq.training.errors import ConfigError
from quicq.training.loop import HybridTrainer, StepCallback
from quicq.training.schedule import lr_factor as lr_factor_of
from quicq.training.tasks import TaskBundle, build_task, epoch_batches, skeleton_model

__all__ = ["Run", "adapter_config", "build_adapter_skeleton", "build_run", "environment", "run_config", "train"]

#: [backend] keys that are not backend-constructor arguments of the same name.
_RESERVED = ("shots", "seed", "retries", "retry_delay", "timeout", "noise")
#: Estimator choices of [backend] that [mitigation] may override (the "raw" evaluation keeps [backend]'s).
_ESTIMATOR = ("magnitudes", "postselect")


def _estimator(cfg: Mapping[str, Any], *, mitigated: bool = True) -> dict[str, bool]:
    """magnitudes / postselect of the block estimator: [backend]'s, overridden by [mitigation]'s."""
    out = {k: bool(cfg["backend"][k]) for k in _ESTIMATOR}
    if mitigated:
        out.update({k: bool(v) for k, v in cfg["mitigation"].items() if k in _ESTIMATOR})
    return out


def _routed(cfg: Mapping[str, Any], *, mitigated: bool = True) -> dict[str, Any]:
    """[mitigation] without the estimator keys (those are not constructor options)."""
    return {k: v for k, v in cfg["mitigation"].items() if k not in _ESTIMATOR} if mitigated else {}


def build_adapter_skeleton(cfg: Mapping[str, Any]) -> Any:
    """The config's adapted model with an untrained base (sizes only): for planning, no pretraining."""
    from quicq.adapters import AdapterConfigError, get_quicq_model

    base, defaults = skeleton_model(cfg["task"])
    qcfg = adapter_config(cfg["adapter"], {k: v for k, v in defaults.items() if k != "modules_to_save"})
    try:
        return get_quicq_model(base, qcfg)
    except AdapterConfigError as exc:
        raise ConfigError(f"[adapter]: {exc}") from None


@dataclass
class Run:
    """Everything :func:`build_run` sets up: model, task, trainer, backend, hardware bridge.

    ``source`` is the run's :class:`~quicq.hardware.model_bridge.ModelHardwareBridge` (``None``
    with exact gradients): its ``jobs`` count the primitive jobs training submitted.
    """

    cfg: dict[str, dict[str, Any]]
    model: Any
    task: TaskBundle
    trainer: HybridTrainer
    backend: Any
    source: Any
    tomography: dict[str, Any]


def _uses_backend(cfg: Mapping[str, Any]) -> bool:
    return cfg["train"]["gradient"] != "exact" or cfg["eval"]["estimated"]


def _backend(cfg: Mapping[str, Any], method: str, *, mitigated: bool = True) -> tuple[Any, dict[str, Any]]:
    """(backend, tomography options) of the config; every option routed and checked first."""
    from quicq.hardware.spec import backend_class, backend_from_spec
    from quicq.training.sources import route_options

    b = cfg["backend"]
    to_backend, to_tomo = route_options(_routed(cfg, mitigated=mitigated), backend_class(b["name"]), method,
                                        reserved=_RESERVED)
    try:
        backend = backend_from_spec(b["name"], shots=b["shots"], seed=b["seed"], retries=b["retries"],
                                    retry_delay=float(b["retry_delay"]), timeout=b["timeout"], **to_backend)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[backend] / [mitigation]: {exc}") from None
    return backend, to_tomo


def build_run(cfg: Mapping[str, Any], *, progress: bool = False, on_step_end: Iterable[StepCallback] = (),
              on_checkpoint: Iterable[Callable[[int, Path], None]] = ()) -> Run:
    """Set up a validated config's run (nothing is trained or submitted yet)."""
    from quicq.adapters import AdapterConfigError, get_quicq_model
    from quicq.training.sources import attach_hardware, hardware_generators

    cfg = json.loads(json.dumps(cfg))
    t, b, tr = cfg["task"], cfg["backend"], cfg["train"]
    if tr["steps"] is None:
        raise ConfigError("missing required key 'train.steps' (or pass --steps N)")
    out = Path(tr["out"])
    method = cfg["adapter"]["method"]
    if _uses_backend(cfg):  # options checked before the (slower) task is loaded
        from quicq.hardware.spec import backend_class

        from quicq.training.sources import route_options

        route_options(_routed(cfg), backend_class(b["name"]), method, reserved=_RESERVED)
    torch.set_num_threads(t["threads"])
    # Seed every global generator: a fresh run is reproducible, a resumed one restores them.
    random.seed(t["seed"])
    np.random.seed(t["seed"])
    torch.manual_seed(t["seed"])
    task = build_task(t, out)
    qcfg = adapter_config(cfg["adapter"], task.adapter_defaults)
    try:
        model = get_quicq_model(task.base, qcfg)
    except AdapterConfigError as exc:
        raise ConfigError(f"[adapter]: {exc}") from None
    backend = source = None
    tomo: dict[str, Any] = {}
    if tr["gradient"] != "exact":
        backend, tomo = _backend(cfg, method)
        source = attach_hardware(model, backend, tr["gradient"], **_estimator(cfg), spsa_eps=float(tr["spsa_eps"]),
                                 seed=b["seed"],
                                 tomography=tomo)

    def is_head(n: str) -> bool:
        return any(f".{h}." in f".{n}." for h in task.head_modules)

    head = [p for n, p in model.named_parameters() if p.requires_grad and is_head(n)]
    body = [(n, p) for n, p in model.named_parameters() if p.requires_grad and not is_head(n)]
    groups = [{"params": [p for _, p in body], "lr": float(tr["lr"])}, {"params": head, "lr": float(tr["head_lr"])}]
    if method == "quantum_peft":  # λ at its own lr (library default: λ/θ of QuantumPEFTConfig.lr_hint)
        from quicq.adapters import QuantumPEFTConfig

        hint = QuantumPEFTConfig.lr_hint
        factor = tr["lambda_lr_factor"] if tr["lambda_lr_factor"] is not None else hint["lambda"] / hint["theta"]
        lam = [p for n, p in body if "qpeft_lambda" in n]
        groups = [{"params": [p for n, p in body if "qpeft_lambda" not in n], "lr": float(tr["lr"])},
                  {"params": lam, "lr": float(tr["lr"]) * float(factor)}, groups[1]]
    groups = [g for g in groups if g["params"]]
    opt_cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[tr["optimizer"]]
    opt = opt_cls(groups, weight_decay=float(tr["weight_decay"]))
    schedule = None
    if tr["schedule"] != "constant":
        schedule = functools.partial(lr_factor_of, steps=int(tr["steps"] or 1), warmup=float(tr["warmup"]),
                                     schedule=tr["schedule"])
    batch_fn = epoch_batches(task.n_train, t["batch_size"], t["seed"])
    generators = hardware_generators(source) if source is not None else {}
    # A decaying schedule depends on the total step count: resuming under another --steps would
    # follow a different lr curve than the checkpoint did, so the count is part of the run's identity.
    ignored = ("checkpoint_every", "keep", "out", "plot") + (("steps",) if schedule is None else ())
    fingerprint = {k: v for k, v in cfg.items() if k not in ("train", "eval")} | {
        "train": {k: v for k, v in tr.items() if k not in ignored}}
    trainer = HybridTrainer(model, opt, task.loss_fn, batch_fn, checkpoint_dir=out / "checkpoints",
                            checkpoint_every=tr["checkpoint_every"], keep=tr["keep"], generators=generators,
                            fingerprint=fingerprint, on_step_end=on_step_end, on_checkpoint=on_checkpoint,
                            progress=progress, lr_schedule=schedule)
    return Run(cfg, model, task, trainer, backend, source, tomo)


def _estimated_accuracy(run: Run, *, mitigated: bool) -> dict[str, Any]:
    """Test accuracy with every block estimated once on a fresh backend of the config."""
    import time

    from quicq.training.sources import attach_hardware

    cfg = run.cfg
    b = cfg["backend"]
    backend, tomo = _backend(cfg, cfg["adapter"]["method"], mitigated=mitigated)
    model = run.model
    t0 = time.perf_counter()
    bridge = attach_hardware(model, backend, "surrogate", **_estimator(cfg, mitigated=mitigated),
                             seed=b["seed"], tomography=tomo)
    try:
        estimates = bridge.pin()  # every block estimated once, in one job; every test batch uses that estimate
        acc = run.task.evaluate(model)
    finally:
        bridge.detach()
    report = next(iter(estimates.values())).mitigation  # the same options for every unit
    opts = [k if v is True else f"{k}={json.dumps(v)}" for k, v in sorted(cfg["mitigation"].items())] if mitigated else []
    return {"accuracy": acc, "backend": str(backend.name), "options": opts,
            "estimator": _estimator(cfg, mitigated=mitigated),
            "mitigation": json.loads(json.dumps(report, default=str)), "jobs": bridge.jobs,
            "estimate_seconds": round(time.perf_counter() - t0, 2)}


def _plot(path: Path, losses: list[float], title: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import io

    from quicq.training.atomic import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(losses) + 1), losses, lw=1, alpha=0.5, label="loss per step")
    w = max(1, len(losses) // 10)
    if w > 1:
        ax.plot(np.arange(w, len(losses) + 1), np.convolve(losses, np.ones(w) / w, mode="valid"),
                label=f"moving average ({w})")
    ax.set(title=title, xlabel="step", ylabel="training loss")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return str(path)


def environment() -> dict[str, Any]:
    """Facts that make a summary reproducible: commit, command, date, machine, versions."""
    import datetime
    import os
    import subprocess
    import sys
    from importlib.metadata import PackageNotFoundError, version

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent, check=False).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    versions = {}
    for pkg in ("quicq", "torch", "transformers", "qiskit", "qiskit-aer", "qiskit-ibm-runtime", "numpy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    prog = Path(sys.argv[0]).name
    prog = "quicq" if prog in ("quicq", "cli.py", "__main__.py") else prog
    return {"commit": commit, "command": " ".join([prog, *sys.argv[1:]]),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None, "versions": versions}


def run_config(cfg: Mapping[str, Any], *, progress: bool = False, on_step_end: Iterable[StepCallback] = (),
               on_checkpoint: Iterable[Callable[[int, Path], None]] = ()) -> dict[str, Any]:
    """Run (or resume) a validated config; evaluate; write the adapter, ``summary.json`` and the plot."""
    run = build_run(cfg, progress=progress, on_step_end=on_step_end, on_checkpoint=on_checkpoint)
    cfg, tr, ev = run.cfg, run.cfg["train"], run.cfg["eval"]
    out = Path(tr["out"])
    result = run.trainer.run(tr["steps"])
    model = run.model
    model.set_block_source(None)
    model.save_pretrained(out / "adapter")
    evaluation: dict[str, Any] = {}
    if ev["validation"] and run.task.validate is not None:
        evaluation["validation_exact_blocks"] = {"accuracy": run.task.validate(model)}
    if ev["exact"]:
        evaluation["exact_blocks"] = {"accuracy": run.task.evaluate(model)}
    if ev["estimated"]:
        evaluation["estimated_blocks"] = _estimated_accuracy(run, mitigated=True)
        if cfg["mitigation"] and ev["raw"]:
            evaluation["estimated_blocks_raw"] = _estimated_accuracy(run, mitigated=False)
    plot = None
    if tr["plot"] and result.losses:
        plot = _plot(out / "training_curve.png", result.losses,
                     f"{run.task.info.get('task', '')}: {cfg['adapter']['method']}, {tr['gradient']}")
    summary = {
        "steps": result.steps, "resumed_from": result.resumed_from, "losses": result.losses,
        "final_loss": result.losses[-1] if result.losses else None, **run.task.info,
        "adapter_method": cfg["adapter"]["method"],
        "trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "backend": cfg["backend"]["name"] if run.backend is not None else "engine",
        "gradient": tr["gradient"], "mitigation": cfg["mitigation"], "evaluation": evaluation,
        "hardware": None if run.source is None else {  # training's jobs (this process; not resumed ones)
            "units": [u.name for u in run.source.units], "jobs": run.source.jobs,
            "executions": run.source.executions},
        "test_accuracy_exact_blocks": evaluation.get("exact_blocks", {}).get("accuracy"),
        "validation_accuracy_exact_blocks": evaluation.get("validation_exact_blocks", {}).get("accuracy"),
        "recipe": {k: tr[k] for k in ("optimizer", "lr", "head_lr", "lambda_lr_factor", "weight_decay", "schedule",
                                      "warmup")},
        "checkpoints": str(out / "checkpoints"), "adapter": str(out / "adapter"), "plot": plot,
        "seconds": result.seconds, "environment": environment(),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


def train(config: str | Path | Mapping[str, Any], *, steps: int | None = None, out: str | Path | None = None,
          progress: bool = True, **callbacks: Any) -> dict[str, Any]:
    """Python API of ``quicq train``: a config file path or dict → the run's summary.

    ``steps`` / ``out`` override ``train.steps`` / ``train.out`` (``steps`` may supply a missing one).
    """
    if isinstance(config, (str, Path)):
        cfg = load_config(config, require_steps=steps is None)
    else:
        cfg = validate_config(dict(config), require_steps=steps is None)
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ConfigError(f"steps must be an integer ≥ 0, got {steps!r}")
        cfg["train"]["steps"] = steps
    if out is not None:
        cfg["train"]["out"] = str(out)
    return run_config(cfg, progress=progress, **callbacks)
