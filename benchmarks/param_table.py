"""Trainable-parameter table: every QuIC parameterization and Quantum-PEFT beside LoRA r=8.

Counts come from :mod:`quicq.adapters.counts` on models built from their configs on the meta
device (no weights, no downloads), so the whole table takes a few seconds:

    python benchmarks/param_table.py            # markdown to stdout
    python benchmarks/param_table.py --json out/param_table.json

QuIC uses K = {1, 2} (``--orders``) and the row's number of blocks N; Cayley is n² per block
(the paper's storage), the circuit layouts count their angles. The rows marked "paper" are the
configurations whose Cayley counts the QuIC paper reports (34,848 / 495,616 / 135,000).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quicq.adapters.counts import count_model, linear_shapes, reference_meta_model  # noqa: E402

ENCODER_LINEAR = r".*layer\.\d+\..*"  # every Linear inside a transformer block (no pooler / head)


@dataclass(frozen=True)
class Row:
    label: str
    model: str
    targets: Any
    n_blocks: int


ROWS = (
    Row("MiniLM-L6 q,v", "minilm-l6", ["query", "value"], 1),
    Row("MiniLM-L6 all linear", "minilm-l6", ENCODER_LINEAR, 1),
    Row("DeBERTaV3-base output.dense (paper)", "deberta-v3-base", ["output.dense"], 3),
    Row("DeBERTaV3-base all linear", "deberta-v3-base", ENCODER_LINEAR, 3),
    Row("LLaMA-7B q,v (paper)", "llama-7b", ["q_proj", "v_proj"], 4),
    Row("DINOv2-large q,k,v (paper)", "dinov2-large", ["q_proj", "k_proj", "v_proj"], 3),
)


def columns(orders: tuple[int, ...], lora_r: int, qpeft_rank: int, brick_layers: int) -> list[tuple[str, str, dict]]:
    """(column title, counts method, keyword arguments); ``n_blocks`` is filled in per row."""
    quic = {"orders": orders}
    return [
        (f"LoRA r={lora_r}", "lora", {"r": lora_r}),
        ("QuIC pyramid", "quic", {**quic, "parameterization": "pyramid"}),
        ("QuIC butterfly", "quic", {**quic, "parameterization": "butterfly"}),
        (f"QuIC brick L={brick_layers}", "quic", {**quic, "parameterization": "brick", "n_layers": brick_layers}),
        ("QuIC cayley", "quic", {**quic, "parameterization": "cayley"}),
        (f"QPEFT K={qpeft_rank} L=1", "qpeft", {"rank": qpeft_rank, "n_layers": 1}),
        (f"QPEFT K={qpeft_rank} L=2", "qpeft", {"rank": qpeft_rank, "n_layers": 2}),
    ]


def build_table(orders: tuple[int, ...] = (1, 2), lora_r: int = 8, qpeft_rank: int = 8,
                brick_layers: int = 4) -> list[dict[str, Any]]:
    """One dict per row: label, modules, N, and each column's count."""
    models: dict[str, Any] = {}
    cols = columns(orders, lora_r, qpeft_rank, brick_layers)
    table = []
    for row in ROWS:
        if row.model not in models:
            models[row.model] = reference_meta_model(row.model)
        model = models[row.model]
        entry: dict[str, Any] = {"row": row.label, "modules": len(linear_shapes(model, row.targets)), "N": row.n_blocks}
        for title, method, kw in cols:
            if method == "quic":
                kw = {**kw, "n_blocks": row.n_blocks}
            entry[title] = count_model(model, row.targets, method, **kw)
        table.append(entry)
    return table


def to_markdown(table: list[dict[str, Any]], lora_col: str) -> str:
    """Counts table, then the same with each entry as 'LoRA ÷ count' (× fewer than LoRA)."""
    keys = [k for k in table[0] if k not in ("row", "modules", "N")]
    head = "| configuration | modules | N | " + " | ".join(keys) + " |"
    sep = "|---|---:|---:|" + "---:|" * len(keys)
    counts = [head, sep] + [
        f"| {e['row']} | {e['modules']} | {e['N']} | " + " | ".join(f"{e[k]:,}" for k in keys) + " |" for e in table
    ]
    rkeys = [k for k in keys if k != lora_col]
    rhead = f"| × fewer than {lora_col} | " + " | ".join(rkeys) + " |"
    ratios = [rhead, "|---|" + "---:|" * len(rkeys)] + [
        f"| {e['row']} | " + " | ".join(f"{e[lora_col] / e[k]:.1f}×" for k in rkeys) + " |" for e in table
    ]
    return "\n".join(counts) + "\n\n" + "\n".join(ratios)


def main(argv: list[str] | None = None) -> int:
    import torch

    torch.set_num_threads(1)  # any timing here is comparable across runs on shared cores
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", default="1,2", help="QuIC Hamming weights K (default: %(default)s)")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--qpeft-rank", type=int, default=8)
    p.add_argument("--brick-layers", type=int, default=4)
    p.add_argument("--json", help="also write the table as JSON to this path")
    args = p.parse_args(argv)
    orders = tuple(int(k) for k in args.orders.split(",") if k.strip())
    t0 = time.perf_counter()
    table = build_table(orders, args.lora_r, args.qpeft_rank, args.brick_layers)
    print(f"Adapter trainable parameters (QuIC K={{{','.join(map(str, orders))}}}; task heads not counted)\n")
    print(to_markdown(table, f"LoRA r={args.lora_r}"))
    print(f"\n({time.perf_counter() - t0:.1f} s, meta-device models)")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"orders": orders, "table": table}, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
