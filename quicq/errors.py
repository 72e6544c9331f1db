"""The root of quicq's exception family.

Every error quicq raises on purpose derives from :class:`QuicqError`, so callers (and the CLI)
can catch "anything quicq refused" in one clause, while a foreign exception escaping quicq is
always a bug. Subsystems keep their own subclasses (``CircuitError``, ``AdapterConfigError``,
``HardwareError``, …), each also deriving from the built-in type it used before
(``ValueError``/``RuntimeError``) so existing ``except`` clauses keep working.
"""

from __future__ import annotations

__all__ = ["QuicqError"]


class QuicqError(Exception):
    """Base class of every error quicq raises deliberately; the message says what is wrong."""
