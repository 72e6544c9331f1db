"""Errors of the hardware path, and secret redaction for every message they carry.

A failing backend is never silently dropped: after its retries it raises
:class:`BackendError`, whose message names the backend, the attempt count and the cause.
Messages that may quote third-party exceptions pass through :func:`redact` first, so an IBM
API token can never leak into an exception text, a log record, a manifest or a checkpoint.
"""

from __future__ import annotations

import os

# Environment variables whose values are secrets. Their values are read only at redaction time
# (no copy of a token is kept here); see quicq.hardware.ibm for how they are used.
SECRET_ENV_VARS: tuple[str, ...] = ("QISKIT_IBM_TOKEN",)
_MASK = "***"


class HardwareError(RuntimeError):
    """Base class of quicq's hardware-path errors."""


class BackendError(HardwareError):
    """A backend job failed (after its retries), or a request cannot be run on that backend."""


class BackendTimeoutError(BackendError):
    """A backend job did not finish within its timeout (retried like any other failure)."""


class CredentialsError(BackendError):
    """No usable IBM Quantum credentials, or the service could not be reached with them."""


def redact(text: object) -> str:
    """``str(text)`` with every secret (the values of :data:`SECRET_ENV_VARS`) masked."""
    s = str(text)
    for var in SECRET_ENV_VARS:
        secret = os.environ.get(var)
        if secret and len(secret) >= 4 and secret in s:
            s = s.replace(secret, _MASK)
    return s


def contains_secret(exc: BaseException) -> bool:
    """True when any exception in ``exc``'s cause/context chain quotes a secret.

    Such an exception must not be attached as ``__cause__`` of ours (its text would be printed
    in tracebacks); callers raise ``from None`` with a redacted summary instead.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = f"{e!s} {e!r}"
        if redact(text) != text:
            return True
        e = e.__cause__ or e.__context__
    return False


def describe(exc: BaseException) -> str:
    """One-line, redacted ``Type: message`` summary of an exception."""
    msg = redact(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}".rstrip(": ")
