"""``quicq run`` and the small input parsers the ``quicq`` subcommands share.

``quicq run`` estimates blocks on a backend and reports their error against the exact engine.
Everything is checked before the backend is built or any job submitted: the circuit source, the
orders or columns (a QASM file from ``quicq compile`` uses what its manifest records), the
angles, and every output path (extension, directory writable).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from quicq.errors import QuicqError

__all__ = ["CLIError", "angles_from_spec", "check_output", "cmd_run", "layout_circuit", "parse_orders"]

OUT_SUFFIXES = (".npz", ".json")


class CLIError(QuicqError):
    """A user-facing error: printed as one line, exit code 2."""


def parse_orders(text: str) -> tuple[int, ...]:
    """``"1,2"`` → (1, 2)."""
    try:
        ks = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise CLIError(f"orders must be comma-separated integers like 1,2; got {text!r}") from None
    if not ks or min(ks) < 1:
        raise CLIError(f"orders must be integers ≥ 1, got {text!r}")
    return ks


def layout_circuit(args: argparse.Namespace) -> Any:
    """The circuit of ``--layout/--n/--gate/--n-layers``."""
    from quicq.circuits import build_layout

    extra: dict[str, Any] = {}
    if args.layout == "brick":
        extra["n_layers"] = args.n_layers
    if args.gate:
        extra["gate"] = args.gate
    return build_layout(args.layout, args.n, **extra)


def angles_from_spec(spec: str | None, circuit: Any, *, seed: int, shape: tuple[int, ...] | None = None
                     ) -> tuple[Any, str]:
    """(angles array or None, description) from --angles: zeros | random | FILE (.npy/.json)."""
    import hashlib

    P = circuit.n_params
    shape = shape or (P,)
    if spec is None:
        return None, "symbolic"
    if spec == "zeros":
        return np.zeros(shape), "zeros"
    if spec == "random":
        return np.random.default_rng(seed).uniform(-math.pi, math.pi, size=shape), f"random uniform(-π, π), seed {seed}"
    path = Path(spec)
    if not path.is_file():
        raise CLIError(f"--angles {spec!r}: use 'zeros', 'random' or an existing .npy/.json file of {P} angles")
    try:
        arr = np.load(path, allow_pickle=False) if path.suffix == ".npy" else json.loads(path.read_text())
        arr = np.asarray(arr, dtype=float)
    except (ValueError, OSError, TypeError, RecursionError) as exc:
        raise CLIError(f"--angles {path}: unreadable ({exc}); give a .npy array or a JSON list of {P} numbers") from None
    if arr.shape[-1:] != (P,) or not np.all(np.isfinite(arr)):
        raise CLIError(f"--angles {path}: expected finite angles of shape (…, {P}) for this circuit, got {arr.shape}")
    return arr, f"file {path.name} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:12]})"


def check_output(path: Path, suffixes: Sequence[str]) -> None:
    """Fail now (not after a job) if ``path`` has the wrong extension or cannot be written."""
    if path.suffix.lower() not in suffixes:
        raise CLIError(f"--out {path}: use a {' or '.join(suffixes)} file")
    if path.is_dir():
        raise CLIError(f"--out {path} is a directory; give a file name")
    parent = path.parent
    while not parent.exists():  # the nearest existing ancestor must let us create the rest
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"--out {path}: cannot create files in {parent} (not a writable directory)")
    if path.exists() and not os.access(path, os.W_OK):
        raise CLIError(f"--out {path} exists and is not writable")


def _estimate(circuit: Any, angles: np.ndarray, backend: Any, *, orders: Any, columns: Any, args: argparse.Namespace
              ) -> dict[str, Any]:
    """Estimate one circuit's blocks at (B, P) angles; compare with the exact engine."""
    import torch

    if circuit.hw_preserving:
        from quicq.hardware.tomography import BlockTomography

        plan = BlockTomography(circuit, orders, method=args.method, magnitudes=not args.no_magnitudes,
                               postselect=not args.no_postselect)
    else:
        from quicq.hardware.pauli_tomography import PauliTomography

        plan = PauliTomography(circuit, columns or 1, postselect=not args.no_postselect)
    t0 = time.perf_counter()
    res = plan.run(backend, angles, args.shots)
    secs = time.perf_counter() - t0
    exact = [b.detach().numpy() for b in plan.exact(torch.as_tensor(angles, dtype=torch.float64))]
    report = []
    arrays: dict[str, np.ndarray] = {}
    for key, ex in zip(plan.keys, exact):
        est, se = res.blocks[key], res.stderr[key]
        err = np.abs(est - ex)
        kept = res.kept_fraction.get(key)
        z = float(np.max(err / np.maximum(se, 1e-12))) if res.shots else None
        report.append({"key": str(key), "shape": list(est.shape), "max_abs_error": float(err.max()),
                       "mean_abs_error": float(err.mean()), "mean_stderr": float(se.mean()),
                       "max_error_over_stderr": z,
                       "kept_fraction": None if kept is None else float(np.mean(kept))})
        arrays[f"block_{key}"] = est
        arrays[f"stderr_{key}"] = se
        arrays[f"exact_{key}"] = ex
    return {"report": report, "arrays": arrays, "circuits": len(plan.circuits), "seconds": secs,
            "bindings": int(angles.shape[0])}


def _qasm_unit(args: argparse.Namespace) -> dict[str, Any]:
    from quicq.circuits.bundle import manifest_entry
    from quicq.circuits.qasm import from_qasm

    path = Path(args.qasm)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    circuit, bound = from_qasm(text)
    rec = manifest_entry(path) or {}
    angles, source = angles_from_spec(args.angles, circuit, seed=args.seed)
    if angles is None:
        if bound is None:
            raise CLIError(f"{path.name} has free parameters (input angles): pass --angles zeros|random|FILE")
        angles, source = np.asarray(bound, dtype=float), f"bound in {path.name}"
    # explicit flags win; otherwise what the manifest recorded at compile time
    orders = args.orders or (tuple(rec["orders"]) if rec.get("orders") else None)
    columns = args.columns or rec.get("columns")
    return {"module": path.stem, "which": "", "circuit": circuit, "angles": np.atleast_2d(angles),
            "orders": orders, "columns": columns, "source": source + (" (manifest)" if rec else "")}


def cmd_run(args: argparse.Namespace) -> int:
    from quicq.circuits.ir import check_orders
    from quicq.hardware.spec import backend_from_spec
    from quicq.training.atomic import atomic_write_bytes, atomic_write_text
    from quicq.training.loop import show_progress

    out = Path(args.out) if args.out else None
    if out is not None:
        check_output(out, OUT_SUFFIXES)
    units: list[dict[str, Any]] = []
    if args.qasm:
        units.append(_qasm_unit(args))
    elif args.adapter:
        from quicq.adapters.units import adapter_units

        units = [{"module": u.module, "which": u.which, "circuit": u.circuit, "angles": u.angles, "orders": u.orders,
                  "columns": u.columns, "source": f"adapter {Path(args.adapter).name}"}
                 for u in adapter_units(args.adapter)]
    elif args.layout and args.n:
        circuit = layout_circuit(args)
        angles, source = angles_from_spec(args.angles or "random", circuit, seed=args.seed,
                                          shape=(args.blocks, circuit.n_params))
        units.append({"module": f"{args.layout}{args.n}", "which": "", "circuit": circuit,
                      "angles": np.atleast_2d(angles), "orders": args.orders, "columns": None, "source": source})
    else:
        raise CLIError("give a circuit: a QASM file (quicq run FILE.qasm), --adapter DIR, or --layout NAME --n N")
    for u in units:
        if u["circuit"].hw_preserving:
            u["orders"] = check_orders(u["circuit"].n_qubits, u["orders"] or (1,))
    backend = backend_from_spec(args.backend, shots=args.shots, seed=args.seed, retries=args.retries,
                                timeout=args.timeout)
    widest = max(u["circuit"].n_qubits for u in units)
    if backend.max_qubits is not None and widest > backend.max_qubits:
        raise CLIError(f"backend {backend.name} has {backend.max_qubits} qubits but the circuit needs {widest}; "
                       "choose a larger device (e.g. aer-noisy:fake_sherbrooke) or a smaller circuit")
    from tqdm.auto import tqdm

    results = []
    arrays: dict[str, np.ndarray] = {}
    bar = show_progress(not args.no_progress) and len(units) > 1
    for u in tqdm(units, desc="estimating", disable=not bar, leave=False):
        r = _estimate(u["circuit"], u["angles"], backend, orders=u["orders"], columns=u["columns"], args=args)
        tag = u["module"] + (f".{u['which']}" if u["which"] else "")
        results.append({"unit": tag, "qubits": u["circuit"].n_qubits, "angles": u["source"],
                        "orders": None if u["orders"] is None else list(u["orders"]), "columns": u["columns"],
                        **{k: v for k, v in r.items() if k != "arrays"}})
        arrays.update({f"{tag}/{k}": v for k, v in r["arrays"].items()})
    doc = {"backend": backend.name, "shots": args.shots, "method": args.method,
           "magnitudes": not args.no_magnitudes, "postselect": not args.no_postselect, "units": results}
    print(f"backend {backend.name}, {args.shots} shots per circuit")
    print(f"{'unit':<18} {'block':>6} {'shape':>12} {'max|err|':>10} {'mean|err|':>10} {'mean σ':>9} "
          f"{'max z':>7} {'kept':>6}")
    for r in results:
        for row in r["report"]:
            z = "-" if row["max_error_over_stderr"] is None else f"{row['max_error_over_stderr']:.2f}"
            kept = "-" if row["kept_fraction"] is None else f"{row['kept_fraction']:.3f}"
            shape = "×".join(map(str, row["shape"]))
            print(f"{r['unit']:<18} {row['key']:>6} {shape:>12} {row['max_abs_error']:>10.4f} "
                  f"{row['mean_abs_error']:>10.4f} {row['mean_stderr']:>9.4f} {z:>7} {kept:>6}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".npz":
            buf = io.BytesIO()
            np.savez(buf, **{k.replace("/", "__"): v for k, v in arrays.items()})
            atomic_write_bytes(out, buf.getvalue())
            atomic_write_text(out.with_suffix(".json"), json.dumps(doc, indent=1) + "\n")
            print(f"wrote {out} (blocks, stderr, exact) and {out.with_suffix('.json')} (error report)")
        else:
            doc["blocks"] = {k: v.tolist() for k, v in arrays.items()}
            atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
            print(f"wrote {out}")
    return 0
