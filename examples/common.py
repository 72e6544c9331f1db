"""The one training recipe of the examples and ``benchmarks/accuracy.py``, and method set-up.

Recipe (the same for every method, so accuracies compare methods, not schedules): AdamW
(no weight decay) with two parameter groups — the task head at the task's fixed head lr, the
method's parameters at the lr under study (optionally split further by the method's
``lr_groups``) — and a linear warmup over the first 6% of the steps followed by a cosine decay
to 0. Steps are timed around forward + backward + optimizer step only (batch preparation is
outside), with torch pinned to ``threads`` threads.

A *method* (see :mod:`methods`) turns a freshly loaded model into one whose trainable
parameters are exactly those the method trains; the task head is always trained.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from methods import ALL_METHODS, METHOD_SPECS, MethodSpec
from quicq.training import schedule

# peft 0.21 calls a transformers 5 API that warns on every model it wraps; nothing to act on.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

WARMUP_FRACTION = schedule.WARMUP_FRACTION


class ExampleError(RuntimeError):
    """A method cannot be set up or trained (missing package, bad option, diverged loss)."""


@dataclass(frozen=True)
class Recipe:
    """Steps, batch size, head lr and schedule shared by every method on a task."""

    steps: int
    batch_size: int
    head_lr: float
    warmup_fraction: float = WARMUP_FRACTION
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ExampleError(f"steps and batch size must be ≥ 1, got {self.steps}, {self.batch_size}")
        if not 0.0 <= self.warmup_fraction < 1.0 or self.head_lr < 0:
            raise ExampleError(f"bad recipe: warmup {self.warmup_fraction}, head lr {self.head_lr}")

    @property
    def warmup_steps(self) -> int:
        return schedule.warmup_steps(self.steps, self.warmup_fraction)


def lr_factor(step: int, recipe: Recipe) -> float:
    """Multiplier of every group's lr at ``step`` (0-based): linear warmup, then cosine to 0
    (:func:`quicq.training.schedule.lr_factor`, the schedule ``quicq train`` uses too)."""
    return schedule.lr_factor(step, recipe.steps, warmup=recipe.warmup_fraction)


def is_head_param(name: str, head: Sequence[str]) -> bool:
    """Whether parameter ``name`` belongs to one of the ``head`` modules (also inside peft wrappers)."""
    parts = name.split(".")
    return any(h.split(".")[-1] in parts and h in name for h in head)


def build_method(model: nn.Module, spec: MethodSpec, settings: dict[str, Any], *, targets: Sequence[str],
                 head: Sequence[str]) -> nn.Module:
    """``model`` set up for ``spec`` with ``settings``: adapters injected, the right parameters trainable."""
    targets, head = list(settings.get("targets", targets)), list(head)
    if spec.kind in ("head", "full"):
        for name, p in model.named_parameters():
            p.requires_grad_(spec.kind == "full" or is_head_param(name, head))
        return model
    if spec.kind in ("lora", "oft", "boft"):
        try:
            import peft
        except ImportError as exc:
            raise ExampleError("peft is needed for lora/oft/boft: pip install peft") from exc
        cls = {"lora": peft.LoraConfig, "oft": peft.OFTConfig, "boft": peft.BOFTConfig}[spec.kind]
        return peft.get_peft_model(model, cls(target_modules=targets, modules_to_save=head, **settings))
    from quicq.adapters import get_quicq_model

    if spec.kind == "quic" and settings.get("rotate") == "both":
        # both sides, y = R_out·W·R_in·x: two chained adapters (the head lives on the first)
        out = {**settings, "rotate": "output"}
        qm = get_quicq_model(model, adapter_config(spec, out, targets=targets, head=head))
        with warnings.catch_warnings():  # "the head stays frozen": it is trained through "default"
            warnings.simplefilter("ignore", UserWarning)
            qm.add_adapter("input", adapter_config(spec, {**settings, "rotate": "input"}, targets=targets, head=()))
        qm.set_adapter(["default", "input"])
        return qm
    return get_quicq_model(model, adapter_config(spec, settings, targets=targets, head=head))


def adapter_config(spec: MethodSpec, settings: dict[str, Any], *, targets: Sequence[str],
                   head: Sequence[str]) -> Any:
    """The quicq config object of a ``quic`` / ``qpeft`` method (its ``lr_hint``, if any, is read from it)."""
    from quicq.adapters import QuantumPEFTConfig, QuICConfig

    cls = {"quic": QuICConfig, "qpeft": QuantumPEFTConfig}.get(spec.kind)
    if cls is None:
        raise ExampleError(f"{spec.name}: kind {spec.kind!r} has no quicq config")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items() if k != "targets"}
    targets = settings.get("targets", targets)  # a method may name its own target modules
    if kw.get("rotate") == "both":  # the first of the two chained adapters (see build_method)
        kw["rotate"] = "output"
    return cls(target_modules=list(targets), modules_to_save=list(head) or None, **kw)


def lr_hint(spec: MethodSpec, settings: dict[str, Any], *, targets: Sequence[str], head: Sequence[str]) -> float | None:
    """The library's suggested lr for a quicq method (``config.lr_hint``), or None."""
    if spec.kind not in ("quic", "qpeft"):
        return None
    hint = getattr(adapter_config(spec, settings, targets=targets, head=head), "lr_hint", None)
    if isinstance(hint, dict):  # per parameter group (Quantum-PEFT): the swept lr is the angles'
        hint = hint.get("theta")
    return float(hint) if isinstance(hint, (int, float)) and hint > 0 else None


def param_summary(model: nn.Module, head: Sequence[str], effective: str = "stored") -> dict[str, int]:
    """Trainable parameters: ``head``, ``adapter_stored`` and ``adapter_effective`` (degrees of freedom).

    With ``effective="skew"`` every trailing n×n block of an adapter parameter counts n(n−1)/2.
    """
    out = {"head": 0, "adapter_stored": 0, "adapter_effective": 0}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if is_head_param(name, head):
            out["head"] += p.numel()
            continue
        out["adapter_stored"] += p.numel()
        if effective == "skew" and p.dim() >= 2 and p.shape[-1] == p.shape[-2]:
            n = p.shape[-1]
            out["adapter_effective"] += p.numel() // (n * n) * (n * (n - 1) // 2)
        else:
            out["adapter_effective"] += p.numel()
    out["trainable"] = out["head"] + out["adapter_stored"]
    return out


def build_optimizer(model: nn.Module, recipe: Recipe, lr: float, head: Sequence[str],
                    lr_groups: dict[str, float] | None = None) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over head (``recipe.head_lr``) and method parameters (``lr`` × the first matching
    ``lr_groups`` factor), with the warmup + cosine schedule."""
    groups: dict[float, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if is_head_param(name, head):
            rate = recipe.head_lr
        else:
            factor = next((f for key, f in (lr_groups or {}).items() if key in name), 1.0)
            rate = lr * factor
        groups.setdefault(rate, []).append(p)
    if not groups:
        raise ExampleError("no trainable parameter (check the head and target modules)")
    opt = torch.optim.AdamW([{"params": ps, "lr": r} for r, ps in groups.items()], weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, recipe))
    return opt, sched


@dataclass
class TrainStats:
    """What a training run measured."""

    losses: list[float]
    step_ms: float  # median wall time of a step (forward, backward, optimizer), first 3 steps excluded
    train_s: float
    threads: int = 1  # torch threads the steps ran with (pinned by train())

    @property
    def final_loss(self) -> float:
        return statistics.fmean(self.losses[-20:])


def train(model: nn.Module, recipe: Recipe, lr: float, *, head: Sequence[str], batches: Iterator[Any],
          loss_fn: Callable[[nn.Module, Any], torch.Tensor], lr_groups: dict[str, float] | None = None,
          desc: str = "", progress: bool = False, threads: int = 1) -> TrainStats:
    """Train ``model`` for ``recipe.steps`` steps of the recipe; stop loudly if the loss diverges.

    Torch is pinned to ``threads`` for the run (and restored after): step times taken with the
    default thread count on shared cores drift 5–26×."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(model, recipe, lr, head=head, batches=batches, loss_fn=loss_fn, lr_groups=lr_groups,
                      desc=desc, progress=progress, threads=threads)
    finally:
        torch.set_num_threads(previous)


def _train(model: nn.Module, recipe: Recipe, lr: float, *, head: Sequence[str], batches: Iterator[Any],
           loss_fn: Callable[[nn.Module, Any], torch.Tensor], lr_groups: dict[str, float] | None,
           desc: str, progress: bool, threads: int) -> TrainStats:
    opt, sched = build_optimizer(model, recipe, lr, head, lr_groups)
    model.train()
    times: list[float] = []
    losses: list[float] = []
    steps: Any = range(recipe.steps)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=desc, leave=False, dynamic_ncols=True)
    t_start = time.perf_counter()
    for _ in steps:
        batch = next(batches)
        t0 = time.perf_counter()
        loss = loss_fn(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            raise ExampleError(f"{desc}: the loss became {losses[-1]} at step {len(losses)} (lr {lr:g})")
    model.eval()
    warm = times[3:] if len(times) > 5 else times
    return TrainStats(losses, 1000 * statistics.median(warm), time.perf_counter() - t_start, threads)


def cycle_batches(n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless seeded epochs of index batches over range(n) (the same sequence for every method)."""
    gen = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, n)
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - batch_size + 1, batch_size):
            yield perm[i:i + batch_size]


# ----------------------------------------------------------------------------- command lines

#: ``--flag`` → (method kind, setting) it overrides; LoRA's alpha follows r (alpha = 2r).
FLAG_SETTINGS = {"lora_r": ("lora", "r"), "oft_block_size": ("oft", "oft_block_size"),
                 "boft_block_size": ("boft", "boft_block_size"), "boft_factor": ("boft", "boft_n_butterfly_factor"),
                 "quic_blocks": ("quic", "n_blocks"), "quic_orders": ("quic", "orders"),
                 "quic_layers": ("quic", "n_layers"), "quic_rotate": ("quic", "rotate"),
                 "qpeft_rank": ("qpeft", "rank"), "qpeft_layers": ("qpeft", "n_layers")}


def add_method_args(p: argparse.ArgumentParser, *, default_methods: Sequence[str], targets: Sequence[str],
                    head: Sequence[str]) -> None:
    """Options shared by the examples and benchmarks: which methods, and overrides of their table settings."""
    p.add_argument("--methods", default=",".join(default_methods),
                   help=f"comma-separated subset of {','.join(ALL_METHODS)} (default: %(default)s)")
    p.add_argument("--targets", default=",".join(targets),
                   help="adapted modules, names or dotted suffixes, comma-separated (default: %(default)s)")
    p.add_argument("--head-modules", default=",".join(head), help="task head, always trained (default: %(default)s)")
    p.add_argument("--lora-r", type=int, help="LoRA rank (alpha = 2r; table: 8)")
    p.add_argument("--oft-block-size", type=int)
    p.add_argument("--boft-block-size", type=int)
    p.add_argument("--boft-factor", type=int)
    p.add_argument("--quic-blocks", type=int, help="QuIC blocks N per layer (all quic-* methods)")
    p.add_argument("--quic-orders", help="QuIC Hamming weights K, e.g. 1,2 (all quic-* methods)")
    p.add_argument("--quic-layers", type=int, help="brick layers (quic-brick)")
    p.add_argument("--quic-rotate", choices=("output", "input", "auto", "both"),
                   help="side of each layer that QuIC rotates (auto: the narrower; both: two chained adapters)")
    p.add_argument("--qpeft-rank", type=int)
    p.add_argument("--qpeft-layers", type=int)
    p.add_argument("--lr", action="append", default=[], metavar="METHOD=LR",
                   help="a method's learning rate, e.g. --lr lora=5e-4 (repeatable)")
    p.add_argument("--head-lr", type=float, help="learning rate of the task head (default: the task's)")


def split_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_methods(text: str) -> list[str]:
    """Validate ``--methods``."""
    methods = split_list(text)
    bad = [m for m in methods if m not in METHOD_SPECS]
    if bad or not methods:
        raise SystemExit(f"unknown method(s) {bad or text!r}; choose from {', '.join(ALL_METHODS)}")
    return methods


def method_settings(method: str, task: str, args: argparse.Namespace | None = None) -> dict[str, Any]:
    """The method's table settings on ``task``, with any command-line overrides applied."""
    spec = METHOD_SPECS[method]
    settings = spec.settings(task)
    for flag, (kind, key) in FLAG_SETTINGS.items():
        value = getattr(args, flag, None) if args is not None else None
        if value is None or kind != spec.kind:
            continue
        if key == "orders":
            value = tuple(int(k) for k in split_list(value))
        if key == "n_blocks":
            settings.pop("block_size", None)
        settings[key] = value
        if key == "r":
            settings["lora_alpha"] = 2 * value
    return settings


def learning_rates(args: argparse.Namespace, task: str = "text",
                   chosen: dict[str, float] | None = None) -> dict[str, float]:
    """Per method: ``--lr METHOD=LR``, else ``chosen`` (e.g. picked on validation by the harness),
    else the middle of the method's grid."""
    lrs = {m: s.lrs(task)[len(s.lrs(task)) // 2] for m, s in METHOD_SPECS.items()}
    lrs.update(chosen or {})
    for item in getattr(args, "lr", []):
        name, _, value = item.partition("=")
        if name not in lrs or not value:
            raise SystemExit(f"--lr expects METHOD=LR with METHOD in {', '.join(ALL_METHODS)}, got {item!r}")
        lrs[name] = float(value)
    return lrs


def apply_method(model: nn.Module, method: str, args: argparse.Namespace, task: str = "text") -> nn.Module:
    """``build_method`` from command-line ``args`` (``--targets``, ``--head-modules``, overrides)."""
    spec = METHOD_SPECS[method]
    return build_method(model, spec, method_settings(method, task, args), targets=split_list(args.targets),
                        head=split_list(args.head_modules))


def param_counts(model: nn.Module, head: Sequence[str]) -> tuple[int, int]:
    """(trainable parameters, of which in the task head)."""
    s = param_summary(model, head)
    return s["trainable"], s["head"]
