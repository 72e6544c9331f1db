"""Shared machinery of the fine-tuning examples: methods, the training loop, result tables.

A *method* turns a freshly loaded model into one whose trainable parameters are exactly those
the method trains (the task head is always trained):

==================  ==============================================================
head                the task head only (``--head-modules``)
full                every parameter
lora                peft LoRA, r = ``--lora-r`` (8), alpha = 2r
oft                 peft OFT, block size ``--oft-block-size``
boft                peft BOFT, block size ``--boft-block-size``, ``--boft-factor`` butterfly factors
quic-<layout>       quicq QuIC, layout pyramid | butterfly | cayley | brick | x
qpeft               quicq Quantum-PEFT, rank ``--qpeft-rank``, ``--qpeft-layers`` layers, angles
                    drawn at random (``--qpeft-init``; λ = 0 so ΔW = 0 at start)
==================  ==============================================================
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

# peft 0.21 calls a transformers 5 API that warns on every model it wraps; nothing to act on.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

QUIC_LAYOUTS = ("pyramid", "butterfly", "cayley", "brick", "x")
ALL_METHODS = ("head", "full", "lora", "oft", "boft") + tuple(f"quic-{p}" for p in QUIC_LAYOUTS) + ("qpeft",)

#: Default learning rates (AdamW) of the adapted / fine-tuned parameters; the head has its own.
DEFAULT_LR = {
    "head": 0.0, "full": 5e-5, "lora": 1e-3, "oft": 1e-3, "boft": 1e-3,
    **{f"quic-{p}": 1e-2 for p in QUIC_LAYOUTS}, "quic-butterfly": 5e-2, "qpeft": 2e-2,
}


class ExampleError(RuntimeError):
    """A method cannot be set up (missing package, bad option); the message says which."""


def add_method_args(p: argparse.ArgumentParser, *, default_methods: Sequence[str], targets: Sequence[str],
                    head: Sequence[str]) -> None:
    """Options shared by the examples and the benchmark: which methods, and their settings."""
    p.add_argument("--methods", default=",".join(default_methods),
                   help=f"comma-separated subset of {','.join(ALL_METHODS)} (default: %(default)s)")
    p.add_argument("--targets", default=",".join(targets),
                   help="adapted Linear modules, names or dotted suffixes, comma-separated (default: %(default)s)")
    p.add_argument("--head-modules", default=",".join(head), help="task head, always trained (default: %(default)s)")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--oft-block-size", type=int, default=32)
    p.add_argument("--boft-block-size", type=int, default=8)
    p.add_argument("--boft-factor", type=int, default=2)
    p.add_argument("--quic-blocks", type=int, default=1, help="QuIC blocks N per layer (default: %(default)s)")
    p.add_argument("--quic-orders", default="1,2", help="QuIC Hamming weights K (default: %(default)s)")
    p.add_argument("--quic-layers", type=int, default=4, help="brick layers (quic-brick only)")
    p.add_argument("--quic-rotate", choices=("output", "input"), default="output",
                   help="side of each Linear that QuIC rotates (default: %(default)s, as the paper)")
    p.add_argument("--qpeft-rank", type=int, default=8)
    p.add_argument("--qpeft-layers", type=int, default=1)
    p.add_argument("--qpeft-init", choices=("random", "identity"), default="random",
                   help="Quantum-PEFT angles at start; λ = 0 either way, so ΔW = 0 (default: %(default)s)")
    p.add_argument("--lr", action="append", default=[], metavar="METHOD=LR",
                   help="override a method's learning rate, e.g. --lr lora=5e-4 (repeatable)")
    p.add_argument("--head-lr", type=float, default=2e-3, help="learning rate of the task head")


def parse_methods(text: str) -> list[str]:
    """Validate ``--methods``."""
    methods = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in methods if m not in ALL_METHODS]
    if bad or not methods:
        raise SystemExit(f"unknown method(s) {bad or text!r}; choose from {', '.join(ALL_METHODS)}")
    return methods


def learning_rates(args: argparse.Namespace, defaults: dict[str, float] | None = None) -> dict[str, float]:
    """DEFAULT_LR, updated by an example's ``defaults``, then by the ``--lr METHOD=LR`` options."""
    lrs = {**DEFAULT_LR, **(defaults or {})}
    for item in args.lr:
        name, _, value = item.partition("=")
        if name not in lrs or not value:
            raise SystemExit(f"--lr expects METHOD=LR with METHOD in {', '.join(ALL_METHODS)}, got {item!r}")
        lrs[name] = float(value)
    return lrs


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _is_head_param(name: str, head: Sequence[str]) -> bool:
    parts = name.split(".")
    return any(h.split(".")[-1] in parts and h in name for h in head)


def apply_method(model: nn.Module, method: str, args: argparse.Namespace) -> nn.Module:
    """Return ``model`` set up for ``method``: adapters injected, the right parameters trainable."""
    targets, head = _split(args.targets), _split(args.head_modules)
    if method in ("head", "full"):
        for name, p in model.named_parameters():
            p.requires_grad_(method == "full" or _is_head_param(name, head))
        return model
    if method in ("lora", "oft", "boft"):
        try:
            import peft
        except ImportError as exc:
            raise ExampleError("peft is needed for lora/oft/boft: pip install peft") from exc
        if method == "lora":
            cfg = peft.LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0,
                                  target_modules=targets, modules_to_save=head)
        elif method == "oft":
            cfg = peft.OFTConfig(r=0, oft_block_size=args.oft_block_size, target_modules=targets,
                                 modules_to_save=head)
        else:
            cfg = peft.BOFTConfig(boft_block_size=args.boft_block_size, boft_n_butterfly_factor=args.boft_factor,
                                  target_modules=targets, modules_to_save=head)
        return peft.get_peft_model(model, cfg)
    try:
        from quicq.adapters import QuantumPEFTConfig, QuICConfig, get_quicq_model
    except ImportError as exc:
        raise ExampleError(f"quicq.adapters is not available ({exc}); needed for {method}") from exc
    if method.startswith("quic-"):
        layout = method.removeprefix("quic-")
        orders = tuple(int(k) for k in _split(args.quic_orders))
        cfg = QuICConfig(target_modules=targets, modules_to_save=head, n_blocks=args.quic_blocks, orders=orders,
                         parameterization=layout, n_layers=args.quic_layers, rotate=args.quic_rotate)
    elif method == "qpeft":
        cfg = QuantumPEFTConfig(target_modules=targets, modules_to_save=head, rank=args.qpeft_rank,
                                n_layers=args.qpeft_layers)
    else:
        raise ExampleError(f"unknown method {method!r}")
    wrapped = get_quicq_model(model, cfg)
    if method == "qpeft" and args.qpeft_init == "random":
        # All-zero angles make U, V the first K unit vectors: ΔW could then only touch K rows and
        # K columns, and θ gets no gradient until λ ≠ 0. Random angles with λ = 0 keep ΔW = 0 at
        # start (as LoRA's random A with B = 0) but spread U, V over the whole space.
        gen = torch.Generator().manual_seed(args.seed)
        with torch.no_grad():
            for name, p in wrapped.named_parameters():
                if "qpeft_theta" in name:
                    p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * math.pi)
    return wrapped


def param_counts(model: nn.Module, head: Sequence[str]) -> tuple[int, int]:
    """(trainable parameters, of which in the task head)."""
    total = head_n = 0
    for name, p in model.named_parameters():
        if p.requires_grad:
            total += p.numel()
            if _is_head_param(name, head):
                head_n += p.numel()
    return total, head_n


@dataclass
class Result:
    """One method's outcome."""

    method: str
    accuracy: float
    trainable: int
    adapter_params: int  # trainable minus the task head
    step_ms: float  # median wall time of one training step (forward, backward, optimizer)
    train_s: float
    lr: float
    steps: int
    final_loss: float
    extra: dict[str, Any] = field(default_factory=dict)


def train_and_evaluate(
    method: str,
    model: nn.Module,
    *,
    head: Sequence[str],
    lr: float,
    head_lr: float,
    steps: int,
    batches: Iterator[Any],
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    evaluate: Callable[[nn.Module], float],
    progress: bool = True,
    weight_decay: float = 0.0,
) -> Result:
    """Train ``model`` for ``steps`` AdamW steps on ``batches`` and evaluate it.

    Two parameter groups: the task head (``head_lr``) and everything else trainable (``lr``).
    """
    from tqdm.auto import tqdm

    trainable, head_n = param_counts(model, head)
    if trainable == 0:
        raise ExampleError(f"{method}: no trainable parameter (check --head-modules / --targets)")
    head_params = [p for n, p in model.named_parameters() if p.requires_grad and _is_head_param(n, head)]
    body_params = [p for n, p in model.named_parameters() if p.requires_grad and not _is_head_param(n, head)]
    groups = [{"params": head_params, "lr": head_lr}] if head_params else []
    if body_params:
        groups.append({"params": body_params, "lr": lr})
    opt = torch.optim.AdamW(groups, weight_decay=weight_decay)
    model.train()
    times: list[float] = []
    losses: list[float] = []
    bar = tqdm(range(steps), desc=f"{method:>15}", disable=not progress, leave=False, dynamic_ncols=True)
    t_start = time.perf_counter()
    for _ in bar:
        batch = next(batches)
        t0 = time.perf_counter()
        loss = loss_fn(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            raise ExampleError(f"{method}: the loss became {losses[-1]} at step {len(losses)}; lower its --lr")
        bar.set_postfix(loss=f"{statistics.fmean(losses[-20:]):.3f}")
    train_s = time.perf_counter() - t_start
    model.eval()
    with torch.no_grad():
        acc = evaluate(model)
    warm = times[2:] if len(times) > 4 else times
    return Result(method, acc, trainable, trainable - head_n, 1000 * statistics.median(warm) if warm else 0.0,
                  train_s, lr, steps, statistics.fmean(losses[-20:]) if losses else float("nan"))


def cycle_batches(n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless seeded epochs of index batches over range(n) (the same sequence for every method)."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield perm[i : i + batch_size]


def format_table(results: Sequence[Result], reference: str = "lora") -> str:
    """Markdown table; the ratio columns compare every method to ``reference`` when it ran."""
    ref = next((r for r in results if r.method == reference), None)
    head = "| method | accuracy | trainable | adapter params | step ms | train s |"
    sep = "|---|---:|---:|---:|---:|---:|"
    if ref is not None:
        head += f" acc / {reference} | {reference} params / params |"
        sep += "---:|---:|"
    lines = [head, sep]
    for r in results:
        row = f"| {r.method} | {r.accuracy:.4f} | {r.trainable:,} | {r.adapter_params:,} | {r.step_ms:.1f} | {r.train_s:.1f} |"
        if ref is not None:
            ratio = r.accuracy / ref.accuracy if ref.accuracy else float("nan")
            fewer = ref.adapter_params / r.adapter_params if r.adapter_params else float("inf")
            row += f" {ratio:.3f} | {fewer:.1f}× |"
        lines.append(row)
    return "\n".join(lines)


def write_results(out_dir: str | os.PathLike[str], name: str, results: Sequence[Result],
                  settings: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<out>/<name>.json`` and ``<out>/<name>.md``; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count()}
    jpath, mpath = out / f"{name}.json", out / f"{name}.md"
    jpath.write_text(json.dumps({"settings": settings, "environment": meta,
                                 "results": [asdict(r) for r in results]}, indent=2) + "\n")
    mpath.write_text(f"# {name}\n\nSettings: `{json.dumps(settings)}`\n\n{format_table(results)}\n")
    return jpath, mpath
