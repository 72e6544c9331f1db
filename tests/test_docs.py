"""The docs tooling: design-citation rewriting and the docstring → Markdown conversion.

The site itself is built with warnings as errors by `make docs` (part of `make test`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import fix_design_refs as fdr  # noqa: E402
from tools.griffe_roles import markdownify  # noqa: E402

D = "DESIGN" + " "  # split so that running the tool over tests/ leaves these inputs alone


@pytest.mark.parametrize(("text", "want"), [
    (f"conventions ({D}§2).", "conventions (docs/conventions.md)."),
    (f"({D}§2–§3)", "(docs/conventions.md, docs/design.md#layouts)"),
    (f"Design ({D}§5, §8):", "Design (docs/design.md#tomography, docs/design.md#environment):"),
    (f"see ../shared/{D.strip()}.md §4b", "see docs/design.md#numerics"),
    (f"{D}§4 and §5b", "docs/design.md#adapters, docs/design.md#mitigation"),
    (f"{D}§4–§5", "docs/design.md#adapters, docs/design.md#numerics, docs/design.md#tomography"),
    ("no citation here, DESIGN in capitals only", "no citation here, DESIGN in capitals only"),
])
def test_rewrite_and_idempotence(text: str, want: str) -> None:
    assert fdr.rewrite(text) == want
    assert fdr.rewrite(want) == want


def test_unknown_section_is_refused() -> None:
    with pytest.raises(fdr.DesignRefError, match="§9 has no docs page"):
        fdr.rewrite(f"{D}§9", "x.py")


def test_every_target_page_and_anchor_exists(tmp_path: Path) -> None:
    fdr.check_targets()  # the repository's docs
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    page = tmp_path / "docs" / "design.md"
    page.write_text(page.read_text().replace("{#gradients}", ""))
    with pytest.raises(fdr.DesignRefError, match="no {#gradients} heading"):
        fdr.check_targets(tmp_path)


def test_no_design_citations_left_in_package_and_tests() -> None:
    """Docstrings point into docs/, not at a file outside the repository (run the tool to fix)."""
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "fix_design_refs.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, "run `python tools/fix_design_refs.py`:\n" + proc.stdout + proc.stderr


def test_cli_rewrites_a_file_once(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text(f'"""Blocks from shots ({D}§5)."""\n')
    cmd = [sys.executable, str(ROOT / "tools" / "fix_design_refs.py")]
    assert subprocess.run([*cmd, "--check", str(f)], capture_output=True).returncode == 1
    assert subprocess.run([*cmd, str(f)], capture_output=True).returncode == 0
    assert f.read_text() == '"""Blocks from shots (docs/design.md#tomography)."""\n'
    assert subprocess.run([*cmd, "--check", str(f)], capture_output=True).returncode == 0


def test_markdownify_sphinx_roles() -> None:
    text = ("Uses :func:`~quicq.engine.unary_block` and :class:`quicq.circuits.Circuit`; "
            ":mod:`~quicq.adapters.io` saves. Example::\n\n    x = 1\n")
    assert markdownify(text) == ("Uses `unary_block` and `quicq.circuits.Circuit`; `io` saves. "
                                 "Example:\n\n    x = 1\n")
