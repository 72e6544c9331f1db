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
    python benchmarks/engine.py --pauli-only [--repeats 9]   # writes results/engine_pauli.json

The Pauli section (``pauli_benchmark``) times ``pauli_columns`` forward+backward with the
fused engine against the previous statevector engine, interleaved, in CPU and wall time.
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


# ----------------------------------------------------------------------------- Pauli columns


def _pauli_old(circuit, th, K):
    """The previous engine: generic statevector simulation of the physical circuit."""
    from quicq.circuits import code_indices
    from quicq.engine import statevector_block

    code = code_indices(int(circuit.meta["N"]))
    return statevector_block(circuit, th, code[:K], code)


def pauli_benchmark(repeats: int = 9, quick: bool = False) -> dict:
    """pauli_columns forward+backward: the fused engine vs the statevector engine, interleaved.

    Cases: N = 768, K = 8, L = 1 for one angle set and a batch of 24 (as the layer stacks the
    U/V circuits of 12 modules of one width), float32 and float64; also N = 384. Each repeat
    times old then new back to back; medians of wall time and of process CPU time (the CPU
    time is the robust number on a shared machine), and their ratios.
    """
    import os

    from quicq.circuits import pauli
    from quicq.engine import pauli_columns

    torch.set_num_threads(1)
    cases = [(768, 8, 1, 1, torch.float32), (768, 8, 1, 1, torch.float64), (768, 8, 1, 24, torch.float32),
             (768, 8, 1, 24, torch.float64), (384, 8, 1, 24, torch.float32)]
    if quick:
        cases, repeats = [(24, 4, 1, 1, torch.float64), (24, 4, 1, 3, torch.float32)], 3
    rows = []
    for N, K, L, B, dt in cases:
        c = pauli(N, L)
        th = torch.randn(*((B,) if B > 1 else ()), c.n_params, dtype=dt, requires_grad=True)
        w = torch.randn(*th.shape[:-1], N, K, dtype=dt)

        def step(fn):
            def run() -> None:
                th.grad = None
                (w * fn(c, th, K)).sum().backward()
            return run

        fns = {"old": step(_pauli_old), "new": step(pauli_columns)}
        wall: dict[str, list[float]] = {k: [] for k in fns}
        cpu: dict[str, list[float]] = {k: [] for k in fns}
        inner = 1 if quick else (5 if B > 1 else 20)
        for f in fns.values():
            f()
        for _ in range(repeats):
            for name, f in fns.items():
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(inner):
                    f()
                wall[name].append((time.perf_counter() - t0) / inner)
                cpu[name].append((time.process_time() - c0) / inner)
        med = {f"{k}_{kind}_ms": 1e3 * statistics.median(v) for kind, d in (("wall", wall), ("cpu", cpu))
               for k, v in d.items()}
        rows.append({"N": N, "K": K, "n_layers": L, "batch": B, "dtype": str(dt).removeprefix("torch."), **med,
                     "speedup_wall": med["old_wall_ms"] / med["new_wall_ms"],
                     "speedup_cpu": med["old_cpu_ms"] / med["new_cpu_ms"],
                     "new_batch_cost_vs_single": None})
    single = {(r["N"], r["dtype"]): r["new_cpu_ms"] for r in rows if r["batch"] == 1}
    for r in rows:
        if r["batch"] > 1 and (r["N"], r["dtype"]) in single:
            r["new_batch_cost_vs_single"] = r["new_cpu_ms"] / single[(r["N"], r["dtype"])]
    print(f"{'N':>5} {'K':>3} {'B':>3} {'dtype':>8} {'old ms':>9} {'new ms':>8} {'×':>6}  (CPU time; wall in JSON)")
    for r in rows:
        print(f"{r['N']:5d} {r['K']:3d} {r['batch']:3d} {r['dtype']:>8} {r['old_cpu_ms']:9.3f} "
              f"{r['new_cpu_ms']:8.3f} {r['speedup_cpu']:6.1f}")
    return {"rows": rows, "repeats": repeats, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "loadavg": os.getloadavg()}


def write_pauli(result: dict, path: Path, argv: list[str] | None) -> None:
    """results/engine_pauli.json with the provenance every result file records."""
    import datetime as dt
    import subprocess
    import sys

    import numpy

    root = Path(__file__).resolve().parent.parent
    result = {"commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                       text=True).stdout.strip(),
              "command": " ".join(["python", "benchmarks/engine.py"] + (argv if argv is not None else sys.argv[1:])),
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "torch": torch.__version__, "numpy": numpy.__version__, **result}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke test)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    ap.add_argument("--pauli-only", action="store_true",
                    help="only the pauli_columns section (old vs fused engine); writes --pauli-json")
    ap.add_argument("--pauli-json", type=Path, default=Path(__file__).resolve().parent.parent / "results"
                    / "engine_pauli.json")
    args = ap.parse_args(argv)
    if args.pauli_only:
        result = pauli_benchmark(max(7, args.repeats), args.quick)
        if not args.quick:
            write_pauli(result, args.pauli_json, argv)
        return result
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
    result = {"rows": rows, "quick": args.quick, "threads": torch.get_num_threads(),
              "pauli": pauli_benchmark(max(7, args.repeats), args.quick)}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
