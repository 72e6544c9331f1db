"""Summaries of ``benchmarks/accuracy.py`` runs: lr choice on validation, seeds, table, plot.

The lr rule lives here once and is used both to plan the sweep and to report it: the chosen lr
is the one with the best seed-0 *validation* accuracy (ties: lower validation loss, then the
smaller lr). Test accuracy is reported only at that lr, as mean ± sample standard deviation
over the seeds run there; test numbers of other lrs are stored but never looked at.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def _val_key(run: dict[str, Any]) -> tuple[float, float, float]:
    acc = run.get("val_acc")
    loss = run.get("val_loss")
    bad = acc is None or not math.isfinite(acc)
    return (-math.inf if bad else acc, -math.inf if loss is None or not math.isfinite(loss) else -loss, -run["lr"])


def choose_lr(sweep: Iterable[dict[str, Any]]) -> float | None:
    """The lr of the best seed-0 run on validation (see the module docstring); None if none ran."""
    runs = list(sweep)
    return max(runs, key=_val_key)["lr"] if runs else None


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "min": min(vals), "max": max(vals)}


def summarize_method(runs: Sequence[dict[str, Any]], grid: Sequence[float]) -> dict[str, Any]:
    """One method's summary from its runs (all of one task and method configuration)."""
    sweep = sorted((r for r in runs if r["seed"] == 0), key=lambda r: r["lr"])
    lr = choose_lr(sweep)
    at = sorted((r for r in runs if r["lr"] == lr), key=lambda r: r["seed"])
    lrs = [r["lr"] for r in sweep]
    first = at[0] if at else (runs[0] if runs else {})
    test = _stats([r.get("test_acc") for r in at])
    val = _stats([r.get("val_acc") for r in at])
    return {
        "method": first.get("method"), "label": first.get("label"), "kind": first.get("kind"),
        "settings": first.get("settings"), "lr_groups": first.get("lr_groups"),
        "params": first.get("params"), "lr_hint": first.get("lr_hint"), "lr_grid": list(grid),
        "sweep": [{"lr": r["lr"], "val_acc": r.get("val_acc"), "val_loss": r.get("val_loss"),
                   "error": r.get("error")} for r in sweep],
        "lr_chosen": lr, "lr_at_edge": bool(lrs) and lr in (lrs[0], lrs[-1]) and len(lrs) > 1,
        # a sweep cut short: fewer lrs than the grid, so the "chosen" lr is not a choice yet
        "lrs_swept": len(lrs), "lr_incomplete": len({round(x, 9) for x in lrs} & {round(x, 9) for x in grid}) < len(grid),
        "seeds": [r["seed"] for r in at],
        "val_acc": [r.get("val_acc") for r in at], "test_acc": [r.get("test_acc") for r in at],
        "val_mean": val["mean"], "test_mean": test["mean"], "test_std": test["std"],
        "test_min": test["min"], "test_max": test["max"],
        "step_ms": statistics.median([r["step_ms"] for r in at]) if at else None,
        "train_s": statistics.median([r["train_s"] for r in at]) if at else None,
        "load_at_start": [r.get("load_at_start") for r in at],
        "errors": [r["error"] for r in at if r.get("error")],
        "commits": sorted({r.get("commit", "?") for r in at}),
    }


def add_relative(rows: list[dict[str, Any]], reference: str = "lora", floor: str = "head") -> None:
    """Add ``ratio_to_lora``, ``gain_fraction`` = (acc − head)/(LoRA − head) and ``fewer_params``."""
    by = {r["method"]: r for r in rows}
    ref, base = by.get(reference), by.get(floor)
    for r in rows:
        acc = r["test_mean"]
        r["ratio_to_lora"] = acc / ref["test_mean"] if ref and acc is not None and ref["test_mean"] else None
        gap = ref["test_mean"] - base["test_mean"] if ref and base and None not in (ref["test_mean"],
                                                                                      base["test_mean"]) else None
        r["gain_fraction"] = (acc - base["test_mean"]) / gap if gap and acc is not None else None
        eff = (r.get("params") or {}).get("adapter_effective")
        ref_eff = (ref.get("params") or {}).get("adapter_effective") if ref else None
        r["fewer_params_than_lora"] = ref_eff / eff if ref_eff and eff else None


def _f(v: Any, fmt: str, none: str = "–") -> str:
    return none if v is None else format(v, fmt)


def markdown(summaries: dict[str, dict[str, Any]]) -> str:
    """The table of every task's summary."""
    out = ["# Accuracy vs trainable parameters", "",
           "Regenerate: see each task's command below. lr chosen on validation (seed 0); test accuracy "
           "is mean ± sample std over the seeds at that lr only. *gain* = (acc − head)/(LoRA − head). "
           "Params are the adapter's (the trained head is extra and equal for all methods); effective = "
           "degrees of freedom (a Cayley block stores n² numbers for n(n−1)/2). ⚠ = chosen lr at an edge "
           "of the swept range; *k/m lrs* = the sweep stopped after k of its m grid lrs (not a choice yet).", ""]
    for task, s in summaries.items():
        loads = [v for r in s["methods"] for v in r.get("load_at_start") or [] if v is not None]
        load = f"; 1-min load average {min(loads):.1f}–{max(loads):.1f} when runs started" if loads else ""
        out += [f"## {task}", "", f"`{s['command']}`", "",
                f"{s['sizes']} examples (train / val / test), {s['recipe']}; {s['threads']} torch thread(s) per "
                f"process, {s['cpu_count']} cores{load} (step ms: median step of each run, median over seeds; "
                "comparable only at similar load — benchmarks/adapters.py measures speed).", "",
                "| method | stored params | effective | lr (val) | val acc | test acc | seeds | / LoRA | gain | "
                "LoRA params / params | step ms |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in s["methods"]:
            p = r.get("params") or {}
            edge = " ⚠" if r["lr_at_edge"] else ""
            if r.get("lr_incomplete"):
                edge += f" ({r['lrs_swept']}/{len(r['lr_grid'])} lrs)"
            test = (f"{r['test_mean']:.4f} ± {r['test_std']:.4f}" if r["test_mean"] is not None else "–")
            out.append(f"| {r['label'] or r['method']} | {_f(p.get('adapter_stored'), ',')} | "
                       f"{_f(p.get('adapter_effective'), ',')} | {_f(r['lr_chosen'], 'g')}{edge} | "
                       f"{_f(r['val_mean'], '.4f')} | {test} | {len(r['seeds'])} | {_f(r['ratio_to_lora'], '.3f')} | "
                       f"{_f(r['gain_fraction'], '.2f')} | {_f(r['fewer_params_than_lora'], '.1f')}× | "
                       f"{_f(r['step_ms'], '.1f')} |")
        out.append("")
    return "\n".join(out)


def plot(summaries: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Test accuracy vs effective adapter parameters (log x, error bars = std), one panel per task."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    tasks = list(summaries)
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.5 * len(tasks), 4.8), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for r in summaries[task]["methods"]:
            eff = (r.get("params") or {}).get("adapter_effective")
            if r["test_mean"] is None:
                continue
            if not eff:  # head only: the floor, drawn as a band
                ax.axhline(r["test_mean"], color="grey", ls="--", lw=1, label=f"{r['method']} (floor)")
                ax.axhspan(r["test_mean"] - r["test_std"], r["test_mean"] + r["test_std"], color="grey", alpha=0.15)
                continue
            style = {"fmt": "s", "color": "black"} if r["kind"] in ("lora", "oft", "boft", "full") else {"fmt": "o"}
            ax.errorbar(eff, r["test_mean"], yerr=r["test_std"], capsize=3, ms=5, **style)
            ax.annotate(r["method"], (eff, r["test_mean"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("trainable adapter parameters (effective, log)")
        ax.set_ylabel("test accuracy (mean ± std over seeds)")
        ax.set_title(task)
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
