"""One rule, one place: gate families come from the gate table, bit order from quicq.circuits.bitorder.

These scan quicq's source (AST, not text) so a re-typed rule is caught where it is written.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import quicq
from quicq.circuits.gates import GATES, GIVENS_GATES, HW_PRESERVING_GATES, SIGN_GATES

ROOT = Path(quicq.__file__).parent
#: Files owned by other work streams that still spell a gate family out; each is to use the
#: gate table too (listed so that this test is strict everywhere else, and shrinks, never grows).
NOT_YET: set[str] = set()
FAMILIES = {"Hamming-weight-preserving": HW_PRESERVING_GATES, "Givens": GIVENS_GATES, "sign": SIGN_GATES}


def _sources(*parts: str) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        p = ROOT / part
        out += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return out


def _gate_family_literals(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 2:
            names = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if len(names) == len(node.elts) and names <= set(GATES):
                for fam, members in FAMILIES.items():
                    if names == members:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {sorted(names)} is the {fam} "
                                     "gate family: take it from quicq.circuits.gates")
    return found


def test_gate_families_come_from_the_gate_table():
    problems = [p for f in _sources(".") if str(f.relative_to(ROOT)) not in NOT_YET for p in _gate_family_literals(f)]
    assert not problems, "\n".join(problems)


def test_the_families_are_what_the_engines_assume():
    assert GIVENS_GATES == {"rbs", "fbs"} and SIGN_GATES == {"z", "cz"}
    assert HW_PRESERVING_GATES == GIVENS_GATES | SIGN_GATES  # the sector engine handles exactly these


@pytest.mark.parametrize("path", sorted(NOT_YET))
def test_not_yet_list_is_current(path):
    """An entry leaves NOT_YET once its file is fixed (the list must not hide a clean file)."""
    assert _gate_family_literals(ROOT / path), f"{path} no longer spells a gate family: drop it from NOT_YET"


def _bit_order_code(path: Path) -> list[str]:
    """Bit extraction ``(x >> i) & 1``, bit packing ``sum(v << i for …)``, and ``n_qubits - 1 - q``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
        if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd) and isinstance(node.left, ast.BinOp)
                and isinstance(node.left.op, ast.RShift) and isinstance(node.right, ast.Constant)
                and node.right.value == 1):
            found.append(f"{where}: bit extraction")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "sum" and node.args
                and isinstance(node.args[0], ast.GeneratorExp) and isinstance(node.args[0].elt, ast.BinOp)
                and isinstance(node.args[0].elt.op, ast.LShift)):
            found.append(f"{where}: bit packing")
        if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and isinstance(node.left, ast.BinOp)
                and isinstance(node.left.op, ast.Sub) and isinstance(node.left.left, ast.Name)
                and node.left.left.id == "n_qubits" and isinstance(node.left.right, ast.Constant)):
            found.append(f"{where}: qubit-to-bit position")
    return found


def test_bit_order_is_converted_in_one_module():
    files = [f for f in _sources("circuits", "cli.py", "cli_run.py") if f.name != "bitorder.py"]
    problems = [p for f in files for p in _bit_order_code(f)]
    assert not problems, "convert through quicq.circuits.bitorder:\n" + "\n".join(problems)


def test_circuits_modules_stay_small():
    """One concern per module: quicq.circuits modules stay within ~400 lines (qasm and qiskit_io are
    facades over a writer and a reader each)."""
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "circuits").glob("*.py")}
    assert {n: s for n, s in sizes.items() if s > 400} == {}


def test_split_modules_keep_their_import_paths():
    pytest.importorskip("qiskit")
    from quicq.circuits import qasm, qasm_read, qasm_write, qiskit_export, qiskit_import, qiskit_io

    for facade, parts in ((qasm, (qasm_read, qasm_write)), (qiskit_io, (qiskit_export, qiskit_import))):
        for name in facade.__all__:
            assert any(getattr(p, name, None) is getattr(facade, name) for p in parts) or name in (
                "Limits", "QasmError"), (facade.__name__, name)
