"""Hardware-path benchmark: tomography cost, shot-noise accuracy and hybrid-loop overhead vs n.

Rows, for pyramid block circuits on n = 3..8 qubits (``--quick``: 3..4):

* **circuits per estimate** — distinct circuits of one order-1 block estimate with signs and
  magnitudes (goal ≤ 2n) and signed only (goal n); also {1,2} derived (same) and direct.
* **max |B̂ − B| · √shots** on ideal Aer — the largest entry error of projected unary blocks
  at random angles (``--blocks`` bindings), scaled by √shots (goal ≤ 3: every entry within 3
  standard deviations of a single ±1 measurement).
* **hybrid-step overhead** — one training step of a model whose QuIC layer (orders {1,2}, 4
  blocks, n qubits) takes its blocks from Aer with parameter-shift gradients: wall time of the
  step against the time spent waiting for Aer's sampler jobs (the primitive calls, measured by
  wrapping the ``await_job`` of :mod:`quicq.hardware.qiskit_backend`, where every sampler job is
  awaited). Overhead = step / primitive − 1 (goal ≤ 8%), measured inside the same step (paired),
  median over ``--repeats`` steps.
  Everything quicq does around the simulator counts as overhead: building PUBs, unpacking
  bits, tomography reduction, the torch forward/backward and the optimizer (and Qiskit's own
  PUB coercion and job thread start in ``SamplerV2.run``, which happen outside the wait).
  ``overhead_cpu`` is the same ratio in CPU time — the main thread's (quicq, torch) over the
  sampler worker thread's (Aer, one OpenMP thread) — which waiting for a loaded machine's
  cores does not inflate.

Aer runs with one OpenMP thread (see :func:`quicq.hardware.train.backend_from_spec`). Timings
are medians of ``--repeats`` steps after a warm-up step.

    python benchmarks/hardware.py [--quick] [--shots 4096] [--json out/hardware.json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quicq.circuits import pyramid
from quicq.hardware.tomography import BlockTomography


def circuit_counts(n: int) -> dict[str, int]:
    """Distinct circuits per block estimate for the tomography variants."""
    c = pyramid(n)
    return {
        "order1_signed_magnitude": len(BlockTomography(c, (1,), magnitudes=True).circuits),
        "order1_signed_only": len(BlockTomography(c, (1,), magnitudes=False).circuits),
        "orders12_derived": len(BlockTomography(c, (1, 2), method="derived").circuits),
        "orders12_direct": len(BlockTomography(c, (1, 2), method="direct").circuits),
    }


def shot_error(n: int, shots: int, blocks: int, seed: int) -> float:
    """max |B̂ − B| · √shots over ``blocks`` random unary blocks on ideal Aer."""
    from quicq.hardware.train import backend_from_spec

    c = pyramid(n)
    backend = backend_from_spec("aer", shots=shots, seed=seed)
    angles = np.random.default_rng(seed).uniform(-math.pi, math.pi, (blocks, c.n_params))
    plan = BlockTomography(c, (1,))
    est = plan.run(backend, angles).blocks[1]
    exact = plan.exact(torch.as_tensor(angles))[0].numpy()
    return float(np.abs(est - exact).max() * math.sqrt(shots))


class _PrimitiveTimer:
    """Wraps ``quicq.hardware.qiskit_backend.await_job``: total seconds spent waiting for sampler jobs."""

    def __init__(self) -> None:
        from quicq.hardware import qiskit_backend

        self._mod = qiskit_backend
        self._orig = qiskit_backend.await_job
        self.seconds = 0.0

    def __enter__(self) -> _PrimitiveTimer:
        def timed(job: Any, timeout: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return self._orig(job, timeout, **kw)
            finally:
                self.seconds += time.perf_counter() - t

        self._mod.await_job = timed
        return self

    def __exit__(self, *exc: object) -> None:
        self._mod.await_job = self._orig


def hybrid_overhead(n: int, shots: int, repeats: int, seed: int) -> dict[str, float]:
    """Median step time, median primitive time, overhead ratio for a QuIC layer on Aer."""
    from quicq.adapters import QuICConfig, get_quicq_model
    from quicq.hardware.train import HardwareBlockSource, backend_from_spec

    b = n + math.comb(n, 2)  # block size: orders {1,2} fill it exactly
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4 * b, 4 * b), torch.nn.Tanh(), torch.nn.Linear(4 * b, 1))
    qm = get_quicq_model(model, QuICConfig(target_modules=["0"], block_size=b, orders=(1, 2), init_weights=False))
    backend = backend_from_spec("aer", shots=shots, seed=seed)
    qm.set_block_source(HardwareBlockSource(backend, "parameter_shift", seed=seed).prepare(qm))
    opt = torch.optim.Adam([p for p in qm.parameters() if p.requires_grad], lr=0.01)
    x = torch.randn(32, 4 * b, generator=torch.Generator().manual_seed(seed))

    def step() -> None:
        opt.zero_grad()
        loss = qm(x).pow(2).mean()
        loss.backward()
        opt.step()

    step()  # warm-up: transpiles the tomography circuits once
    steps, prims, cpu_ratios = [], [], []
    for _ in range(repeats):
        with _PrimitiveTimer() as timer:
            t, main0, all0 = time.perf_counter(), time.thread_time(), time.process_time()
            step()
            steps.append(time.perf_counter() - t)
            main_cpu, all_cpu = time.thread_time() - main0, time.process_time() - all0
        prims.append(timer.seconds)
        # CPU time, immune to waiting for a loaded machine's cores: Aer simulates in the
        # sampler job's worker thread (one OpenMP thread), quicq and torch run in this one
        cpu_ratios.append(main_cpu / max(all_cpu - main_cpu, 1e-9))
    s, p = statistics.median(steps), statistics.median(prims)
    return {"step_s": s, "primitive_s": p, "overhead": s / p - 1.0, "overhead_cpu": statistics.median(cpu_ratios)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="n = 3..4, fewer repeats (CI smoke)")
    ap.add_argument("--shots", type=int, default=4096, help="shots per circuit (default: %(default)s)")
    ap.add_argument("--blocks", type=int, default=8, help="random blocks per error estimate (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=5, help="timed hybrid steps per n (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    if args.shots <= 0 or args.blocks <= 0 or args.repeats <= 0:
        ap.error("--shots, --blocks and --repeats must be positive")
    torch.set_num_threads(1)
    ns = [3, 4] if args.quick else list(range(3, 9))
    repeats = args.repeats
    shots = min(args.shots, 1024) if args.quick else args.shots
    rows = []
    for n in ns:
        counts = circuit_counts(n)
        err = shot_error(n, shots, args.blocks, args.seed + n)
        hy = hybrid_overhead(n, min(shots, 1024), repeats, args.seed + n)
        rows.append({"n": n, **counts, "max_err_sqrt_shots": err, **hy})
        print(f"n={n} done", flush=True)
    head = (f"{'n':>2} {'circ 1 (2n)':>11} {'signed (n)':>10} {'{1,2} der':>9} {'{1,2} dir':>9} "
            f"{'max|ΔB|√S':>9} {'step s':>8} {'Aer s':>8} {'overhead':>8} {'(CPU)':>7}")
    print()
    print(f"hardware benchmark: pyramid circuits, ideal Aer, {shots} shots (error), "
          f"{min(shots, 1024)} shots (hybrid step), 1 Aer thread")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['n']:>2} {r['order1_signed_magnitude']:>11} {r['order1_signed_only']:>10} "
              f"{r['orders12_derived']:>9} {r['orders12_direct']:>9} {r['max_err_sqrt_shots']:>9.2f} "
              f"{r['step_s']:>8.3f} {r['primitive_s']:>8.3f} {100 * r['overhead']:>7.1f}% "
              f"{100 * r['overhead_cpu']:>6.1f}%")
    ok_c = all(r["order1_signed_magnitude"] <= 2 * r["n"] and r["order1_signed_only"] == r["n"] for r in rows)
    ok_e = all(r["max_err_sqrt_shots"] <= 3 for r in rows)
    ok_o = all(r["overhead"] <= 0.08 for r in rows if r["n"] == 3)
    print(f"\ngoals: circuits ≤ 2n (n signed only): {'met' if ok_c else 'MISSED'}; "
          f"max error·√shots ≤ 3: {'met' if ok_e else 'MISSED'}; hybrid overhead ≤ 8% at n = 3: {'met' if ok_o else 'MISSED'}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        import os
        import subprocess
        import sys
        from datetime import datetime, timezone
        from importlib.metadata import version

        def git(*a: str) -> str:
            return subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()

        doc = {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain")),
               "command": " ".join([Path(sys.executable).name, *sys.argv]),
               "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "load_avg": list(os.getloadavg()), "repeats": repeats,
               "versions": {p: version(p) for p in ("qiskit", "qiskit-aer", "numpy", "torch")},
               "shots": shots, "goal_overhead_n3_met": ok_o, "rows": rows}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
