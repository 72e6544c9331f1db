"""Where an IBM Runtime device comes from: fake devices offline, or an account's credentials.

Credentials (:class:`RuntimeAccount`): the token is read from ``QISKIT_IBM_TOKEN`` at connect
time and handed straight to ``QiskitRuntimeService``; quicq keeps no copy of it. Otherwise a
saved account (``QiskitRuntimeService.save_account``) is used. ``QISKIT_IBM_INSTANCE`` and
``QISKIT_IBM_CHANNEL`` (default ``ibm_quantum_platform``) select instance and channel. No repr,
log message or error text of this module contains the token (errors are redacted through
:func:`quicq.hardware.errors.redact`). The backend itself is :mod:`quicq.hardware.ibm`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

from quicq._optional import require

require("qiskit_ibm_runtime", "qiskit")  # first: without the extra, name the pip line
from quicq.hardware.errors import CredentialsError, contains_secret, describe  # noqa: E402

__all__ = ["CHANNEL_ENV", "DEFAULT_CHANNEL", "INSTANCE_ENV", "TOKEN_ENV", "RuntimeAccount", "fake_backend",
           "is_fake_name"]

TOKEN_ENV = "QISKIT_IBM_TOKEN"
INSTANCE_ENV = "QISKIT_IBM_INSTANCE"
CHANNEL_ENV = "QISKIT_IBM_CHANNEL"
DEFAULT_CHANNEL = "ibm_quantum_platform"

def fake_backend(spec: Any) -> Any:
    """Resolve a fake IBM device: an instance (returned as is), a class name or a backend name.

    ``"FakeManilaV2"`` (class in ``qiskit_ibm_runtime.fake_provider``) and ``"fake_manila"``
    (its ``backend.name``) both work.
    """
    from qiskit.providers import BackendV2

    if isinstance(spec, BackendV2):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"expected a fake backend instance or name, got {type(spec).__name__}")
    from qiskit_ibm_runtime import fake_provider

    # "fake_manila" → "FakeManilaV2" first: scanning the provider instantiates ~60 devices.
    guess = "Fake" + "".join(w.capitalize() for w in spec.split("_")[1:]) + "V2" if spec.startswith("fake_") else None
    for cand in (spec, guess):
        cls = getattr(fake_provider, cand, None) if cand else None
        if isinstance(cls, type) and issubclass(cls, BackendV2):
            dev = cls()
            if cand == spec or dev.name == spec:
                return dev
    with warnings.catch_warnings():  # some fake devices warn about their made-up properties
        warnings.simplefilter("ignore", UserWarning)
        for b in fake_provider.FakeProviderForBackendV2().backends():
            if b.name == spec:
                return b
    raise ValueError(
        f"unknown fake backend {spec!r}; use a class of qiskit_ibm_runtime.fake_provider such as "
        f"'FakeManilaV2', or its backend name such as 'fake_manila'"
    )


def is_fake_name(name: str) -> bool:
    """True for names of fake devices (``Fake…`` classes, ``fake_…`` backend names)."""
    return name.startswith(("Fake", "fake_"))


@dataclass(frozen=True)
class RuntimeAccount:
    """Where IBM Quantum credentials come from — never the token itself.

    Attributes:
        channel: ``"ibm_quantum_platform"`` or ``"ibm_cloud"``.
        instance: the instance CRN/name, or ``None`` to let the service choose.
        saved_name: name of a saved account to use when ``QISKIT_IBM_TOKEN`` is unset.
        filename: saved-accounts file (``None``: Qiskit's default ``~/.qiskit/qiskit-ibm.json``).
    """

    channel: str = DEFAULT_CHANNEL
    instance: str | None = None
    saved_name: str | None = None
    filename: str | None = None

    @classmethod
    def from_env(cls, *, saved_name: str | None = None, filename: str | None = None) -> RuntimeAccount:
        """Channel and instance from ``QISKIT_IBM_CHANNEL`` / ``QISKIT_IBM_INSTANCE``."""
        channel = os.environ.get(CHANNEL_ENV) or DEFAULT_CHANNEL
        return cls(channel=channel, instance=os.environ.get(INSTANCE_ENV) or None,
                   saved_name=saved_name, filename=filename)

    @property
    def token_in_env(self) -> bool:
        """Whether ``QISKIT_IBM_TOKEN`` is set (the value is never read here)."""
        return bool(os.environ.get(TOKEN_ENV))

    def connect(self) -> Any:
        """Build a ``QiskitRuntimeService``; the token goes from the environment straight into it.

        Raises:
            CredentialsError: no token and no saved account, or the service is unreachable /
                rejects the credentials. The message says which variables to set; it never
                contains the token.
        """
        from qiskit_ibm_runtime import QiskitRuntimeService
        from qiskit_ibm_runtime.accounts import AccountNotFoundError

        kwargs: dict[str, Any] = {"channel": self.channel}
        if self.instance:
            kwargs["instance"] = self.instance
        source = f"${TOKEN_ENV}" if self.token_in_env else "a saved account"
        try:
            if self.token_in_env:
                return QiskitRuntimeService(token=os.environ[TOKEN_ENV], **kwargs)
            return QiskitRuntimeService(name=self.saved_name, filename=self.filename, **kwargs)
        except AccountNotFoundError:
            raise CredentialsError(
                f"no IBM Quantum credentials: set {TOKEN_ENV} (and {INSTANCE_ENV}, optionally "
                f"{CHANNEL_ENV}; default channel {DEFAULT_CHANNEL!r}) or save an account with "
                f"QiskitRuntimeService.save_account(...). Offline, use a fake device such as "
                f"IBMRuntimeBackend('FakeManilaV2')"
            ) from None
        except Exception as exc:
            err = CredentialsError(
                f"could not connect to IBM Quantum (channel {self.channel!r}, credentials from "
                f"{source}): {describe(exc)}"
            )
            if contains_secret(exc):
                raise err from None
            raise err from exc
