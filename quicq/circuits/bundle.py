"""OpenQASM bundles: a directory of QASM files plus ``manifest.json`` describing each of them.

The manifest (``format: quicq-compile-manifest``) lists every file with its OpenQASM version,
kind (``circuit`` / ``block`` / ``tomography``), qubits, parameter slots, gate count, angle
source, SHA-256 and what a run needs to estimate it (``orders`` for Hamming-weight-preserving
circuits, ``columns`` for Pauli circuits, the layout). ``quicq run FILE`` reads these back
(:func:`manifest_entry`), so a compiled file runs as it was compiled. Files are written
atomically with mode 0644.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from quicq.circuits.ir import CircuitError

__all__ = ["MANIFEST_FORMAT", "MANIFEST_NAME", "QasmBundle", "compile_adapter", "compile_units", "manifest_entry"]

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "quicq-compile-manifest"
MANIFEST_VERSION = 1


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class QasmBundle:
    """Writes OpenQASM files into one directory and records each in the manifest.

    Args:
        out: the directory (created if needed).
        versions: OpenQASM versions to write per circuit (2 and/or 3).
    """

    def __init__(self, out: str | Path, versions: Iterable[int] = (3,)) -> None:
        self.out = Path(out)
        self.versions = sorted(set(int(v) for v in versions))
        if not self.versions or any(v not in (2, 3) for v in self.versions):
            raise CircuitError(f"OpenQASM versions must be 2 and/or 3, got {sorted(set(versions))}")
        self.files: list[dict[str, Any]] = []

    def emit(self, stem: str, circuit: Any, angles: Any, kind: str, source: str, *,
             only: Sequence[int] | None = None, **info: Any) -> None:
        """``<stem>.qasm`` (OpenQASM 3) and/or ``<stem>.qasm2`` (OpenQASM 2, bound angles only)."""
        from quicq.circuits.qasm import to_qasm2, to_qasm3
        from quicq.training.atomic import atomic_write_text

        for v in (only or self.versions):
            if v == 2 and angles is None:
                raise CircuitError("OpenQASM 2 cannot hold free parameters: give angles, or write "
                                   "OpenQASM 3 for a symbolic program")
            text = to_qasm2(circuit, angles) if v == 2 else to_qasm3(circuit, angles)
            path = self.out / (f"{stem}.qasm2" if v == 2 else f"{stem}.qasm")
            atomic_write_text(path, text)
            self.files.append({"path": path.name, "format": f"openqasm{v}", "kind": kind,
                               "qubits": circuit.n_qubits, "slots": circuit.n_params, "gates": len(circuit.gates),
                               "angles": source, "sha256": _sha256(path), **info})

    def manifest(self, **fields: Any) -> Path:
        """Write ``manifest.json`` (every file with its SHA-256) and return its path."""
        import quicq
        from quicq.training.atomic import atomic_write_text

        doc = {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION, "quicq_version": quicq.__version__,
               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields, "files": self.files}
        path = self.out / MANIFEST_NAME
        atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
        return path


def compile_units(units: Sequence[Any], out: str | Path, versions: Iterable[int] = (3,), *,
                  source_name: str, source: dict[str, Any]) -> Path:
    """A bundle of adapter units (:class:`quicq.adapters.units.AdapterUnit`): one symbolic
    OpenQASM 3 program per distinct circuit and one bound program per block; returns the manifest path."""
    bundle = QasmBundle(out, versions)
    seen: set[Any] = set()
    for u in units:
        c = u.circuit
        layout = str(c.meta.get("layout", ""))
        what = {"orders": list(u.orders)} if u.orders else {"columns": u.columns}
        if c not in seen:  # the symbolic program exists only as OpenQASM 3 (OpenQASM 2 has no parameters)
            seen.add(c)
            bundle.emit(f"{u.tag}.circuit", c, None, "circuit", "symbolic", only=[3], module=u.module,
                        layout=layout, **what)
        for i, th in enumerate(u.angles):
            bundle.emit(f"{u.tag}.block{i}", c, th, "block", source_name, module=u.module, block=i, layout=layout,
                        **what)
    return bundle.manifest(source=source, qubits=sorted({u.circuit.n_qubits for u in units}),
                           modules=sorted({u.module for u in units}))


def compile_adapter(adapter_dir: str | Path, out: str | Path, versions: Iterable[int] = (3,)) -> Path:
    """OpenQASM bundle of a saved adapter directory (see :func:`compile_units`); returns the manifest path."""
    from quicq.adapters.units import adapter_units

    units = adapter_units(adapter_dir)
    return compile_units(units, out, versions, source_name=f"adapter {Path(adapter_dir).name}",
                         source={"adapter": str(Path(adapter_dir).resolve())})


def manifest_entry(qasm_path: str | Path) -> dict[str, Any] | None:
    """The manifest record of a QASM file written by a bundle (``manifest.json`` beside it), or None.

    The record is returned only if the file's SHA-256 still matches; a file changed since it
    was compiled raises :class:`CircuitError` (its recorded settings may no longer apply).
    """
    path = Path(qasm_path)
    mpath = path.parent / MANIFEST_NAME
    if not mpath.is_file():
        return None
    try:
        doc = json.loads(mpath.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise CircuitError(f"{mpath}: unreadable manifest ({exc}); move it away to run {path.name} without it"
                           ) from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("files"), list):
        return None
    for rec in doc["files"]:
        if isinstance(rec, dict) and rec.get("path") == path.name:
            if rec.get("sha256") != _sha256(path):
                raise CircuitError(f"{path} was modified after it was compiled (SHA-256 differs from {mpath}); "
                                   "recompile it, or move the manifest away to run it as a plain file")
            return {**rec, "manifest": str(mpath), "source": doc.get("source")}
    return None
