"""Import optional dependencies with the install line to run when they are missing.

quicq's core (circuits IR, exact engine, adapters on torch models, save/load) needs only torch,
numpy, scipy, tqdm and safetensors. Everything else belongs to an *extra* declared in
``pyproject.toml`` (``qiskit``, ``pennylane``, ``hf``, ``plot``, ``examples``). Every import of
such a package goes through :func:`require` (or follows a ``require`` call for the same package
in the same scope), so a user without the extra gets one quicq error that names the command to
run instead of a bare ``ModuleNotFoundError`` from deep inside a call.
"""

from __future__ import annotations

import importlib
import sys
import types

from quicq.errors import QuicqError

__all__ = ["MissingDependencyError", "install_line", "require"]


def install_line(extra: str) -> str:
    """The one command that installs quicq's optional ``extra`` (quoted for every shell)."""
    return f"pip install 'quicq[{extra}]'"


class MissingDependencyError(QuicqError, ImportError):
    """An optional package needed here is not importable; the message holds the pip line to run.

    Also an :class:`ImportError`, so ``except ImportError`` around optional features keeps working.
    """

    def __init__(self, module: str, extra: str, *, needed_by: str | None = None,
                 reason: str | None = None) -> None:
        who = f"{needed_by} needs" if needed_by else "this feature needs"
        why = f" ({reason})" if reason else ""
        message = (
            f"{who} the optional package '{module}', which cannot be imported{why}.\n"
            f"It is part of quicq's '{extra}' extra; install it into this environment with\n"
            f"{install_line(extra)}\n"
            f"(from a source checkout: pip install -e '.[{extra}]')"
        )
        super().__init__(message, name=module)
        self.module = module
        self.extra = extra


def _caller_module(depth: int = 2) -> str | None:
    """``__name__`` of the module that called :func:`require` (for the message only)."""
    try:
        return sys._getframe(depth).f_globals.get("__name__")
    except (AttributeError, ValueError):  # pragma: no cover - non-CPython or a shallow stack
        return None


def require(module: str, extra: str) -> types.ModuleType:
    """Import and return ``module``; if it cannot be imported, raise :class:`MissingDependencyError`.

    ``extra`` is the name of the ``pyproject.toml`` extra that provides ``module``; the error's
    message contains the line ``pip install 'quicq[<extra>]'``. Any :class:`ImportError` counts
    (absent package, or a broken install whose own imports fail): the original error is chained
    and quoted.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise MissingDependencyError(module, extra, needed_by=_caller_module(), reason=reason) from exc
