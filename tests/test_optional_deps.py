"""Optional dependencies: the core works without any extra, every extra's entry point names its pip line.

Two checks of one rule ("every import of an optional package goes through quicq._optional.require"):

* static: every import in ``quicq/`` of a package that is neither the standard library nor a core
  dependency is preceded by ``require(<that package>, <extra>)`` in its scope (or sits in a
  ``try`` that handles ``ImportError``, or under ``TYPE_CHECKING``), and the named extra exists in
  pyproject.toml and lists the package's distribution;
* dynamic: a subprocess with qiskit, pennylane, transformers, peft, matplotlib and scikit-learn
  blocked by a meta-path finder runs the core (circuits IR, engine, adapters on a plain torch
  model, save/load), imports every quicq module (each either imports or raises
  ``MissingDependencyError``) and calls each optional entry point, which must raise the pip line.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from quicq._optional import MissingDependencyError, require

# Only require(module, extra) and MissingDependencyError are relied on (another branch defines the
# same two names); the contract is the message's own line `pip install 'quicq[<extra>]'`.
PIP_LINE = re.compile(r"^\s*pip install 'quicq\[([a-z0-9_-]+)\]'\s*$", re.M)


def install_line(extra: str) -> str:
    return f"pip install 'quicq[{extra}]'"


def _extras_named(message: str) -> list[str]:
    return PIP_LINE.findall(message)
from quicq.errors import QuicqError

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "quicq"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# What the core may import unguarded: pyproject's [project] dependencies, by import name.
CORE_IMPORTS = {"torch", "numpy", "scipy", "tqdm", "safetensors", "tomli", "tomllib", "quicq"}
BLOCKED = ("qiskit", "qiskit_aer", "qiskit_ibm_runtime", "qiskit_qasm3_import", "pennylane",
           "pennylane_lightning", "transformers", "peft", "matplotlib", "sklearn")


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _extra_dists(extra: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """Normalised distribution names an extra installs (following ``quicq[...]`` self-references)."""
    out: set[str] = set()
    for req in PYPROJECT["project"]["optional-dependencies"].get(extra, []):
        name = re.match(r"[A-Za-z0-9_.-]+", req).group(0)
        if _norm(name) == "quicq":
            for sub in re.search(r"\[(.*)\]", req).group(1).split(","):
                if sub.strip() not in seen:
                    out |= _extra_dists(sub.strip(), seen | {extra})
        else:
            out.add(_norm(name))
    return out


_DISTS = md.packages_distributions()


def _dists_of(top: str) -> set[str]:
    return {_norm(d) for d in _DISTS.get(top, [])}


def _implies(required: str, imported: str) -> bool:
    """True when importing top-level ``required`` guarantees top-level ``imported`` (a pip dependency)."""
    if required == imported:
        return True
    needs: set[str] = set()
    for dist in _DISTS.get(required, []):
        for req in md.requires(dist) or []:
            if "extra ==" not in req:
                needs.add(_norm(re.match(r"[A-Za-z0-9_.-]+", req).group(0)))
    return bool(_dists_of(imported) & needs)


def _is_optional(module: str) -> bool:
    top = module.split(".")[0]
    return top not in CORE_IMPORTS and top not in sys.stdlib_module_names


class _Scan(ast.NodeVisitor):
    """Collect optional imports and ``require`` calls with their enclosing scopes."""

    def __init__(self) -> None:
        self.scopes: list[ast.AST] = []
        self.guarded = 0  # depth of try-ImportError / TYPE_CHECKING blocks
        self.imports: list[tuple[str, int, tuple[ast.AST, ...], bool]] = []
        self.requires: list[tuple[str, str, int, ast.AST]] = []

    def _scoped(self, node: ast.AST) -> None:
        self.scopes.append(node)
        self.generic_visit(node)
        self.scopes.pop()

    visit_Module = visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped  # noqa: N815

    def visit_Try(self, node: ast.Try) -> None:
        names = set()
        for h in node.handlers:
            for t in (h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]) if h.type else []:
                names.add(getattr(t, "id", getattr(t, "attr", "")))
        handles = bool(names & {"ImportError", "ModuleNotFoundError"})
        self.guarded += handles
        for stmt in node.body:
            self.visit(stmt)
        self.guarded -= handles
        for part in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(part)

    def visit_If(self, node: ast.If) -> None:
        tc = "TYPE_CHECKING" in ast.unparse(node.test)
        self.guarded += tc
        for stmt in node.body:
            self.visit(stmt)
        self.guarded -= tc
        for stmt in node.orelse:
            self.visit(stmt)

    def _record(self, module: str, node: ast.AST) -> None:
        if _is_optional(module):
            self.imports.append((module, node.lineno, tuple(self.scopes), self.guarded > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._record(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self._record(node.module, node)

    def visit_Call(self, node: ast.Call) -> None:
        f = node.func
        name = getattr(f, "id", getattr(f, "attr", None))
        if name in ("require", "_require") and len(node.args) == 2 and all(
                isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args):
            self.requires.append((node.args[0].value, node.args[1].value, node.lineno, self.scopes[-1]))
        self.generic_visit(node)


def _scan_package() -> list[tuple[Path, _Scan]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        scan = _Scan()
        scan.visit(ast.parse(path.read_text(), filename=str(path)))
        out.append((path, scan))
    return out


def test_every_optional_import_is_guarded_by_require() -> None:
    problems = []
    for path, scan in _scan_package():
        rel = path.relative_to(ROOT)
        for module, line, scopes, guarded in scan.imports:
            if guarded:
                continue
            top = module.split(".")[0]
            ok = False
            for req_mod, _extra, req_line, req_scope in scan.requires:
                if req_scope not in scopes or not _implies(req_mod.split(".")[0], top):
                    continue
                # A require in the import's own scope must come first; one in an enclosing scope
                # has run before any function body defined in it.
                if req_scope is not scopes[-1] or req_line < line:
                    ok = True
            if not ok:
                problems.append(f"{rel}:{line}: `import {module}` without a preceding require({top!r}, <extra>)")
    assert not problems, "optional imports that would fail with a bare ImportError:\n" + "\n".join(problems)


def test_require_names_a_real_extra_that_installs_the_module() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    calls = [(path, r) for path, scan in _scan_package() for r in scan.requires]
    assert calls, "no require() call found in quicq/: the scan is broken"
    for path, (module, extra, line, _scope) in calls:
        where = f"{path.relative_to(ROOT)}:{line}"
        assert extra in extras, f"{where}: require({module!r}, {extra!r}) names no extra of pyproject.toml"
        dists = _dists_of(module.split(".")[0])
        if dists:  # installed here: the extra must really install it
            assert dists & _extra_dists(extra), f"{where}: extra {extra!r} does not install {sorted(dists)}"


def test_require_returns_the_module_or_names_the_pip_line() -> None:
    import math

    assert require("math", "qiskit") is math
    with pytest.raises(MissingDependencyError) as info:
        require("quicq_no_such_module_xyz", "pennylane")
    err = info.value
    assert isinstance(err, QuicqError) and isinstance(err, ImportError)
    assert _extras_named(str(err)) == ["pennylane"]  # the pip line, on a line of its own
    assert "quicq_no_such_module_xyz" in str(err)
    assert isinstance(err.__cause__, ModuleNotFoundError)


# --------------------------------------------------------------------------------------------
# The dynamic check: the core without any extra.

_SCRIPT = r'''
import importlib, importlib.abc, importlib.machinery, json, pkgutil, sys, tempfile, traceback
BLOCKED = set(%(blocked)r)

class _Absent(importlib.abc.Loader):
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        raise ModuleNotFoundError(f"No module named {module.__name__!r} (blocked by the test)", name=module.__name__)

class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, _Absent())
        return None

sys.meta_path.insert(0, _Block())
import torch
torch.set_num_threads(1)
report = {"core": [], "modules": {}, "entry": {}}

def core(name, fn):
    try:
        fn()
        report["core"].append([name, "ok"])
    except BaseException:
        report["core"].append([name, traceback.format_exc()])

# ---- the core -------------------------------------------------------------------------------
def circuits():
    from quicq.circuits import pyramid, butterfly, pauli, to_qasm3, givens_decompose, Circuit
    c = pyramid(5)
    assert c.n_params == 10 and "rbs" in to_qasm3(c)
    assert butterfly(4).n_qubits == 4 and pauli(8, 1).n_qubits == 3
    import numpy as np
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))
    circ, angles = givens_decompose(q * np.sign(np.linalg.det(q)))
    assert isinstance(circ, Circuit) and len(angles) == circ.n_params

def engine():
    from quicq.circuits import pyramid, pauli
    from quicq.engine import sector_blocks, unary_block, pauli_columns
    c = pyramid(5)
    th = torch.randn(c.n_params, dtype=torch.float64, requires_grad=True)
    U, C2 = sector_blocks(c, th, [1, 2])
    assert torch.allclose(U @ U.T, torch.eye(5, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(C2 @ C2.T, torch.eye(10, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(unary_block(c, th), U)
    C2.trace().backward()
    assert th.grad is not None
    Q = pauli_columns(pauli(8, 1), torch.randn(pauli(8, 1).n_params, dtype=torch.float64), K=3)
    assert torch.allclose(Q.T @ Q, torch.eye(3, dtype=torch.float64), atol=1e-10)

def adapters():
    from quicq.adapters import QuICConfig, QuantumPEFTConfig, get_quicq_model, QuicqModel
    def base():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16))
    x = torch.randn(4, 16)
    for cfg in (QuICConfig(target_modules=["0", "2"], n_blocks=2, orders=(1, 2)),
                QuantumPEFTConfig(target_modules=["0", "2"], rank=2, n_layers=1)):
        model = get_quicq_model(base(), cfg)
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        for _ in range(2):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
        with tempfile.TemporaryDirectory() as d:
            model.save_pretrained(d)
            loaded = QuicqModel.from_pretrained(base(), d)
        with torch.no_grad():
            assert torch.allclose(model(x), loaded(x), atol=1e-6)
            assert not torch.allclose(model(x), base()(x), atol=1e-6)  # training changed it

def cli_compile():
    from quicq.cli import main
    with tempfile.TemporaryDirectory() as d:
        assert main(["compile", "--layout", "pyramid", "--n", "4", "--qasm", "3", "--out", d]) == 0

for name, fn in (("circuits", circuits), ("engine", engine), ("adapters", adapters), ("cli compile", cli_compile)):
    core(name, fn)

# ---- every module: imports, or says which extra it needs --------------------------------------
import quicq
from quicq._optional import MissingDependencyError
report["modules"]["quicq"] = "ok"
for info in pkgutil.walk_packages(quicq.__path__, "quicq."):
    try:
        importlib.import_module(info.name)
        report["modules"][info.name] = "ok"
    except MissingDependencyError as exc:
        report["modules"][info.name] = ["missing", str(exc)]
    except BaseException:
        report["modules"][info.name] = ["error", traceback.format_exc()]

# ---- the optional entry points -----------------------------------------------------------------
def entry(name, fn):
    try:
        got = fn()
        report["entry"][name] = ["returned", got]
    except MissingDependencyError as exc:
        report["entry"][name] = ["missing", str(exc)]
    except BaseException:
        report["entry"][name] = ["error", traceback.format_exc()]

from quicq.circuits import pyramid, to_qasm2, to_qasm3, from_qasm
c = pyramid(3)

def _to_qiskit():
    from quicq.circuits.qiskit_io import to_qiskit
    to_qiskit(c)

def _aer():
    from quicq.hardware import AerBackend
    AerBackend(shots=16)

def _ibm():
    from quicq.hardware import IBMRuntimeBackend
    IBMRuntimeBackend("fake_manila")

def _to_pennylane():
    from quicq.circuits.pennylane_io import to_pennylane
    to_pennylane(c)

def _pennylane_backend():
    from quicq.hardware import PennyLaneBackend
    PennyLaneBackend()

def _peft():
    import quicq.adapters.peft_interop  # noqa: F401

def _reference_model():
    from quicq.adapters.counts import REFERENCE_ARCHITECTURES, reference_meta_model
    reference_meta_model(sorted(REFERENCE_ARCHITECTURES)[0])

def _demo_plots():
    from pathlib import Path
    from quicq.demo_report import plots
    plots(Path(tempfile.mkdtemp()), {"a": [1.0, 0.5]}, {"a": [1.0]}, [], None)

def _digits():
    from quicq.tasks.digits import digits_split
    digits_split((0, 1))

def _cli_run():
    import contextlib, io
    from quicq.cli import main
    with tempfile.TemporaryDirectory() as d:
        path = d + "/c.qasm"
        open(path, "w").write(to_qasm3(c, [0.1, 0.2, 0.3]))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["run", path, "--backend", "exact", "--out", d + "/b.json"])
    return code, err.getvalue()

for name, fn in (("to_qiskit", _to_qiskit),
                 ("from_qasm (OpenQASM 3)", lambda: from_qasm(to_qasm3(c))),
                 ("from_qasm (OpenQASM 2)", lambda: from_qasm(to_qasm2(c, [0.1, 0.2, 0.3]))),
                 ("AerBackend", _aer), ("IBMRuntimeBackend", _ibm),
                 ("to_pennylane", _to_pennylane), ("PennyLaneBackend", _pennylane_backend),
                 ("peft_interop", _peft), ("counts.reference_meta_model", _reference_model),
                 ("demo plots", _demo_plots), ("digits data", _digits), ("quicq run", _cli_run)):
    entry(name, fn)

leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
report["leaked"] = leaked
print("REPORT" + json.dumps(report))
'''

# entry point → the extra whose pip line it must print
ENTRY_EXTRAS = {
    "to_qiskit": "qiskit", "from_qasm (OpenQASM 3)": "qiskit", "from_qasm (OpenQASM 2)": "qiskit",
    "AerBackend": "qiskit", "IBMRuntimeBackend": "qiskit", "to_pennylane": "pennylane",
    "PennyLaneBackend": "pennylane", "peft_interop": "hf", "counts.reference_meta_model": "hf",
    "demo plots": "plot", "digits data": "examples", "quicq run": "qiskit",  # CLI: checked apart
}
# modules that must import with no extra at all (the core and the lazy entry packages)
CORE_MODULES = ("quicq", "quicq.errors", "quicq._optional", "quicq.circuits", "quicq.engine",
                "quicq.adapters", "quicq.hardware", "quicq.cli")


@pytest.fixture(scope="module")
def blocked_report() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", _SCRIPT % {"blocked": BLOCKED}], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT")]
    assert proc.returncode == 0 and lines, f"subprocess failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][len("REPORT"):])


def test_core_works_without_any_extra(blocked_report: dict) -> None:
    failed = {name: tb for name, tb in blocked_report["core"] if tb != "ok"}
    assert not failed, "\n\n".join(f"{k}:\n{v}" for k, v in failed.items())
    assert [name for name, _ in blocked_report["core"]] == ["circuits", "engine", "adapters", "cli compile"]
    assert not blocked_report["leaked"], f"a blocked package got imported: {blocked_report['leaked']}"


def test_every_module_imports_or_names_its_extra(blocked_report: dict) -> None:
    mods = blocked_report["modules"]
    for name in CORE_MODULES:
        assert mods.get(name) == "ok", f"{name} must import without extras: {mods.get(name)}"
    errors = {k: v[1] for k, v in mods.items() if v != "ok" and v[0] == "error"}
    assert not errors, "modules failing with a foreign error:\n" + "\n".join(f"{k}:\n{v}" for k, v in errors.items())
    for name, v in mods.items():
        if v != "ok":
            assert len(_extras_named(v[1])) == 1, f"{name}: no pip line in {v[1]!r}"


@pytest.mark.parametrize("name", sorted(ENTRY_EXTRAS))
def test_optional_entry_point_prints_pip_line(blocked_report: dict, name: str) -> None:
    got = blocked_report["entry"][name]
    if name == "quicq run":  # the CLI prints one line, exit code 2, no traceback
        assert got[0] == "returned", got
        code, stderr = got[1]
        assert code == 2 and "Traceback" not in stderr and install_line("qiskit") in stderr, got
        return
    assert got[0] == "missing", f"{name}: expected MissingDependencyError, got {got}"
    extra = ENTRY_EXTRAS[name]
    assert _extras_named(got[1]) == [extra], f"{name}: message lacks the line `{install_line(extra)}`:\n{got[1]}"
