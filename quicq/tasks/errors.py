"""Errors of the shared tasks: bad task input vs a data/model carrier package that is missing."""

from __future__ import annotations

from quicq.errors import QuicqError

__all__ = ["DataUnavailable", "TaskError"]


class TaskError(QuicqError, ValueError):
    """A task was asked for something that cannot work (bad fraction, missing column, no file)."""


class DataUnavailable(QuicqError, RuntimeError):
    """An offline data or model carrier package is not installed; the message says how to get it."""
