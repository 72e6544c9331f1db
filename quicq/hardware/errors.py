"""Errors of the hardware path, and secret redaction for every message they carry.

A failing backend is never silently dropped: after its retries it raises
:class:`BackendError`, whose message names the backend, the attempt count and the cause.
Messages that may quote third-party exceptions pass through :func:`redact` first, so an IBM
API token can never leak into an exception text, a log record, a manifest or a checkpoint.
"""

from __future__ import annotations

import os

from quicq.errors import QuicqError

# Environment variables whose values are secrets. Their values are read only at redaction time
# (no copy of a token is kept here); see quicq.hardware.ibm for how they are used.
SECRET_ENV_VARS: tuple[str, ...] = ("QISKIT_IBM_TOKEN",)
_MASK = "***"


class HardwareError(QuicqError, RuntimeError):
    """Base class of quicq's hardware-path errors."""


class BackendError(HardwareError):
    """A backend job failed (after its retries), or a request cannot be run on that backend."""


class BackendTimeoutError(BackendError):
    """A backend job did not finish within its timeout (transient: retried)."""


class TransientBackendError(BackendError):
    """A failure that may succeed when the same job is submitted again (retried)."""


class CredentialsError(BackendError):
    """No usable IBM Quantum credentials, or the service could not be reached with them."""


class MitigationError(BackendError, ValueError):
    """A mitigation option the backend or the plan cannot honour (raised before submission)."""


# Exception classes (qiskit, qiskit-ibm-runtime, requests, urllib3), matched by name over the
# MRO so this module imports none of them, that mean "the service or the network failed this
# attempt": a job failure the service reports (RuntimeJobFailureError derives from qiskit's
# JobError), a job or HTTP timeout, a dropped connection, an HTTP error the API returned.
_TRANSIENT_NAMES = frozenset({
    "JobError", "JobTimeoutError", "RuntimeInvalidStateError", "RequestsApiError",
    "ProtocolError", "MaxRetryError", "ReadTimeout", "ConnectTimeout",
})
# HTTP statuses of a request that was understood and refused: resubmitting cannot help.
_PERMANENT_HTTP = frozenset({400, 401, 403, 404, 405, 409, 410, 413, 422})


def is_transient(exc: BaseException) -> bool:
    """True when resubmitting the same job may succeed: timeouts, connection failures, job
    failures reported by the service, HTTP errors other than a refused request.

    Permanent (raised at once, never resubmitted): TypeError, ValueError (including
    qiskit-ibm-runtime's input errors), a circuit the transpiler or the device rejects, an
    exceeded maximum execution time, and every quicq error except the transient ones.
    """
    if isinstance(exc, (TransientBackendError, BackendTimeoutError, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, (QuicqError, TypeError, ValueError, AttributeError, KeyError, IndexError)):
        return False
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status in _PERMANENT_HTTP:
        return False
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__)


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
