"""Mitigation benchmark: block errors raw / post-selected / +M3 / +ZNE / all, at equal total shots.

For pyramid circuits on n qubits, orders {1, 2} (derived: n sign + n magnitude circuits), on
Aer with the noise of FakeManila (n ≤ 5: it has 5 qubits) and of a large device (FakeTorino by
default; each noise model is built once, ``AerSimulator.from_backend`` inside
:class:`~quicq.hardware.aer.AerBackend`). Per (device, n, seed) ``--blocks`` random angle sets;
each variant estimates the same blocks:

* ``raw``: no post-selection, no readout correction, no ZNE — S shots per circuit;
* ``postselect``: Hamming-weight post-selection of the Z-basis circuits;
* ``+m3``: post-selection and M3 readout correction (sign and magnitude circuits);
* ``+zne``: post-selection and ZNE (quicq's default: scales 1, 3, linear fit): 2× the circuits
  at S/2 shots each, so the same total shots per estimate;
* ``all``: post-selection + M3 + ZNE (1, 3);
* ``+zne135`` / ``all135``: the same with scales 1, 3, 5 (linear fit) at S/3 shots each.

raw/postselect/+m3 are computed from the *same* sampled shots (different estimators of one data
set); the folded plan (scales 1, 3, 5) is sampled once at S/2 shots per circuit, the (1, 3)
variants use its λ = 1, 3 circuits, the (1, 3, 5) variants the first S/3 shots of every
circuit: paired comparisons, equal total shots. Shots are nearly free here (Aer's cost is per
circuit, not per shot, at these sizes), so the default budget is large enough for the noise
bias — what mitigation removes — to dominate the shot noise. The M3 calibration
(10 000 shots per circuit, 2 circuits per qubit, once per qubit and backend, reused by every
later estimate) is not counted in the per-estimate budget; it is reported separately.

Block error = max |B̂ − B| over the entries of one block (projected estimate vs the exact
engine); the table gives its mean (± standard error over blocks) and max over every block of
both orders, every angle set and seed.

    python benchmarks/mitigation.py [--smoke] [--shots 30000] [--blocks 2] [--seeds 2]
        [--large FakeTorino] [--json results/mitigation.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quicq.circuits import pyramid
from quicq.hardware.outcome import Outcome
from quicq.hardware.tomography import BlockTomography

VARIANTS = ("raw", "postselect", "+m3", "+zne", "all", "+zne135", "all135")
ORDERS = (1, 2)


def block_errors(plan: BlockTomography, red: dict[str, Any], exact: list[np.ndarray]) -> np.ndarray:
    """(blocks·orders,) max-abs entry error of every estimated block."""
    errs = [np.abs(red["blocks"][k] - e).max(axis=(-1, -2)) for k, e in zip(plan.orders, exact)]
    return np.concatenate(errs)


def run_case(backend: Any, n: int, shots: int, blocks: int, seed: int) -> dict[str, np.ndarray]:
    """Per-variant block errors for one (backend, n, seed)."""
    c = pyramid(n)
    th = np.random.default_rng(seed).uniform(-math.pi, math.pi, (blocks, c.n_params))
    exact = [e.numpy() for e in BlockTomography(c, ORDERS).exact(torch.as_tensor(th))]
    raw = BlockTomography(c, ORDERS, postselect=False)
    ps = BlockTomography(c, ORDERS)
    z13 = BlockTomography(c, ORDERS, zne=(1, 3))
    z135 = BlockTomography(c, ORDERS, zne=(1, 3, 5))
    mit = backend.readout_mitigator()
    out: dict[str, np.ndarray] = {}
    base = backend.sample(ps.tasks(th), shots)
    base_m3 = [mit.correct(o) for o in base]
    out["raw"] = block_errors(raw, raw.reduce(base, th, shots), exact)
    out["postselect"] = block_errors(ps, ps.reduce(base, th, shots), exact)
    out["+m3"] = block_errors(ps, ps.reduce(base_m3, th, shots), exact)
    half, third = shots // 2, shots // 3
    folded = backend.sample(z135.tasks(th), half)
    f13 = folded[:len(z13.circuits)]  # z13's circuits are z135's λ = 1, 3 circuits, in order
    f135 = [Outcome(o.n_qubits, third, indices=o.indices[:, :third], physical_qubits=o.physical_qubits)
            for o in folded]
    out["+zne"] = block_errors(z13, z13.reduce(f13, th, half), exact)
    out["all"] = block_errors(z13, z13.reduce([mit.correct(o) for o in f13], th, half), exact)
    out["+zne135"] = block_errors(z135, z135.reduce(f135, th, third), exact)
    out["all135"] = block_errors(z135, z135.reduce([mit.correct(o) for o in f135], th, third), exact)
    return out


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("qiskit", "qiskit-aer", "qiskit-ibm-runtime", "mthree", "numpy", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="FakeManila only, n = 3, 1 seed, few shots (CI)")
    ap.add_argument("--shots", type=int, default=30000, help="shots per circuit of the unfolded plan (default: %(default)s)")
    ap.add_argument("--blocks", type=int, default=2, help="random angle sets per (device, n, seed) (default: %(default)s)")
    ap.add_argument("--seeds", type=int, default=2, help="seeds per (device, n) (default: %(default)s)")
    ap.add_argument("--large", default="FakeTorino", help="large fake device (default: %(default)s)")
    ap.add_argument("--nmax", type=int, default=8, help="largest n on the large device (default: %(default)s)")
    ap.add_argument("--json", help="write the results as JSON (e.g. results/mitigation.json)")
    args = ap.parse_args(argv)
    if args.shots < 3 or args.blocks <= 0 or args.seeds <= 0:
        ap.error("--shots ≥ 3, --blocks and --seeds positive")
    torch.set_num_threads(1)
    from quicq.hardware.aer import AerBackend

    if args.smoke:
        plan = [("FakeManilaV2", [3])]
        shots, seeds, blocks = 600, 1, 2  # divisible by 6
    else:
        plan = [("FakeManilaV2", [4, 5]), (args.large, list(range(4, args.nmax + 1)))]
        shots, seeds, blocks = args.shots - args.shots % 6, args.seeds, args.blocks
    t_start = time.perf_counter()
    rows = []
    for device, ns in plan:
        t = time.perf_counter()
        backend = AerBackend(shots, noise=device, seed=12345)
        build_s = time.perf_counter() - t
        for n in ns:
            t = time.perf_counter()
            errs: dict[str, list[np.ndarray]] = {v: [] for v in VARIANTS}
            for s in range(seeds):
                for v, e in run_case(backend, n, shots, blocks, seed=1000 * n + s).items():
                    errs[v].append(e)
            row: dict[str, Any] = {"device": backend.name, "n": n, "blocks": blocks * seeds * len(ORDERS),
                                   "seconds": time.perf_counter() - t, "noise_build_s": build_s}
            for v in VARIANTS:
                e = np.concatenate(errs[v])
                row[v] = {"mean": float(e.mean()), "sem": float(e.std(ddof=1) / math.sqrt(e.size)) if e.size > 1 else 0.0,
                          "max": float(e.max())}
            row["ratio_all_vs_raw"] = row["raw"]["mean"] / row["all"]["mean"]
            rows.append(row)
            print(f"{backend.name} n={n}: " + "  ".join(f"{v} {row[v]['mean']:.4f}" for v in VARIANTS)
                  + f"  ({row['seconds']:.0f} s)", flush=True)
        cal = backend.readout_mitigator().report()
        for r in rows:
            if r["device"] == backend.name:
                r["m3_calibration"] = cal
    head = f"{'device':<18} {'n':>2} " + " ".join(f"{v:>19}" for v in VARIANTS) + f" {'raw/all':>7}"
    print(f"\nmitigation benchmark: pyramid, orders {{1,2}} derived, {shots} shots per circuit "
          f"(ZNE: {shots // 2} per circuit at 2 scales, {shots // 3} at 3), mean ± sem (max) block error")
    print(head)
    print("-" * len(head))
    for r in rows:
        cells = " ".join(f"{r[v]['mean']:.3f}±{r[v]['sem']:.3f} ({r[v]['max']:.2f})".rjust(19) for v in VARIANTS)
        print(f"{r['device']:<18} {r['n']:>2} {cells} {r['ratio_all_vs_raw']:>7.2f}")
    mean_ratio = float(np.mean([r["ratio_all_vs_raw"] for r in rows]))
    met = all(r["ratio_all_vs_raw"] >= 2 for r in rows)
    print(f"\ngoal (all ≥ 2× lower mean block error than raw, every row): {'met' if met else 'MISSED'}; "
          f"mean ratio {mean_ratio:.2f}")
    if args.json:
        doc = {
            "commit": _git("rev-parse", "HEAD"), "dirty": bool(_git("status", "--porcelain")),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_avg": list(os.getloadavg()), "python": platform.python_version(), "versions": _versions(),
            "shots_per_circuit": shots,
            "zne": {"+zne/all": {"scales": [1, 3], "fit": "linear", "shots_per_circuit": shots // 2},
                    "+zne135/all135": {"scales": [1, 3, 5], "fit": "linear", "shots_per_circuit": shots // 3}},
            "seconds_total": time.perf_counter() - t_start, "goal_met": met, "mean_ratio_all_vs_raw": mean_ratio,
            "rows": rows,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
