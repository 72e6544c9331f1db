"""Errors of the training package (all derive from :class:`quicq.errors.QuicqError`)."""

from __future__ import annotations

from quicq.errors import QuicqError

__all__ = ["CheckpointError", "ConfigError", "TrainingError"]


class TrainingError(QuicqError, RuntimeError):
    """A training step failed for good (after the backend's retries); the state was saved first."""


class CheckpointError(QuicqError, RuntimeError):
    """A checkpoint cannot be written, or does not fit the model/optimizer/run it is loaded into."""


class ConfigError(QuicqError, ValueError):
    """A training config (or something it names: a model, a data set) is unusable; the message says which key."""
