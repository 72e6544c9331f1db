"""Plots and the result table of ``quicq demo`` (:mod:`quicq.demo` computes, this module draws)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from quicq.training.atomic import atomic_write_bytes

__all__ = ["plots", "summary_table"]


def smooth(xs: Sequence[float], w: int) -> np.ndarray:
    """Moving average over w points (the input itself when it is shorter)."""
    a = np.asarray(xs, dtype=float)
    if len(a) < w or w <= 1:
        return a
    return np.convolve(a, np.ones(w) / w, mode="valid")


def plots(out: Path, curves: dict[str, list[float]], hybrid: dict[str, list[float]],
          heat: list[tuple[str, np.ndarray]], circuit: Any) -> dict[str, str]:
    """Training curves, block-error heatmaps and the circuit drawing; returns name → file."""
    from quicq._optional import require

    require("matplotlib", "plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    w = max(1, min(20, min(len(v) for v in curves.values()) // 5))
    for label, ys in curves.items():
        axes[0].plot(np.arange(len(smooth(ys, w))) + w, smooth(ys, w), label=label)
    axes[0].set(title=f"exact fine-tuning (moving average over {w} steps)", xlabel="step", ylabel="training loss")
    axes[0].legend()
    for label, ys in hybrid.items():
        axes[1].plot(np.arange(len(ys)), ys, marker="o", label=label)
    axes[1].set(title="hybrid training: adapter angles only", xlabel="optimizer steps taken",
                ylabel="loss on the fixed batch")
    axes[1].legend()
    fig.tight_layout()
    p = out / "training_curves.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    files["training_curves"] = str(p)

    fig, axes = plt.subplots(2, len(heat) // 2, figsize=(4 * (len(heat) // 2), 7), squeeze=False)
    vmax = max(float(h.max()) for _, h in heat) or 1.0
    for ax, (title, h) in zip(axes.T.ravel(), heat):
        im = ax.imshow(h, cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.8, label="|estimated − exact|")
    p = out / "block_errors.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    files["block_errors"] = str(p)

    from quicq.circuits.qiskit_io import to_qiskit

    qc = to_qiskit(circuit)
    try:
        fig = qc.draw("mpl")
        p = out / "circuit.png"
        fig.savefig(p, dpi=110, bbox_inches="tight")
        plt.close(fig)
    except Exception:  # noqa: BLE001 - pylatexenc missing or a drawer problem: text drawing instead
        p = out / "circuit.txt"
        atomic_write_bytes(p, (str(qc.draw("text")) + "\n").encode())
    files["circuit"] = str(p)
    return files


def summary_table(summary: dict[str, Any]) -> str:
    """The demo's result table as plain text."""
    s = summary["settings"]
    f = summary["finetune"]
    rows: list[tuple[str, str, str]] = [
        ("task", f"digits 0–4 → 5–9 ({f['train_images']} train / {f['test_images']} test images)", ""),
        ("adapter", (f"QuIC pyramid on {', '.join(f['adapted_modules'])}: {f['adapter_angles']} angles, "
                     f"{f['qubits']}-qubit circuits, orders {s['orders']}"), ""),
        ("accuracy", "head only (exact training)", f"{f['accuracy_head_only']:.4f}"),
        ("", "QuIC + head, exact blocks", f"{f['accuracy_quic_exact']:.4f}"),
    ]
    for e in summary["estimates"]:
        extra = f"max|ΔB| {e['max_abs_error']:.3f}"
        if e.get("magnitude_mean_abs_error") is not None:
            extra += f", |U|_Z err {e['magnitude_mean_abs_error']:.3f}"
        if e["kept_fraction"] is not None:
            extra += f", kept {e['kept_fraction']:.2f}"
        rows.append(("", f"QuIC, blocks from {e['condition']} ({extra})", f"{e['test_accuracy']:.4f}"))
    for label, r in summary["hybrid"]["runs"].items():
        rows.append(("hybrid" if label.startswith("Aer") else "",
                     f"{label}: loss before → after {summary['hybrid']['steps']} steps",
                     f"{r['losses'][0]:.4f} → {r['losses'][-1]:.4f}"))
    p = summary["plan"]
    if p["qpu_seconds_per_step"] is not None:
        rows.append(("real device", (f"{p['backend']}: est. QPU time per training step "
                                     f"({p['circuits_per_step']:,} circuit executions)"),
                     f"{p['qpu_seconds_per_step'] / 60:.1f} min"))
    rows.append(("time", "total wall time", f"{summary['total_seconds']:.0f} s"))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    rule = "-" * (w0 + w1 + w2 + 4)
    lines = [rule] + [f"{a:<{w0}}  {b:<{w1}}  {c:>{w2}}" for a, b, c in rows] + [rule]
    return "\n".join(lines)
