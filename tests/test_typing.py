"""Public functions carry type hints (quicq ships py.typed); the engine's ``angles`` say what they accept."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest

import quicq
import quicq.engine

ROOT = Path(quicq.__file__).parent


def _public_functions(path: Path):
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for f in node.body:
                if isinstance(f, ast.FunctionDef) and (not f.name.startswith("_") or f.name == "__init__"):
                    yield f"{node.name}.{f.name}", f


@pytest.mark.parametrize("path", sorted((ROOT / "engine").glob("*.py")), ids=lambda p: p.name)
def test_every_public_engine_function_is_annotated(path):
    missing = []
    for name, f in _public_functions(path):
        a = f.args
        params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, [a.vararg, a.kwarg])]
        bare = [p.arg for p in params if p.annotation is None and p.arg not in ("self", "cls")]
        if bare or (f.returns is None and f.name != "__init__"):
            missing.append(f"{name}: parameters {bare}" + ("" if f.returns or f.name == "__init__" else ", return"))
    assert not missing, f"{path.name}: " + "; ".join(missing)


def test_engine_hints_resolve_and_angles_are_typed():
    for name in quicq.engine.__all__:
        obj = getattr(quicq.engine, name)
        if not inspect.isfunction(obj):
            continue
        hints = typing.get_type_hints(obj)
        if "angles" in inspect.signature(obj).parameters:
            assert hints["angles"] == quicq.engine.Angles, name
    args = set(typing.get_args(quicq.engine.Angles))
    import numpy as np
    import torch

    assert {torch.Tensor, np.ndarray} <= args


def test_package_ships_py_typed():
    assert (ROOT / "py.typed").is_file()
    text = (ROOT.parent / "pyproject.toml").read_text()
    assert "py.typed" in text
