"""``quicq demo``: the whole hardware path on one real task, offline, in a few minutes.

Task: a small CNN pretrained on scikit-learn's digits 0–4 is adapted to digits 5–9. QuIC adapters
(pyramid circuits, block size 16, orders {1, 2} → 5-qubit circuits that fit the 5-qubit
FakeManilaV2) go on ``conv2`` (32 channels: 2 blocks), ``fc1`` and ``fc2`` (128 features: 8
blocks each); the new head is trained too. The demo then

a. fine-tunes exactly (torch engine) and compares with training the head alone;
b. compiles the trained circuits to OpenQASM 3 (and 2) with a manifest;
c. estimates every block from shots on ideal Aer, and on Aer with FakeManilaV2's noise model with
   and without Hamming-weight post-selection (the same shots, reduced both ways), and mitigated
   (:data:`~quicq.hardware.mitigation.NOISY_BLOCK_TOMOGRAPHY`: the signed estimator with ZNE, at
   the same total shots; every layer in one job through the model bridge);
d. evaluates test accuracy with exact, shot-estimated, noisy and mitigated blocks plugged into
   the layers through their block-source hook;
e. runs a short hybrid training on Aer — forward from block estimates, backward by parameter
   shift, 2 jobs per step for all three layers
   (:class:`~quicq.hardware.model_bridge.ModelHardwareBridge`) — next to an exact-gradient twin
   on the same batches;
f. draws training curves, block-error heatmaps and the block circuit;
g. prints a summary table and writes ``summary.json`` (plus a cost plan for a real device).

Everything lands in ``--out`` (default ``out/demo``); ``--results PATH`` also writes the summary
there (``results/demo.json``). ``--quick`` shrinks every setting (CI).
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from quicq.circuits.bundle import compile_adapter
from quicq.demo_blocks import accuracy_with, estimate_all, estimate_mitigated, exact_blocks
from quicq.demo_report import plots, summary_table
from quicq.errors import QuicqError
from quicq.hardware.mitigation import NOISY_BLOCK_TOMOGRAPHY
from quicq.hardware.model_bridge import ModelHardwareBridge
from quicq.hardware.spec import backend_from_spec
from quicq.tasks.digits import digits_split, pretrain_digits_cnn
from quicq.training.atomic import atomic_write_bytes, atomic_write_text
from quicq.training.loop import HybridTrainer
from quicq.training.run import environment
from quicq.training.tasks import accuracy, epoch_batches

TARGETS = ("conv2", "fc1", "fc2")


class DemoError(QuicqError, ValueError):
    """The demo was asked for something it cannot do (checked before any work)."""


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of one demo run (see :data:`FULL` and :data:`QUICK`)."""

    pretrain_epochs: int
    finetune_steps: int
    batch_size: int
    shots: int  # per circuit, block estimates of section (c)
    hybrid_steps: int
    hybrid_shots: int
    hybrid_batch: int  # images per hybrid step (the quantum cost does not depend on it)
    hybrid_targets: tuple[str, ...] = TARGETS
    lr: float = 0.01
    head_lr: float = 0.01
    hybrid_lr: float = 0.02
    width: int = 128
    block_size: int = 16
    orders: tuple[int, ...] = (1, 2)
    noisy_device: str = "fake_manila"
    plan_device: str = "fake_manila"
    seed: int = 0


FULL = DemoSettings(pretrain_epochs=8, finetune_steps=300, batch_size=32, shots=4096, hybrid_steps=10,
                    hybrid_shots=1024, hybrid_batch=256)
QUICK = DemoSettings(pretrain_epochs=4, finetune_steps=80, batch_size=32, shots=512, hybrid_steps=3,
                     hybrid_shots=1024, hybrid_batch=64)


class _Log:
    """Numbered stage headers with wall times."""

    def __init__(self, total: int) -> None:
        self.total, self.i, self.t0 = total, 0, time.perf_counter()
        self.times: dict[str, float] = {}
        self._name: str | None = None
        self._start = 0.0

    def stage(self, name: str) -> None:
        self.done()
        self.i += 1
        self._name, self._start = name, time.perf_counter()
        print(f"[{self.i}/{self.total}] {name} …", flush=True)

    def done(self) -> None:
        if self._name is not None:
            self.times[self._name] = round(time.perf_counter() - self._start, 2)
            self._name = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


# ---------------------------------------------------------------------------------------------
# Training helpers
# ---------------------------------------------------------------------------------------------


def _adam(model: nn.Module, lr: float, head_lr: float) -> torch.optim.Optimizer:
    head = [p for n, p in model.named_parameters() if p.requires_grad and ".head." in f".{n}."]
    body = [p for n, p in model.named_parameters() if p.requires_grad and ".head." not in f".{n}."]
    groups = [g for g in ({"params": body, "lr": lr}, {"params": head, "lr": head_lr}) if g["params"]]
    return torch.optim.Adam(groups)


def _train(model: nn.Module, opt: torch.optim.Optimizer, loss_fn: Callable[[nn.Module, Any], torch.Tensor],
           batch_fn: Callable[[int], Any], steps: int, *, progress: bool, checkpoint_dir: Path | None = None,
           generators: dict[str, np.random.Generator] | None = None) -> list[float]:
    trainer = HybridTrainer(model, opt, loss_fn, batch_fn, checkpoint_dir=checkpoint_dir,
                            checkpoint_every=max(1, steps // 2), generators=generators, progress=progress)
    return trainer.run(steps, resume=False).losses


def _quic_config(s: DemoSettings, *, head: bool, targets: Sequence[str] = TARGETS) -> Any:
    from quicq.adapters import QuICConfig

    return QuICConfig(target_modules=list(targets), block_size=s.block_size, orders=s.orders,
                      parameterization="pyramid", modules_to_save=["head"] if head else None)


# ---------------------------------------------------------------------------------------------
# The demo
# ---------------------------------------------------------------------------------------------


def run_demo(out: str | Path = "out/demo", *, quick: bool = False, progress: bool = True,
             settings: DemoSettings | None = None, results: str | Path | None = None) -> dict[str, Any]:
    """Run the demo (module docstring) and return the summary dict written to ``summary.json``.

    ``results``: also write that summary to this path (e.g. ``results/demo.json``, which the
    README's demo table is generated from); it carries commit, command, date, cores, torch
    threads and load average either way (``summary["environment"]``).
    """
    s = settings or (QUICK if quick else FULL)
    if results is not None and Path(results).is_dir():
        raise DemoError(f"results must be a file path (e.g. results/demo.json), got the directory {results}")
    threads = torch.get_num_threads()
    # The model is tiny: one intra-op thread is fastest, and avoids the heavy slow-down of
    # oversubscribed OpenMP threads when other processes share the cores.
    torch.set_num_threads(1)
    try:
        summary = _run(Path(out), s, quick=quick, progress=progress)
    finally:
        torch.set_num_threads(threads)
    if results is not None:
        atomic_write_text(Path(results), json.dumps(summary, indent=1) + "\n")
        print(f"wrote {results}")
    return summary


def _run(out: Path, s: DemoSettings, *, quick: bool, progress: bool) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(s.seed)
    log = _Log(7)
    summary: dict[str, Any] = {"settings": asdict(s), "quick": quick}

    # (a) exact fine-tuning ---------------------------------------------------------------------
    log.stage(f"pretraining a CNN on digits 0–4 ({s.pretrain_epochs} epochs); fine-tuning on 5–9 "
              f"({s.finetune_steps} steps): head only vs QuIC + head, exact engine")
    data = digits_split(seed=s.seed)  # validation carved from training data; test untouched
    base = pretrain_digits_cnn(s.seed, s.pretrain_epochs, s.width)
    x, y = data.x_train, data.y_train
    batch_fn = epoch_batches(x.shape[0], s.batch_size, s.seed)

    def loss_fn(m: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(m(x[idx]), y[idx])

    head_model = copy.deepcopy(base)
    for n, p in head_model.named_parameters():
        p.requires_grad_(n.startswith("head."))
    head_losses = _train(head_model, _adam(head_model, s.lr, s.head_lr), loss_fn, batch_fn, s.finetune_steps,
                         progress=progress)
    acc_head = accuracy(head_model, data.x_test, data.y_test)

    from quicq.adapters import get_quicq_model

    torch.manual_seed(s.seed)
    quic = get_quicq_model(copy.deepcopy(base), _quic_config(s, head=True))
    quic_losses = _train(quic, _adam(quic, s.lr, s.head_lr), loss_fn, batch_fn, s.finetune_steps, progress=progress)
    acc_quic = accuracy(quic, data.x_test, data.y_test)
    n_angles = sum(layer.quic_params["default"].numel() for layer in quic.quicq_layers().values())
    layer0 = next(iter(quic.quicq_layers().values()))
    circuit = layer0.circuit()
    print(f"    head only: {acc_head:.4f}   QuIC ({n_angles} angles, {circuit.n_qubits}-qubit circuits): {acc_quic:.4f}")
    summary["finetune"] = {"steps": s.finetune_steps, "test_images": int(data.x_test.shape[0]),
                           "train_images": int(x.shape[0]), "accuracy_head_only": acc_head,
                           "accuracy_quic_exact": acc_quic, "adapter_angles": n_angles,
                           "adapted_modules": list(TARGETS), "qubits": circuit.n_qubits,
                           "blocks": {n: layer.quic_spec["default"].n_blocks for n, layer in quic.quicq_layers().items()}}

    # (b) QASM ----------------------------------------------------------------------------------
    log.stage("compiling the trained circuits to OpenQASM 3 (+ 2) with a manifest")
    quic.save_pretrained(out / "adapter")
    manifest = compile_adapter(out / "adapter", out / "qasm", versions=(2, 3))
    n_files = len(json.loads(manifest.read_text())["files"])
    print(f"    {n_files} files in {out / 'qasm'}; symbolic program: {out / 'qasm' / 'conv2.circuit.qasm'}")
    summary["qasm"] = {"manifest": str(manifest), "files": n_files}

    # (c) block estimates ---------------------------------------------------------------------------
    log.stage(f"estimating every block: ideal Aer and noisy {s.noisy_device}, {s.shots} shots per circuit")
    exact = exact_blocks(quic)
    ideal_backend = backend_from_spec("aer", shots=s.shots, seed=s.seed + 1)
    noisy_backend = backend_from_spec(f"aer-noisy:{s.noisy_device}", shots=s.shots, seed=s.seed + 2)
    (ideal,) = estimate_all(quic, ideal_backend, s.shots, exact, (True,))
    noisy_raw, noisy_ps = estimate_all(quic, noisy_backend, s.shots, exact, (False, True))
    # the same total shots: n signed circuits × 2 ZNE scales at S shots = 2n derived circuits at S
    mitigated, mit_info = estimate_mitigated(quic, noisy_backend, s.shots, exact, NOISY_BLOCK_TOMOGRAPHY)
    estimates = (ideal, noisy_raw, noisy_ps, mitigated)
    for e in estimates:
        kept = "" if e.kept_fraction is None else f", kept {e.kept_fraction:.3f} of Z-basis shots"
        mag = "" if e.magnitude_mean_abs_error is None else f", Z-basis |U| mean err {e.magnitude_mean_abs_error:.4f}"
        print(f"    {e.label:<40} max |ΔB| {e.max_abs_error:.4f}, mean {e.mean_abs_error:.4f}{mag}{kept}")
    np.savez(out / "blocks.npz", **{f"{cond}__{layer}__k{k}": blocks[i].numpy()
                                     for cond, est in (("exact", exact), ("aer", ideal.blocks),
                                                       ("noisy_raw", noisy_raw.blocks),
                                                       ("noisy_postselected", noisy_ps.blocks),
                                                       ("noisy_mitigated", mitigated.blocks))
                                     for layer, blocks in est.items() for i, k in enumerate(s.orders)})

    # (d) accuracy with estimated blocks --------------------------------------------------------------
    log.stage("test accuracy with exact, shot-estimated and noisy blocks")
    accs = {
        "exact blocks": accuracy_with(quic, exact, data.x_test, data.y_test),
        f"Aer, {s.shots} shots": accuracy_with(quic, ideal.blocks, data.x_test, data.y_test),
        f"{s.noisy_device} noise, no post-selection": accuracy_with(quic, noisy_raw.blocks, data.x_test, data.y_test),
        f"{s.noisy_device} noise, post-selected": accuracy_with(quic, noisy_ps.blocks, data.x_test, data.y_test),
        f"{s.noisy_device} noise, mitigated": accuracy_with(quic, mitigated.blocks, data.x_test, data.y_test),
    }
    for k, v in accs.items():
        print(f"    {k:<40} {v:.4f}")
    summary["estimates"] = [
        {"condition": e.label, "max_abs_error": e.max_abs_error, "mean_abs_error": e.mean_abs_error,
         "magnitude_mean_abs_error": e.magnitude_mean_abs_error,
         "max_abs_error_x_sqrt_shots": e.max_abs_error * math.sqrt(s.shots), "kept_fraction": e.kept_fraction,
         "circuits": e.circuits, "seconds": round(e.seconds, 2), "test_accuracy": acc}
        for e, acc in zip(estimates, list(accs.values())[1:])
    ]
    summary["accuracy"] = accs
    kept = accs[f"{s.noisy_device} noise, mitigated"] / accs["exact blocks"]
    summary["mitigated"] = {**mit_info, "condition": mitigated.label, "fraction_of_exact_accuracy": kept,
                            "goal": 0.99, "goal_met": bool(kept >= 0.99),
                            "mean_error_ratio_vs_raw": noisy_raw.mean_abs_error / mitigated.mean_abs_error}
    print(f"    mitigated blocks keep {100 * kept:.1f}% of the exact-block accuracy (goal ≥ 99%); mean |ΔB| "
          f"{noisy_raw.mean_abs_error / mitigated.mean_abs_error:.2f}× lower than raw")

    # (e) hybrid training ------------------------------------------------------------------------------
    log.stage(f"hybrid training on Aer: parameter-shift gradients, {s.hybrid_steps} steps, {s.hybrid_shots} shots")
    hy_idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(s.seed + 7))[:s.hybrid_batch]

    def fixed_batch(step: int) -> torch.Tensor:
        return hy_idx

    def engine_loss(m: Any, bridge: ModelHardwareBridge | None) -> float:
        """Loss on the fixed batch with the engine's exact blocks (no shot noise); ``bridge`` is re-attached."""
        if bridge is not None:
            bridge.detach()
        try:
            with torch.no_grad():
                return float(loss_fn(m, hy_idx))
        finally:
            if bridge is not None:
                bridge.attach()

    runs: dict[str, list[float]] = {}
    hybrid_info: dict[str, Any] = {}
    for label, spec in (("Aer, parameter shift", "aer"), ("exact gradient (engine)", None)):
        torch.manual_seed(s.seed)
        # start from the head-only model; train the adapter angles only (head frozen)
        m = get_quicq_model(copy.deepcopy(head_model), _quic_config(s, head=False, targets=s.hybrid_targets))
        gens: dict[str, np.random.Generator] = {}
        bridge = None
        if spec is not None:  # every layer's circuits in one job per step direction
            from quicq.training.sources import hardware_generators

            be = backend_from_spec(spec, shots=s.hybrid_shots, seed=s.seed + 3)
            bridge = ModelHardwareBridge(m, be, gradient="parameter_shift", seed=s.seed)
            gens = hardware_generators(bridge)
        ckpt = out / "hybrid" / "checkpoints" if spec else None
        if ckpt is not None and ckpt.exists():  # a fresh run every time the demo is run
            for f in ckpt.iterdir():
                f.unlink()
        before = engine_loss(m, bridge)
        t0 = time.perf_counter()
        losses = _train(m, _adam(m, s.hybrid_lr, s.head_lr), loss_fn, fixed_batch, s.hybrid_steps,
                        progress=progress, checkpoint_dir=ckpt, generators=gens)
        jobs = bridge.jobs if bridge is not None else 0  # training's jobs: forward + backward per step
        with torch.no_grad():  # the loss after the last update (blocks from the same source)
            losses.append(float(loss_fn(m, hy_idx)))
        secs = time.perf_counter() - t0
        runs[label] = losses
        after = engine_loss(m, bridge)
        if bridge is not None:
            bridge.detach()
        hybrid_info[label] = {"losses": losses, "engine_loss_before": before, "engine_loss_after": after,
                              "seconds": round(secs, 2),
                              "test_accuracy_exact_blocks": accuracy(m, data.x_test, data.y_test)}
        if bridge is not None:
            hybrid_info[label] |= {"training_jobs": jobs, "jobs_per_step": jobs / max(1, s.hybrid_steps),
                                   "executions": bridge.executions}
        print(f"    {label:<28} loss {losses[0]:.4f} → {losses[-1]:.4f} (exact blocks: {before:.4f} → "
              f"{after:.4f}; {secs:.1f} s)")
    summary["hybrid"] = {"batch_images": s.hybrid_batch, "shots": s.hybrid_shots, "lr": s.hybrid_lr,
                         "adapted_modules": list(s.hybrid_targets),
                         "steps": s.hybrid_steps, "runs": hybrid_info,
                         "checkpoints": str(out / "hybrid" / "checkpoints")}

    # (f) plots ------------------------------------------------------------------------------------
    log.stage("plots: training curves, block-error heatmaps, circuit drawing")
    heat_layer = "fc2"
    heat = []
    for e in estimates:
        for i, k in enumerate(s.orders):
            err = np.abs(e.blocks[heat_layer][i][0].numpy() - exact[heat_layer][i][0].numpy())
            heat.append((f"{heat_layer} block 0, k={k}\n{e.label}", err))
    files = plots(out / "plots", {"head only": head_losses, "QuIC + head (exact)": quic_losses}, runs, heat,
                   circuit)
    summary["plots"] = files

    # (g) cost plan and summary ----------------------------------------------------------------------
    log.stage(f"cost plan on {s.plan_device} and summary")
    from quicq.hardware.planner import plan_cost

    plan = plan_cost(quic, f"fake:{s.plan_device}", shots=s.shots, gradient="parameter_shift")
    atomic_write_bytes(out / "plan.txt", (plan.table() + "\n").encode())
    summary["plan"] = {"backend": plan.backend, "circuits_per_forward": plan.circuits_per_forward,
                       "circuits_per_step": plan.circuits_per_step, "shots_per_step": plan.shots_per_step,
                       "two_qubit_gates_max": plan.two_qubit_gates_max, "depth_max": plan.depth_max,
                       "qpu_seconds_per_forward": plan.qpu_seconds_per_forward,
                       "qpu_seconds_per_step": plan.qpu_seconds_per_step}
    log.done()
    summary["stage_seconds"] = log.times
    summary["total_seconds"] = round(log.elapsed, 1)
    summary["environment"] = environment()  # commit, command, date, cores, torch threads (1 here), load
    table = summary_table(summary)
    print()
    print(table)
    atomic_write_bytes(out / "summary.txt", (table + "\n").encode())
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=1) + "\n").encode())
    print(f"\nwrote {out / 'summary.json'}, {out / 'summary.txt'}, plots in {out / 'plots'}")
    return summary
