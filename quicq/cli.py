"""The ``quicq`` command: compile, run, plan, train, demo.

* ``quicq compile`` — a layout (``--layout pyramid --n 5``) or a saved adapter (``--adapter DIR``)
  → OpenQASM 3 (symbolic or bound) and/or 2 (bound) files, optionally every tomography circuit,
  and ``manifest.json`` (files, layout, qubits, slots, angle source, SHA-256).
* ``quicq run`` — a QASM file, layout or adapter → block estimates on a backend (``exact``,
  ``aer``, ``aer-noisy:<fake>``, ``fake:<fake>``, ``ibm:<device>``, ``pennylane:<device>``) →
  ``.npz`` / ``.json`` with an error report against the exact engine.
* ``quicq plan`` — circuits, shots, jobs, transpiled gates and estimated QPU time; nothing submitted.
* ``quicq train`` — the resumable hybrid loop of :mod:`quicq.hardware.train` from a JSON/TOML config.
* ``quicq demo`` — :mod:`quicq.demo`, offline.

Every subcommand validates its input before doing any work and reports problems as one line,
``quicq: error: <what is wrong and what to do>``, with exit code 2 (``--debug`` shows the
traceback instead). Secrets never reach the terminal, logs or files: every message passes
through :func:`quicq.hardware.errors.redact`, and nothing quicq writes contains the IBM token.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

EXIT_USAGE = 2

BACKEND_HELP = ("exact | aer | aer-noisy:<fake> (Aer with a fake IBM device's noise, e.g. aer-noisy:fake_manila) | "
                "fake:<fake> (IBM Runtime local mode) | ibm:<device> (IBM Quantum; needs QISKIT_IBM_TOKEN) | "
                "pennylane:<device> (e.g. pennylane:lightning.qubit)")


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors in quicq's format."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        sys.stderr.write(f"quicq: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


# ---------------------------------------------------------------------------------------------
# Small parsers
# ---------------------------------------------------------------------------------------------


def _orders(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"orders must be comma-separated integers like 1,2; got {text!r}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"orders must be integers ≥ 1, got {text!r}")
    return ks


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {v}")
    return v


def _shots(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"shots must be a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"shots must be a positive integer (shots per circuit), got {v}")
    return v


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_text(path: Path, text: str) -> None:
    from quicq.hardware.train import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())


def _layout_circuit(args: argparse.Namespace) -> Any:
    from quicq.circuits import build_layout

    extra: dict[str, Any] = {}
    if args.layout == "brick":
        extra["n_layers"] = args.n_layers
    if args.gate:
        extra["gate"] = args.gate
    return build_layout(args.layout, args.n, **extra)


def _angles(spec: str | None, circuit: Any, *, seed: int, shape: tuple[int, ...] | None = None) -> tuple[Any, str]:
    """(angles array or None, description) from --angles: zeros | random | FILE (.npy/.json)."""
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
        arr = np.load(path) if path.suffix == ".npy" else np.asarray(json.loads(path.read_text()), dtype=float)
    except (ValueError, OSError) as exc:
        raise CLIError(f"--angles {path}: unreadable ({exc}); give a .npy array or a JSON list of {P} numbers") from None
    arr = np.asarray(arr, dtype=float)
    if arr.shape[-1:] != (P,) or not np.all(np.isfinite(arr)):
        raise CLIError(f"--angles {path}: expected finite angles of shape (…, {P}) for this circuit, got {arr.shape}")
    return arr, f"file {path.name} (sha256 {_sha256(path)[:12]})"


# ---------------------------------------------------------------------------------------------
# Adapters on disk → circuits and angles
# ---------------------------------------------------------------------------------------------


def adapter_units(directory: str | Path) -> list[dict[str, Any]]:
    """Every circuit of a saved quicq adapter with its trained angles.

    Returns dicts ``{"module", "which", "circuit", "angles" (N', P) numpy, "orders" or "columns"}``.
    The adapter is rebuilt on stand-in Linear layers of the recorded sizes (the circuits depend
    on sizes only), so the original model is not needed.
    """
    import dataclasses

    import torch

    from quicq.adapters import QuantumPEFTConfig, get_quicq_model, read_adapter

    loaded = read_adapter(directory)
    config = dataclasses.replace(loaded.config, modules_to_save=None, target_modules=sorted(loaded.meta["modules"]))
    root = torch.nn.Module()
    for name, rec in sorted(loaded.meta["modules"].items()):
        parent = root
        parts = name.split(".")
        for p in parts[:-1]:
            if not hasattr(parent, p):
                parent.add_module(p, torch.nn.Module())
            parent = getattr(parent, p)
        parent.add_module(parts[-1], torch.nn.Linear(int(rec["in_features"]), int(rec["out_features"]), bias=False))
    qm = get_quicq_model(root, config)
    units: list[dict[str, Any]] = []
    with torch.no_grad():
        for name, layer in qm.quicq_layers().items():
            for attr in layer.adapter_layer_names:
                getattr(layer, attr)["default"].copy_(loaded.tensors[f"{name}.{attr}"])
            if isinstance(loaded.config, QuantumPEFTConfig):
                rank = loaded.config.rank
                for which in ("u", "v"):
                    units.append({"module": name, "which": which.upper(), "circuit": layer.circuit("default", which),
                                  "angles": layer.angles("default", which).detach().double().numpy()[None, :],
                                  "columns": rank, "orders": None, "layer": layer})
            else:
                spec = layer.quic_spec["default"]
                units.append({"module": name, "which": "", "circuit": layer.circuit("default"),
                              "angles": layer.angles("default").detach().double().numpy(),
                              "orders": tuple(spec.orders), "columns": None, "layer": layer})
    return units


# ---------------------------------------------------------------------------------------------
# compile
# ---------------------------------------------------------------------------------------------


class _QasmWriter:
    """Writes OpenQASM files into one directory and records each in a manifest entry."""

    def __init__(self, out: Path, versions: Sequence[int]) -> None:
        self.out = out
        self.versions = sorted(set(versions))
        self.files: list[dict[str, Any]] = []

    def emit(self, stem: str, circuit: Any, angles: Any, kind: str, source: str, *,
             only: Sequence[int] | None = None, **info: Any) -> None:
        """``<stem>.qasm`` (OpenQASM 3) and/or ``<stem>.qasm2`` (OpenQASM 2, bound angles only)."""
        from quicq.circuits.qasm import to_qasm2, to_qasm3

        for v in (only or self.versions):
            if v == 2 and angles is None:
                raise CLIError("OpenQASM 2 cannot hold free parameters: add --angles zeros|random|FILE, "
                               "or use --qasm 3 for a symbolic program")
            text = to_qasm2(circuit, angles) if v == 2 else to_qasm3(circuit, angles)
            path = self.out / (f"{stem}.qasm2" if v == 2 else f"{stem}.qasm")
            _write_text(path, text)
            self.files.append({"path": path.name, "format": f"openqasm{v}", "kind": kind,
                               "qubits": circuit.n_qubits, "slots": circuit.n_params, "gates": len(circuit.gates),
                               "angles": source, "sha256": _sha256(path), **info})

    def manifest(self, **fields: Any) -> Path:
        """Write ``manifest.json`` (every file with its SHA-256) and return its path."""
        import quicq

        doc = {"format": "quicq-compile-manifest", "format_version": 1, "quicq_version": quicq.__version__,
               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields, "files": self.files}
        path = self.out / "manifest.json"
        _write_text(path, json.dumps(doc, indent=1) + "\n")
        return path


def compile_adapter(adapter_dir: str | Path, out: str | Path, versions: Sequence[int] = (3,)) -> Path:
    """OpenQASM files of a saved adapter: one symbolic program per distinct circuit (OpenQASM 3)
    and one bound program per block with its trained angles; returns the manifest path."""
    w = _QasmWriter(Path(out), versions)
    units = adapter_units(adapter_dir)
    seen: set[Any] = set()
    for u in units:
        c = u["circuit"]
        tag = u["module"] + (f".{u['which']}" if u["which"] else "")
        layout = str(c.meta.get("layout", ""))
        if c not in seen:  # the symbolic program exists only as OpenQASM 3 (OpenQASM 2 has no parameters)
            seen.add(c)
            w.emit(f"{tag}.circuit", c, None, "circuit", "symbolic", only=[3], module=u["module"], layout=layout)
        for i, th in enumerate(u["angles"]):
            w.emit(f"{tag}.block{i}", c, th, "block", f"adapter {Path(adapter_dir).name}", module=u["module"],
                   block=i, layout=layout,
                   **({"orders": list(u["orders"])} if u["orders"] else {"columns": u["columns"]}))
    return w.manifest(source={"adapter": str(Path(adapter_dir).resolve())},
                      qubits=sorted({u["circuit"].n_qubits for u in units}),
                      modules=sorted({u["module"] for u in units}))


def cmd_compile(args: argparse.Namespace) -> int:
    if args.adapter:
        mpath = compile_adapter(args.adapter, args.out, args.qasm)
        n_files = len(json.loads(mpath.read_text())["files"])
        print(f"wrote {n_files} OpenQASM file(s) and {mpath}")
        return 0
    if args.layout is None or args.n is None:
        raise CLIError("give --layout NAME --n QUBITS (e.g. --layout pyramid --n 5), or --adapter DIR")
    from quicq.circuits.ir import check_orders

    circuit = _layout_circuit(args)
    orders = check_orders(circuit.n_qubits, args.orders)
    angles, source = _angles(args.angles, circuit, seed=args.seed)
    if angles is not None and angles.ndim != 1:
        raise CLIError(f"--angles: compile takes one angle vector of {circuit.n_params} values, got shape {angles.shape}")
    w = _QasmWriter(Path(args.out), args.qasm)
    if angles is None and 2 in w.versions:
        raise CLIError("OpenQASM 2 cannot hold free parameters: add --angles zeros|random|FILE, "
                       "or use --qasm 3 for a symbolic program")
    stem = f"{args.layout}{circuit.n_qubits}"
    w.emit(stem, circuit, angles, "circuit", source, layout=args.layout, orders=list(orders))
    if args.tomography:
        from quicq.hardware.tomography import BlockTomography

        plan = BlockTomography(circuit, orders, method=args.method, magnitudes=not args.no_magnitudes)
        for j, (tc, label) in enumerate(zip(plan.circuits, plan.labels)):
            w.emit(f"{stem}.tomo{j:03d}", tc, angles, "tomography", source, label=label, layout=args.layout)
    mpath = w.manifest(source={"layout": args.layout, "n": circuit.n_qubits, "orders": list(orders),
                               "gate": circuit.gates[0].name if circuit.gates else None,
                               **({"n_layers": args.n_layers} if args.layout == "brick" else {})},
                       qubits=circuit.n_qubits, slots=circuit.n_params, angles=source)
    print(f"wrote {len(w.files)} OpenQASM file(s) and {mpath}")
    return 0


# ---------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------


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


def cmd_run(args: argparse.Namespace) -> int:
    from quicq.hardware.train import backend_from_spec

    units: list[dict[str, Any]] = []
    if args.qasm:
        from quicq.circuits.qasm import from_qasm

        path = Path(args.qasm)
        try:
            text = path.read_text()
        except OSError as exc:
            raise CLIError(f"cannot read {path}: {exc.strerror or exc}") from None
        circuit, bound = from_qasm(text)
        angles, source = _angles(args.angles, circuit, seed=args.seed)
        if angles is None:
            if bound is None:
                raise CLIError(f"{path.name} has free parameters (input angles): pass --angles zeros|random|FILE")
            angles, source = np.asarray(bound, dtype=float), f"bound in {path.name}"
        units.append({"module": path.stem, "which": "", "circuit": circuit, "angles": np.atleast_2d(angles),
                      "orders": args.orders, "columns": args.columns, "source": source})
    elif args.adapter:
        for u in adapter_units(args.adapter):
            units.append({**u, "source": f"adapter {Path(args.adapter).name}"})
    elif args.layout and args.n:
        circuit = _layout_circuit(args)
        angles, source = _angles(args.angles or "random", circuit, seed=args.seed,
                                 shape=(args.blocks, circuit.n_params))
        angles = np.atleast_2d(angles)
        units.append({"module": f"{args.layout}{args.n}", "which": "", "circuit": circuit, "angles": angles,
                      "orders": args.orders, "columns": None, "source": source})
    else:
        raise CLIError("give a circuit: a QASM file (quicq run FILE.qasm), --adapter DIR, or --layout NAME --n N")
    from quicq.circuits.ir import check_orders

    for u in units:
        if u["circuit"].hw_preserving and u["orders"] is not None:
            u["orders"] = check_orders(u["circuit"].n_qubits, u["orders"])
    backend = backend_from_spec(args.backend, shots=args.shots, seed=args.seed, retries=args.retries,
                                timeout=args.timeout)
    widest = max(u["circuit"].n_qubits for u in units)
    if backend.max_qubits is not None and widest > backend.max_qubits:
        raise CLIError(f"backend {backend.name} has {backend.max_qubits} qubits but the circuit needs {widest}; "
                       "choose a larger device (e.g. aer-noisy:fake_sherbrooke) or a smaller circuit")
    from tqdm.auto import tqdm

    results = []
    arrays: dict[str, np.ndarray] = {}
    for u in tqdm(units, desc="estimating", disable=args.no_progress or len(units) < 2, leave=False):
        r = _estimate(u["circuit"], u["angles"], backend, orders=u["orders"] or (1,), columns=u["columns"], args=args)
        tag = u["module"] + (f".{u['which']}" if u["which"] else "")
        results.append({"unit": tag, "qubits": u["circuit"].n_qubits, "angles": u["source"], **{
            k: v for k, v in r.items() if k != "arrays"}})
        arrays.update({f"{tag}/{k}": v for k, v in r["arrays"].items()})
    doc = {"backend": backend.name, "shots": args.shots, "method": args.method,
           "magnitudes": not args.no_magnitudes, "postselect": not args.no_postselect, "units": results}
    # table
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
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".npz":
            import io

            buf = io.BytesIO()
            np.savez(buf, **{k.replace("/", "__"): v for k, v in arrays.items()})
            from quicq.hardware.train import atomic_write_bytes

            atomic_write_bytes(out, buf.getvalue())
            _write_text(out.with_suffix(".json"), json.dumps(doc, indent=1) + "\n")
            print(f"wrote {out} (blocks, stderr, exact) and {out.with_suffix('.json')} (error report)")
        elif out.suffix == ".json":
            doc["blocks"] = {k: v.tolist() for k, v in arrays.items()}
            _write_text(out, json.dumps(doc, indent=1) + "\n")
            print(f"wrote {out}")
        else:
            raise CLIError(f"--out {out}: use a .npz (arrays + a .json report beside it) or .json file")
    return 0


# ---------------------------------------------------------------------------------------------
# plan
# ---------------------------------------------------------------------------------------------


def cmd_plan(args: argparse.Namespace) -> int:
    from quicq.hardware.planner import plan_cost, plan_layout

    common: dict[str, Any] = {
        "shots": args.shots, "gradient": args.gradient, "magnitudes": not args.no_magnitudes, "method": args.method,
        "job_overhead_s": args.job_overhead, "circuit_overhead_s": args.circuit_overhead,
        "progress": not args.no_progress, "pack": args.pack}
    if args.adapter:
        units = adapter_units(args.adapter)
        layers = {u["module"]: u["layer"] for u in units}
        plan = plan_cost(layers, args.backend, **common)
    elif args.config:
        from quicq.hardware.train import build_adapter_skeleton, load_config

        plan = plan_cost(build_adapter_skeleton(load_config(args.config)), args.backend, **common)
    elif args.layout and args.n:
        extra = {"n_layers": args.n_layers}
        plan = plan_layout(args.layout, args.n, orders=args.orders, n_blocks=args.blocks, backend=args.backend,
                           **extra, **common)
    else:
        raise CLIError("give --layout NAME --n N, --adapter DIR or --config TRAIN_CONFIG")
    print(plan.table())
    if args.json:
        _write_text(Path(args.json), json.dumps(plan.to_dict(), indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


# ---------------------------------------------------------------------------------------------
# train / demo
# ---------------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from quicq.hardware.train import load_config, run_config

    cfg = load_config(args.config)
    if args.steps is not None:
        cfg["train"]["steps"] = args.steps
    if args.out is not None:
        cfg["train"]["out"] = args.out
    summary = run_config(cfg, progress=not args.no_progress)
    resumed = f" (resumed from step {summary['resumed_from']})" if summary["resumed_from"] else ""
    losses = summary["losses"]
    print(f"trained {summary['steps']} steps{resumed} on {summary['backend']} with {summary['gradient']} gradients")
    if losses:
        print(f"loss: first {losses[0]:.4f}, last {losses[-1]:.4f}")
    print(f"test accuracy (exact blocks): {summary['test_accuracy_exact_blocks']:.4f}")
    print(f"adapter: {summary['adapter']}   checkpoints: {summary['checkpoints']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from quicq.demo import run_demo

    run_demo(args.out, quick=args.quick, progress=not args.no_progress)
    return 0


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------

MAIN_EPILOG = """\
examples:
  quicq compile --layout pyramid --n 5 --angles random --qasm 2 3 --out out/qasm
  quicq run out/qasm/pyramid5.qasm --backend aer-noisy:fake_manila --shots 4096 --out out/blocks.npz
  quicq plan --layout pyramid --n 5 --orders 1,2 --blocks 4 --backend fake:fake_manila
  quicq train run.toml                 # config keys: quicq train --help
  quicq demo --quick

IBM Quantum: export QISKIT_IBM_TOKEN=<your API key> (and QISKIT_IBM_INSTANCE=<CRN>), then use
--backend ibm:<device>. The token is read from the environment and never printed or saved.
"""


TRAIN_EPILOG = """\
config keys (TOML tables or JSON objects; every key has a default except train.steps):
  [task]     name="digits"  seed=0  train_size=0 (all)  batch_size=32  width=128  pretrain_epochs=8  threads=1
  [adapter]  target_modules=["conv2", "fc1", "fc2"]  block_size=16  orders=[1, 2]
             parameterization="pyramid" (x | butterfly | brick)  n_layers=2  block_share=false
  [backend]  name="exact" (aer | aer-noisy:<fake> | fake:<fake> | ibm:<device> | pennylane:<device>)
             shots=1024 (null: exact)  seed=1  retries=3  retry_delay=1.0  timeout=null
             magnitudes=true  postselect=true
  [train]    steps (required)  gradient="parameter_shift" (exact | spsa | surrogate)  lr=0.01  head_lr=0.01
             spsa_eps=0.1  checkpoint_every=5  keep=2  out="out/train"

example (run.toml):
  [backend]
  name = "aer"
  shots = 1024
  [train]
  steps = 20
  out = "out/run"

  quicq train run.toml               # a kill -9 or a failed job? run it again: it resumes
  quicq train run.toml --steps 40    # extend a finished run to 40 steps
"""


def _add_circuit_source(p: argparse.ArgumentParser, *, blocks: bool = False) -> None:
    g = p.add_argument_group("circuit (layout)")
    g.add_argument("--layout", choices=["pyramid", "x", "butterfly", "brick"], help="block circuit layout")
    g.add_argument("--n", type=_positive_int, help="qubits (block dimension of the unary block)")
    g.add_argument("--orders", type=_orders, default=(1,), help="Hamming weights k, e.g. 1,2 (default: 1)")
    g.add_argument("--gate", choices=["rbs", "fbs"], help="gate of the layout (default: the layout's own)")
    g.add_argument("--n-layers", type=_positive_int, default=2, help="brick layers (brick only; default 2)")
    if blocks:
        g.add_argument("--blocks", type=_positive_int, default=1, help="angle bindings (blocks) per estimate")
    p.add_argument("--adapter", metavar="DIR", help="a saved quicq adapter (adapter_config.json + safetensors)")


def _add_tomo_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", choices=["derived", "direct"], default="derived",
                   help="weight-k blocks as compounds of the unary block (derived) or measured (direct)")
    p.add_argument("--no-magnitudes", action="store_true", help="signed circuits only (n instead of 2n per estimate)")


def build_parser() -> argparse.ArgumentParser:
    import quicq

    parser = _Parser(prog="quicq", formatter_class=_formatter, epilog=MAIN_EPILOG,
                     description="QuIC / Quantum-PEFT adapters as real circuits: compile them, run them on "
                                 "simulators or IBM devices, plan the cost, train through hardware.")
    parser.add_argument("--version", action="version", version=f"quicq {quicq.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("compile", help="circuits → OpenQASM 2/3 files + a JSON manifest", formatter_class=_formatter,
                       description="Write a layout's (or a saved adapter's) circuits as OpenQASM files, with a "
                                   "manifest listing every file, its qubits, slots, angle source and SHA-256.",
                       epilog="examples:\n"
                              "  quicq compile --layout pyramid --n 5 --out out/qasm          # symbolic QASM 3\n"
                              "  quicq compile --layout butterfly --n 8 --orders 1,2 --angles random --qasm 2 3 \\\n"
                              "                --tomography --out out/qasm                   # + every measured circuit\n"
                              "  quicq compile --adapter out/train/adapter --out out/qasm      # trained blocks")
    _add_circuit_source(p)
    p.add_argument("--angles", help="zeros | random | FILE (.npy or JSON list); default: symbolic (QASM 3 inputs)")
    p.add_argument("--seed", type=int, default=0, help="seed of --angles random")
    p.add_argument("--qasm", type=int, nargs="+", choices=[2, 3], default=[3], help="OpenQASM versions (default: 3)")
    p.add_argument("--tomography", action="store_true", help="also write every circuit one block estimate measures")
    _add_tomo_options(p)
    p.add_argument("--out", default="out/qasm", help="output directory (default: %(default)s)")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("run", help="estimate blocks on a backend, with an error report vs exact",
                       formatter_class=_formatter,
                       description="Estimate a circuit's signed orthogonal blocks from shots (DESIGN §5) and compare "
                                   "them with the exact engine: max/mean error, error bars, post-selection kept fraction.",
                       epilog="examples:\n"
                              "  quicq run out/qasm/pyramid5.qasm --angles random --backend aer --shots 4096\n"
                              "  quicq run --layout pyramid --n 5 --orders 1,2 --blocks 4 --backend aer-noisy:fake_manila\n"
                              "  quicq run --adapter out/train/adapter --backend fake:fake_manila --out out/blocks.npz\n\n"
                              f"backends: {BACKEND_HELP}")
    p.add_argument("qasm", nargs="?", help="an OpenQASM 2/3 file (quicq circuits: rbs/fbs/ry/cz… gates)")
    _add_circuit_source(p, blocks=True)
    p.add_argument("--angles", help="zeros | random | FILE; needed for QASM files with free parameters")
    p.add_argument("--columns", type=_positive_int, help="Pauli circuits: columns K to estimate")
    p.add_argument("--backend", default="aer", help="where to run (default: aer); " + BACKEND_HELP)
    p.add_argument("--shots", type=_shots, default=4096, help="shots per circuit (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler and of --angles random")
    p.add_argument("--retries", type=_positive_int, default=3, help="attempts per job (default: 3)")
    p.add_argument("--timeout", type=float, help="seconds per job before it counts as failed")
    p.add_argument("--no-postselect", action="store_true", help="keep outcomes of the wrong Hamming weight")
    _add_tomo_options(p)
    p.add_argument("--out", help="write blocks (.npz + .json report) or everything as .json")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("plan", help="circuits, shots, gates and QPU time of an adapter on a backend",
                       formatter_class=_formatter,
                       description="Plan the cost of block estimates and training steps on a backend; nothing is "
                                   "submitted. See quicq.hardware.planner for the QPU-time model.",
                       epilog="examples:\n"
                              "  quicq plan --layout pyramid --n 5 --orders 1,2 --blocks 4 --backend fake:fake_manila\n"
                              "  quicq plan --layout butterfly --n 16 --backend fake:fake_sherbrooke --gradient spsa\n"
                              "  quicq plan --config train.toml --backend fake:fake_manila --json out/plan.json")
    _add_circuit_source(p, blocks=True)
    p.add_argument("--config", help="a training config (JSON/TOML): plan its adapter")
    p.add_argument("--backend", default="fake:fake_manila", help="device to plan for (default: %(default)s)")
    p.add_argument("--shots", type=_shots, default=4096, help="shots per circuit (default: %(default)s)")
    p.add_argument("--gradient", choices=["parameter_shift", "spsa", "surrogate"], default="parameter_shift")
    p.add_argument("--job-overhead", type=float, default=2.0, help="seconds per job in the time model (default 2)")
    p.add_argument("--circuit-overhead", type=float, default=0.005, help="seconds per circuit execution (default 0.005)")
    p.add_argument("--json", help="also write the plan as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--pack", action="store_true",
                   help="also show packed vs unpacked executions and QPU time (circuits side by side on "
                        "disjoint qubit chains, one job per step direction; quicq.hardware.packing)")
    _add_tomo_options(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("train", help="hybrid training from a JSON/TOML config (resumable)", formatter_class=_formatter,
                       description="Fine-tune a QuIC adapter with blocks from a backend (or the exact engine). "
                                   "Checkpoints are atomic; rerunning the same command resumes after a crash.",
                       epilog=TRAIN_EPILOG)
    p.add_argument("config", help="JSON or TOML config file")
    p.add_argument("--steps", type=int, help="override train.steps")
    p.add_argument("--out", help="override train.out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="end-to-end demo on local simulators (offline)", formatter_class=_formatter,
                       description="Digits 0–4 → 5–9 with a QuIC adapter: exact fine-tuning, QASM 3, block estimates "
                                   "on Aer and a noisy fake IBM device (± post-selection), accuracy with estimated "
                                   "blocks, a short hybrid training run, plots and a summary.",
                       epilog="examples:\n  quicq demo                 # full demo, a few minutes\n"
                              "  quicq demo --quick --out /tmp/demo   # < 1 minute")
    p.add_argument("--out", default="out/demo", help="output directory (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="tiny settings (CI smoke run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
    return parser


def _one_line(exc: BaseException) -> str:
    from quicq.hardware.errors import redact

    text = " ".join(redact(exc).split())
    known = ("CLIError", "ConfigError", "PlanError", "CircuitError", "QasmError", "BackendError",
             "CredentialsError", "BackendTimeoutError", "AdapterConfigError", "AdapterLoadError", "TrainingError",
             "CheckpointError", "ValueError", "FileNotFoundError", "AdapterError")
    name = type(exc).__name__
    if name == "CredentialsError":
        text += (" — from the command line: export QISKIT_IBM_TOKEN=<API key> (and QISKIT_IBM_INSTANCE=<CRN>), "
                 "or run offline with --backend fake:fake_manila / aer-noisy:fake_manila")
    return text if name in known and text else f"{name}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``quicq`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help / --version (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        sys.stderr.write("quicq: interrupted\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line (or a traceback with --debug)
        if args.debug:
            raise
        sys.stderr.write(f"quicq: error: {_one_line(exc)}\n")
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
