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
* ``all``: post-selection + M3 + ZNE;
* ``signed``, ``signed+m3``, ``signed+zne``, ``signed+m3+zne``: the signed-only plan
  (``magnitudes=False``: n sign circuits, no Z-basis magnitudes, hence nothing to post-select)
  at 2S shots per circuit, or 2 ZNE scales at S each. Its estimate is linear in the shot
  frequencies, so ZNE extrapolates it cleanly; the magnitudes sign(x)·√p̂ are post-selected and
  renormalised, which is not linear in the noise.

``signed+zne`` is quicq's chosen default for noisy devices
(:data:`quicq.hardware.mitigation.NOISY_BLOCK_TOMOGRAPHY`, the demo's mitigated path; its plan is
built from that constant): the JSON reports its ratio to raw per row and its goal separately.

Two samplings per (device, n, seed) serve every variant: the unfolded plan at 2S shots per
circuit and the folded plan (λ = 1, 3) at S; each variant takes the circuits it needs and the
first shots up to its budget — paired comparisons at equal total shots (2n·S per binding).
Shots are nearly free here (Aer's cost is per circuit, not per shot, at these sizes), so the
default budget is large enough for the noise bias — what mitigation removes — to show above
the shot noise. ZNE with scales 1, 3, 5 was measured in a pilot and is not repeated here (see
:class:`quicq.hardware.mitigation.ZNE`).

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
from quicq.hardware.mitigation import NOISY_BLOCK_TOMOGRAPHY
from quicq.hardware.outcome import Outcome
from quicq.hardware.tomography import BlockTomography

VARIANTS = ("raw", "postselect", "+m3", "+zne", "all", "signed", "signed+m3", "signed+zne", "signed+m3+zne")
DEFAULT = "signed+zne"  # NOISY_BLOCK_TOMOGRAPHY
ORDERS = (1, 2)


def block_errors(plan: BlockTomography, red: dict[str, Any], exact: list[np.ndarray]) -> np.ndarray:
    """(blocks·orders,) max-abs entry error of every estimated block."""
    errs = [np.abs(red["blocks"][k] - e).max(axis=(-1, -2)) for k, e in zip(plan.orders, exact)]
    return np.concatenate(errs)


def _subset(outcomes: list[Outcome], labels: tuple[str, ...], plan: BlockTomography, shots: int) -> list[Outcome]:
    """The outcomes of ``plan``'s circuits (matched by label), cut to their first ``shots`` shots."""
    by_label = dict(zip(labels, outcomes))
    out = []
    for lab in plan.labels:
        o = by_label[lab]
        out.append(Outcome(o.n_qubits, shots, indices=o.indices[:, :shots], physical_qubits=o.physical_qubits))
    return out


def run_case(backend: Any, n: int, shots: int, blocks: int, seed: int) -> dict[str, np.ndarray]:
    """Per-variant block errors for one (backend, n, seed); every variant spends 2n·shots per binding."""
    c = pyramid(n)
    th = np.random.default_rng(seed).uniform(-math.pi, math.pi, (blocks, c.n_params))
    exact = [e.numpy() for e in BlockTomography(c, ORDERS).exact(torch.as_tensor(th))]
    plans = {
        "raw": BlockTomography(c, ORDERS, postselect=False),
        "postselect": BlockTomography(c, ORDERS),
        "zne": BlockTomography(c, ORDERS, zne=(1, 3)),
        "signed": BlockTomography(c, ORDERS, magnitudes=False),
        "signed_zne": BlockTomography(c, ORDERS, **NOISY_BLOCK_TOMOGRAPHY),  # the chosen default
    }
    assert plans["signed_zne"].zne.scales == plans["zne"].zne.scales  # folded circuits shared with +zne
    mit = backend.readout_mitigator()
    # Two samplings serve every variant: the unfolded plan at 2S and the folded one at S.
    base_plan, fold_plan = plans["postselect"], plans["zne"]
    base = backend.sample(base_plan.tasks(th), 2 * shots)
    folded = backend.sample(fold_plan.tasks(th), shots)
    data = {  # variant → (plan, outcomes, shots per circuit); 2n·S shots per binding each
        "raw": (plans["raw"], _subset(base, base_plan.labels, plans["raw"], shots), shots),
        "postselect": (base_plan, _subset(base, base_plan.labels, base_plan, shots), shots),
        "+zne": (fold_plan, _subset(folded, fold_plan.labels, fold_plan, shots // 2), shots // 2),
        "signed": (plans["signed"], _subset(base, base_plan.labels, plans["signed"], 2 * shots), 2 * shots),
        "signed+zne": (plans["signed_zne"], _subset(folded, fold_plan.labels, plans["signed_zne"], shots), shots),
    }
    out: dict[str, np.ndarray] = {}
    for name, (plan, outs, s) in data.items():
        out[name] = block_errors(plan, plan.reduce(outs, th, s), exact)
        if name != "raw":
            corrected = [mit.correct(o) for o in outs]
            tag = {"postselect": "+m3", "+zne": "all", "signed": "signed+m3", "signed+zne": "signed+m3+zne"}[name]
            out[tag] = block_errors(plan, plan.reduce(corrected, th, s), exact)
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
            row["ratio_signed_all_vs_raw"] = row["raw"]["mean"] / row["signed+m3+zne"]["mean"]
            row["ratio_default_vs_raw"] = row["raw"]["mean"] / row[DEFAULT]["mean"]
            rows.append(row)
            print(f"{backend.name} n={n}: " + "  ".join(f"{v} {row[v]['mean']:.4f}" for v in VARIANTS)
                  + f"  ({row['seconds']:.0f} s)", flush=True)
        cal = backend.readout_mitigator().report()
        for r in rows:
            if r["device"] == backend.name:
                r["m3_calibration"] = cal
    head = f"{'device':<18} {'n':>2} " + " ".join(f"{v:>19}" for v in VARIANTS) + f" {'raw/all':>7} {'raw/s-all':>9}"
    print(f"\nmitigation benchmark: pyramid, orders {{1,2}} derived, {shots} shots per circuit "
          f"(ZNE: {shots // 2} at 2 scales; signed-only: {2 * shots}, with ZNE {shots}), mean ± sem (max) block error")
    print(head)
    print("-" * len(head))
    for r in rows:
        cells = " ".join(f"{r[v]['mean']:.3f}±{r[v]['sem']:.3f} ({r[v]['max']:.2f})".rjust(19) for v in VARIANTS)
        print(f"{r['device']:<18} {r['n']:>2} {cells} {r['ratio_all_vs_raw']:>7.2f} {r['ratio_signed_all_vs_raw']:>9.2f}")
    mean_ratio = float(np.mean([r["ratio_all_vs_raw"] for r in rows]))
    mean_signed = float(np.mean([r["ratio_signed_all_vs_raw"] for r in rows]))
    met = all(r["ratio_all_vs_raw"] >= 2 for r in rows)
    met_signed = all(r["ratio_signed_all_vs_raw"] >= 2 for r in rows)
    mean_default = float(np.mean([r["ratio_default_vs_raw"] for r in rows]))
    met_default = all(r["ratio_default_vs_raw"] >= 2 for r in rows)
    print(f"\ngoal (combined mitigation ≥ 2× lower mean block error than raw, every row): "
          f"all {'met' if met else 'MISSED'} (mean ratio {mean_ratio:.2f}); signed+m3+zne "
          f"{'met' if met_signed else 'MISSED'} (mean ratio {mean_signed:.2f}); the default {DEFAULT} "
          f"{'met' if met_default else 'MISSED'} (mean ratio {mean_default:.2f})")
    if args.json:
        doc = {
            "commit": _git("rev-parse", "HEAD"), "dirty": bool(_git("status", "--porcelain")),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_avg": list(os.getloadavg()), "python": platform.python_version(), "versions": _versions(),
            "shots_per_circuit": shots,
            "zne": {"scales": [1, 3], "fit": "linear"},
            "shots_per_circuit_by_variant": {"raw/postselect/+m3": shots, "+zne/all": shots // 2,
                                             "signed/signed+m3": 2 * shots, "signed+zne/signed+m3+zne": shots},
            "seconds_total": time.perf_counter() - t_start, "goal_met_all": met, "goal_met_signed": met_signed,
            "mean_ratio_all_vs_raw": mean_ratio, "mean_ratio_signed_all_vs_raw": mean_signed,
            "default_variant": DEFAULT, "default_options": {k: v for k, v in NOISY_BLOCK_TOMOGRAPHY.items()},
            "goal_met_default": met_default, "mean_ratio_default_vs_raw": mean_default,
            "rows": rows,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
