"""Independent simulators used to cross-check the exact engine."""

from quicq.errors import QuicqError

__all__ = ["WitnessError"]


class WitnessError(QuicqError, RuntimeError):
    """A witness simulator failed or returned amplitudes a real quicq circuit cannot have."""
