"""The ``quicq`` command: compile, run, plan, train, demo.

* ``quicq compile`` — a layout (``--layout pyramid --n 5``) or a saved adapter (``--adapter DIR``)
  → an OpenQASM bundle (:mod:`quicq.circuits.bundle`): QASM 3 (symbolic or bound) and/or 2 files,
  optionally every tomography circuit, and ``manifest.json``.
* ``quicq run`` — a QASM file (settings recorded in its manifest are used), layout or adapter →
  block estimates on a backend (:mod:`quicq.hardware.spec`) → ``.npz`` / ``.json`` with an error
  report against the exact engine (:mod:`quicq.cli_run`).
* ``quicq plan`` — circuits, shots, jobs, transpiled gates and estimated QPU time; nothing submitted.
* ``quicq train`` — :mod:`quicq.training` from a JSON/TOML config (resumable).
* ``quicq demo`` — :mod:`quicq.demo`, offline.

Every subcommand validates its input (including where outputs go) before doing any work, and
reports problems as one line, ``quicq: error: <what is wrong>``, exit code 2. ``--debug``
(before or after the subcommand) shows the traceback instead. Progress bars appear only when
stderr is a terminal. Secrets never reach the terminal, logs or files: every message passes
through :func:`quicq.hardware.errors.redact`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from quicq.circuits.gates import GIVENS_GATES
from quicq.circuits.layouts import LAYOUTS
from quicq.cli_run import CLIError, angles_from_spec, cmd_run, layout_circuit, parse_orders
from quicq.errors import QuicqError
from quicq.hardware.hybrid import GRADIENTS
from quicq.hardware.spec import BACKEND_HELP, BackendSpecError, parse_backend_spec

EXIT_USAGE = 2
TOMOGRAPHY_METHODS = ("derived", "direct")  # see quicq.hardware.tomography.BlockTomography


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors in quicq's format."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        sys.stderr.write(f"quicq: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


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


def _backend(text: str) -> str:
    try:
        return str(parse_backend_spec(text))
    except BackendSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _orders(text: str) -> tuple[int, ...]:
    try:
        return parse_orders(text)
    except CLIError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ---------------------------------------------------------------------------------------------
# compile / plan / train / demo
# ---------------------------------------------------------------------------------------------


def cmd_compile(args: argparse.Namespace) -> int:
    from quicq.circuits.bundle import QasmBundle, compile_adapter

    if args.adapter:
        mpath = compile_adapter(args.adapter, args.out, args.qasm)
        print(f"wrote {len(json.loads(mpath.read_text())['files'])} OpenQASM file(s) and {mpath}")
        return 0
    if args.layout is None or args.n is None:
        raise CLIError("give --layout NAME --n QUBITS (e.g. --layout pyramid --n 5), or --adapter DIR")
    from quicq.circuits.ir import check_orders

    circuit = layout_circuit(args)
    orders = check_orders(circuit.n_qubits, args.orders or (1,))
    angles, source = angles_from_spec(args.angles, circuit, seed=args.seed)
    if angles is not None and angles.ndim != 1:
        raise CLIError(f"--angles: compile takes one angle vector of {circuit.n_params} values, got shape {angles.shape}")
    if angles is None and 2 in args.qasm:
        raise CLIError("OpenQASM 2 cannot hold free parameters: add --angles zeros|random|FILE, "
                       "or use --qasm 3 for a symbolic program")
    w = QasmBundle(args.out, args.qasm)
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


def cmd_plan(args: argparse.Namespace) -> int:
    from quicq.cli_run import check_output
    from quicq.hardware.planner import plan_cost, plan_layout
    from quicq.training.loop import show_progress

    if args.json:
        check_output(Path(args.json), (".json",))
    common: dict[str, Any] = {
        "shots": args.shots, "gradient": args.gradient, "magnitudes": not args.no_magnitudes, "method": args.method,
        "job_overhead_s": args.job_overhead, "circuit_overhead_s": args.circuit_overhead,
        "progress": show_progress(not args.no_progress), "pack": args.pack}
    if args.adapter:
        from quicq.adapters.units import adapter_units

        plan = plan_cost({u.module: u.layer for u in adapter_units(args.adapter)}, args.backend, **common)
    elif args.config:
        from quicq.training.config import load_config
        from quicq.training.run import build_adapter_skeleton

        plan = plan_cost(build_adapter_skeleton(load_config(args.config, require_steps=False)), args.backend,
                         **common)
    elif args.layout and args.n:
        plan = plan_layout(args.layout, args.n, orders=args.orders or (1,), n_blocks=args.blocks,
                           backend=args.backend, n_layers=args.n_layers, **common)
    else:
        raise CLIError("give --layout NAME --n N, --adapter DIR or --config TRAIN_CONFIG")
    print(plan.table())
    if args.json:
        from quicq.training.atomic import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(plan.to_dict(), indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from quicq.training.config import load_config
    from quicq.training.run import run_config

    cfg = load_config(args.config, require_steps=args.steps is None)
    if args.steps is not None:
        cfg["train"]["steps"] = args.steps
    if args.out is not None:
        cfg["train"]["out"] = args.out
    from quicq.training.loop import show_progress

    def report(step: int, path: Path) -> None:  # without a progress bar, one line per checkpoint
        print(f"step {step}/{cfg['train']['steps']}: checkpoint {path.name}", flush=True)

    quiet = not show_progress(not args.no_progress)
    summary = run_config(cfg, progress=not args.no_progress, on_checkpoint=[report] if quiet else [])
    resumed = f" (resumed from step {summary['resumed_from']})" if summary["resumed_from"] else ""
    losses = summary["losses"]
    print(f"trained {summary['steps']} steps{resumed} on {summary['backend']} with {summary['gradient']} gradients")
    hw = summary.get("hardware")
    if hw:  # one model-level bridge: jobs per step do not grow with the number of adapted layers
        print(f"hardware: {len(hw['units'])} adapter circuit(s), {hw['jobs']} job(s), "
              f"{hw['executions']:,} circuit executions (this run)")
    if losses:
        print(f"loss: first {losses[0]:.4f}, last {losses[-1]:.4f}")
    labels = {"validation_exact_blocks": "validation accuracy, exact blocks",
              "exact_blocks": "test accuracy, exact blocks",
              "estimated_blocks": "test accuracy, blocks estimated on the backend",
              "estimated_blocks_raw": "test accuracy, blocks estimated without mitigation"}
    for key, rec in summary["evaluation"].items():
        extra = f" ({rec['backend']}{', ' + ', '.join(rec['options']) if rec.get('options') else ''})" \
            if "backend" in rec else ""
        print(f"{labels.get(key, key)}{extra}: {rec['accuracy']:.4f}")
    print(f"adapter: {summary['adapter']}   checkpoints: {summary['checkpoints']}"
          + (f"   plot: {summary['plot']}" if summary["plot"] else ""))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from quicq.demo import run_demo

    run_demo(args.out, quick=args.quick, progress=not args.no_progress, results=args.results)
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


def train_epilog() -> str:
    """``quicq train --help``'s key list, generated from the config schema."""
    from quicq.training.config import schema_help

    return ("config keys (TOML tables or JSON objects; every key has a default except train.steps):\n"
            f"{schema_help()}\n\n"
            "example (run.toml):\n  [backend]\n  name = \"aer\"\n  shots = 1024\n  [train]\n  steps = 20\n"
            "  out = \"out/run\"\n\n"
            "  quicq train run.toml               # a kill -9 or a failed job? run it again: it resumes\n"
            "  quicq train run.toml --steps 40    # extend a finished run to 40 steps\n"
            "  quicq train examples/hybrid_minilm.toml   # MiniLM + QuIC on q/v, blocks from noisy Aer\n")


def _add_circuit_source(p: argparse.ArgumentParser, *, blocks: bool = False) -> None:
    g = p.add_argument_group("circuit (layout)")
    g.add_argument("--layout", choices=sorted(LAYOUTS), help="block circuit layout")
    g.add_argument("--n", type=_positive_int, help="qubits (block dimension of the unary block)")
    g.add_argument("--orders", type=_orders, help="Hamming weights k, e.g. 1,2 (default: the manifest's, else 1)")
    g.add_argument("--gate", choices=sorted(GIVENS_GATES), help="gate of the layout (default: the layout's own)")
    g.add_argument("--n-layers", type=_positive_int, default=2, help="brick layers (brick only; default 2)")
    if blocks:
        g.add_argument("--blocks", type=_positive_int, default=1, help="angle bindings (blocks) per estimate")
    p.add_argument("--adapter", metavar="DIR", help="a saved adapter directory: quicq's format, or peft's written through "
                   "quicq.adapters.peft_interop (adapter_config.json + safetensors)")


def _add_tomo_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", choices=TOMOGRAPHY_METHODS, default="derived",
                   help="weight-k blocks as compounds of the unary block (derived) or measured (direct)")
    p.add_argument("--no-magnitudes", action="store_true", help="signed circuits only (n instead of 2n per estimate)")


def build_parser() -> argparse.ArgumentParser:
    import quicq

    parser = _Parser(prog="quicq", formatter_class=_formatter, epilog=MAIN_EPILOG,
                     description="QuIC / Quantum-PEFT adapters as real circuits: compile them, run them on "
                                 "simulators or IBM devices, plan the cost, train through hardware.")
    parser.add_argument("--version", action="version", version=f"quicq {quicq.__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks instead of one-line errors (anywhere on the command line)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("compile", help="circuits → OpenQASM 2/3 files + a JSON manifest", formatter_class=_formatter,
                       description="Write a layout's (or a saved adapter's) circuits as OpenQASM files, with a "
                                   "manifest listing every file, its qubits, slots, orders, angle source and SHA-256.",
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
                       description="Estimate a circuit's signed orthogonal blocks from shots and compare them with "
                                   "the exact engine: max/mean error, error bars, post-selection kept fraction. "
                                   "A QASM file from 'quicq compile' runs with the orders/columns its manifest "
                                   "records.",
                       epilog="examples:\n"
                              "  quicq run out/qasm/pyramid5.qasm --angles random --backend aer --shots 4096\n"
                              "  quicq run --layout pyramid --n 5 --orders 1,2 --blocks 4 --backend aer-noisy:fake_manila\n"
                              "  quicq run --adapter out/train/adapter --backend fake:fake_manila --out out/blocks.npz\n\n"
                              f"backends: {BACKEND_HELP}")
    p.add_argument("qasm", nargs="?", help="an OpenQASM 2/3 file (quicq circuits: rbs/fbs/ry/cz… gates)")
    _add_circuit_source(p, blocks=True)
    p.add_argument("--angles", help="zeros | random | FILE; needed for QASM files with free parameters")
    p.add_argument("--columns", type=_positive_int, help="Pauli circuits: columns K (default: the manifest's, else 1)")
    p.add_argument("--backend", type=_backend, default="aer", help="where to run (default: aer); " + BACKEND_HELP)
    p.add_argument("--shots", type=_shots, default=4096, help="shots per circuit (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler and of --angles random")
    p.add_argument("--retries", type=_positive_int, default=3, help="attempts per job (default: 3)")
    p.add_argument("--timeout", type=float, help="seconds per job before it counts as failed")
    p.add_argument("--no-postselect", action="store_true", help="keep outcomes of the wrong Hamming weight")
    _add_tomo_options(p)
    p.add_argument("--out", help="write blocks (.npz + a .json report beside it) or everything as .json")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (bars show only on a terminal)")
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
    p.add_argument("--backend", type=_backend, default="fake:fake_manila", help="device to plan for (default: %(default)s)")
    p.add_argument("--shots", type=_shots, default=4096, help="shots per circuit (default: %(default)s)")
    p.add_argument("--gradient", choices=GRADIENTS, default="parameter_shift", help="backward rule")
    p.add_argument("--job-overhead", type=float, default=2.0, help="seconds per job in the time model (default 2)")
    p.add_argument("--circuit-overhead", type=float, default=0.005, help="seconds per circuit execution (default 0.005)")
    p.add_argument("--json", help="also write the plan as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (bars show only on a terminal)")
    p.add_argument("--pack", action="store_true",
                   help="also show packed vs unpacked executions and QPU time (circuits side by side on "
                        "disjoint qubit chains, one job per step direction; quicq.hardware.packing)")
    _add_tomo_options(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("train", help="hybrid training from a JSON/TOML config (resumable)", formatter_class=_formatter,
                       description="Fine-tune a QuIC or Quantum-PEFT adapter on the digits task or a Hugging Face "
                                   "text classifier, with blocks from a backend (or the exact engine). Checkpoints "
                                   "are atomic; rerunning the same command resumes after a crash.",
                       epilog=train_epilog())
    p.add_argument("config", help="JSON or TOML config file")
    p.add_argument("--steps", type=int, help="set train.steps (also when the config has none)")
    p.add_argument("--out", help="override train.out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (bars show only on a terminal)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="end-to-end demo on local simulators (offline)", formatter_class=_formatter,
                       description="Digits 0–4 → 5–9 with a QuIC adapter: exact fine-tuning, QASM 3, block estimates "
                                   "on Aer and a noisy fake IBM device (± post-selection, mitigated), accuracy with estimated "
                                   "blocks, a short hybrid training run, plots and a summary.",
                       epilog="examples:\n  quicq demo                 # full demo, a few minutes\n"
                              "  quicq demo --quick --out /tmp/demo   # < 1 minute")
    p.add_argument("--out", default="out/demo", help="output directory (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="tiny settings (CI smoke run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (bars show only on a terminal)")
    p.add_argument("--results", metavar="PATH", default=None,
                   help="also write the summary JSON (with commit, command, date, cores, load) to PATH, "
                        "e.g. results/demo.json — README's demo table is generated from it")
    p.set_defaults(func=cmd_demo)
    return parser


def _one_line(exc: BaseException) -> str:
    """The error as one redacted line: quicq's own errors by message, anything else with its type."""
    from quicq.hardware.errors import CredentialsError, redact

    text = " ".join(redact(exc).split())
    if isinstance(exc, CredentialsError):
        text += (" — from the command line: export QISKIT_IBM_TOKEN=<API key> (and QISKIT_IBM_INSTANCE=<CRN>), "
                 "or run offline with --backend fake:fake_manila / aer-noisy:fake_manila")
    if isinstance(exc, QuicqError) and text:
        return text
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}:{where}"
    return f"{type(exc).__name__}: {text}" + ("" if isinstance(exc, (ValueError, LookupError))
                                            else " (rerun with --debug for the traceback)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``quicq`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv[: argv.index("--")] if "--" in argv else "--debug" in argv
    argv = [a for a in argv if a != "--debug"]  # accepted before or after the subcommand
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
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
        if debug:
            raise
        sys.stderr.write(f"quicq: error: {_one_line(exc)}\n")
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
