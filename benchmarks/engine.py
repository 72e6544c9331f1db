"""Engine benchmark: one run, one table, ratios against baselines measured in the same run.

Rows (DESIGN §7 goals from the foundation issue):
  * n=22, orders {1,2}, forward + backward: quicq engine vs a port of the QuIC paper's method
    (dense n×n Givens matrices multiplied in torch, then all k×k minors by itertools subsets and
    batched torch.linalg.det; goal ≥ 10× faster), and vs det-of-minors on the engine's own
    unary block (isolates the compound stage).
  * n=16, order 1: quicq engine vs extracting the block from Aer statevector (goal ≥ 1000×)
    and from PennyLane (default.qubit, lightning.qubit).
  * n=64, k=2 and n=32, k=3 (forward; goal for n=64: < 1 s).

Each timing is the median of ``--repeats`` runs after a warm-up. Timing here is noisy: read the
ratios, not the absolute numbers. ``--quick`` shrinks every size for a CI smoke run.

    python benchmarks/engine.py [--quick] [--repeats 5] [--json out/engine.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import torch

from quicq.circuits import pyramid
from quicq.engine import sector_blocks, unary_block


def timeit(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def dense_givens_product(circuit, angles: torch.Tensor) -> torch.Tensor:
    """Paper-style orthogonal matrix: one dense n×n Givens matrix per gate, multiplied in torch."""
    n = circuit.n_qubits
    U = torch.eye(n, dtype=angles.dtype)
    for g in circuit.gates:
        a, b = g.qubits
        c, s = torch.cos(angles[g.param]), torch.sin(angles[g.param])
        G = torch.eye(n, dtype=angles.dtype)
        G = G.index_put((torch.tensor([a, b, a, b]), torch.tensor([a, b, b, a])), torch.stack([c, c, -s, s]))
        U = G @ U
    return U


def det_minors(U: torch.Tensor, orders) -> list[torch.Tensor]:
    """All k×k minors by itertools subsets, then batched torch.linalg.det (the paper's method)."""
    out = []
    for k in orders:
        S = list(combinations(range(U.shape[-1]), k))
        idx = torch.tensor(S)
        minors = U[idx[:, None, :, None], idx[None, :, None, :]]  # (D, D, k, k)
        out.append(torch.linalg.det(minors))
    return out


def paper_pipeline(circuit, angles, orders) -> list[torch.Tensor]:
    """Baseline 1: dense Givens product + det of minors (what a port of the paper's code does)."""
    return det_minors(dense_givens_product(circuit, angles), orders)


def engine_u_det_minors(circuit, angles, orders) -> list[torch.Tensor]:
    """Baseline 2: the engine's unary block, then det of minors (isolates the compound stage)."""
    return det_minors(unary_block(circuit, angles), orders)


def fwd_bwd(blocks_fn, circuit, orders) -> Callable[[], None]:
    th = torch.randn(circuit.n_params, dtype=torch.float64, requires_grad=True)
    weights = None

    def run() -> None:
        nonlocal weights
        blocks = blocks_fn(circuit, th, orders)
        if weights is None:
            weights = [torch.randn_like(b) for b in blocks]
        loss = sum((w * b).sum() for w, b in zip(weights, blocks))
        th.grad = None
        loss.backward()

    return run


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke test)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    n_det, n_sim, n_big2, n_big3 = (6, 6, 10, 8) if args.quick else (22, 16, 64, 32)
    reps = 1 if args.quick else args.repeats
    rows: list[dict] = []

    def row(name: str, ours: float, base: float | None, base_name: str, goal: str) -> None:
        rows.append({"benchmark": name, "quicq_s": ours, "baseline": base_name,
                     "baseline_s": base, "speedup": (base / ours) if base else None, "goal": goal})

    c = pyramid(n_det)
    t_ours = timeit(fwd_bwd(sector_blocks, c, [1, 2]), reps)
    t_paper = timeit(fwd_bwd(paper_pipeline, c, [1, 2]), reps)
    t_det = timeit(fwd_bwd(engine_u_det_minors, c, [1, 2]), reps)
    row(f"n={n_det} orders{{1,2}} fwd+bwd", t_ours, t_paper, "Givens product+det", "≥10×")
    row(f"n={n_det} orders{{1,2}} fwd+bwd", t_ours, t_det, "engine U+det-of-minors", "")

    c = pyramid(n_sim)
    th = torch.randn(c.n_params, dtype=torch.float64)
    t_ours = timeit(lambda: unary_block(c, th), max(reps, 20))
    from quicq.witnesses.aer import aer_unary_block

    t_aer = timeit(lambda: aer_unary_block(c, th.numpy()), reps)
    row(f"n={n_sim} order 1 block", t_ours, t_aer, "Aer statevector", "≥1000×")
    from quicq.witnesses.pennylane import pennylane_unary_block

    for dev in ("lightning.qubit", "default.qubit"):
        t_pl = timeit(lambda: pennylane_unary_block(c, th.numpy(), device=dev), 1 if not args.quick else 1)
        row(f"n={n_sim} order 1 block", t_ours, t_pl, f"PennyLane {dev}", "")

    for n, k, goal in ((n_big2, 2, "<1 s"), (n_big3, 3, "")):
        c = pyramid(n)
        th = torch.randn(c.n_params, dtype=torch.float64)
        t_f = timeit(lambda: sector_blocks(c, th, [k]), reps)
        t_fb = timeit(fwd_bwd(sector_blocks, c, [k]), max(1, reps // 2))
        row(f"n={n} k={k} forward", t_f, None, "", goal)
        row(f"n={n} k={k} fwd+bwd", t_fb, None, "", "")

    print(f"{'benchmark':28s} {'quicq':>10s} {'baseline':>22s} {'baseline':>10s} {'speedup':>9s} {'goal':>6s}")
    for r in rows:
        b = f"{r['baseline_s']:.4f}s" if r["baseline_s"] else "-"
        s = f"{r['speedup']:.0f}×" if r["speedup"] else "-"
        print(f"{r['benchmark']:28s} {r['quicq_s']:9.4f}s {r['baseline']:>22s} {b:>10s} {s:>9s} {r['goal']:>6s}")
    result = {"rows": rows, "quick": args.quick, "threads": torch.get_num_threads()}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
