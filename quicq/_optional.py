"""Optional dependencies: import them with an install hint instead of a bare ModuleNotFoundError.

quicq's core needs only torch, numpy and scipy; Qiskit, PennyLane, transformers/peft, plotting
and the example data sets are extras. :func:`require` imports one module of an extra, and if it
is missing raises :class:`MissingDependencyError` carrying the exact ``pip install`` line.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from quicq.errors import QuicqError

__all__ = ["MissingDependencyError", "require"]


class MissingDependencyError(QuicqError, ImportError):
    """An optional dependency is not installed; the message holds the pip line that installs it."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` (e.g. ``"qiskit"``), or raise :class:`MissingDependencyError`.

    ``extra`` names quicq's extra that provides it (``"qiskit"``, ``"pennylane"``, ``"hf"``, …);
    the error message carries the line ``pip install 'quicq[<extra>]'``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or module
        raise MissingDependencyError(
            f"{module} is needed here but could not be imported ({missing} is missing); install "
            f"quicq's {extra!r} extra:\n    pip install 'quicq[{extra}]'",
            name=missing,
        ) from exc
