"""Backend spec strings — the one parser behind the CLI, training configs, the planner and the demo.

A spec names where circuits run::

    exact                     the torch engine (exact probabilities with shots=None, else sampled)
    aer                       ideal Qiskit Aer
    aer-noisy:<fake device>   Aer with a fake IBM device's noise model, e.g. aer-noisy:fake_manila
    fake:<fake device>        IBM Runtime local mode on a fake device, e.g. fake:fake_torino
    ibm:<device>              IBM Quantum (needs QISKIT_IBM_TOKEN or a saved account)
    pennylane:<device>        a PennyLane device, e.g. pennylane:lightning.qubit

A bare fake-device name (``fake_manila``, ``FakeManilaV2``) means ``fake:<name>``.
:func:`parse_backend_spec` checks the syntax without importing anything or touching the
network, so bad input fails before any expensive work; :func:`backend_from_spec` builds the
backend and passes extra keyword options (e.g. mitigation settings) to its constructor by name.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from quicq.errors import QuicqError

__all__ = ["BACKEND_HELP", "BACKEND_KINDS", "BACKEND_SPECS", "BackendSpec", "BackendSpecError",
           "backend_class", "backend_from_spec", "backend_kind_ok", "backend_options", "parse_backend_spec"]


class BackendSpecError(QuicqError, ValueError):
    """A backend spec string (or an option for it) is malformed; the message lists the valid forms."""


#: kind → (argument placeholder or None, one-line description). The single list of backend kinds.
BACKEND_KINDS: dict[str, tuple[str | None, str]] = {
    "exact": (None, "the exact torch engine"),
    "aer": (None, "ideal Qiskit Aer"),
    "aer-noisy": ("<fake device>", "Aer with a fake IBM device's noise, e.g. aer-noisy:fake_manila"),
    "fake": ("<fake device>", "IBM Runtime local mode on a fake device, e.g. fake:fake_torino"),
    "ibm": ("<device>", "IBM Quantum; needs QISKIT_IBM_TOKEN"),
    "pennylane": ("<device>", "a PennyLane device, e.g. pennylane:lightning.qubit"),
}
BACKEND_SPECS: tuple[str, ...] = tuple(k if a is None else f"{k}:{a}" for k, (a, _) in BACKEND_KINDS.items())
BACKEND_HELP: str = " | ".join(f"{s} ({d})" for s, (_, d) in zip(BACKEND_SPECS, BACKEND_KINDS.values()))


def _is_fake_name(name: str) -> bool:
    return name.startswith(("Fake", "fake_"))


@dataclass(frozen=True)
class BackendSpec:
    """A parsed spec: ``kind`` (a key of :data:`BACKEND_KINDS`) and its argument (or ``""``)."""

    kind: str
    arg: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


def parse_backend_spec(spec: Any) -> BackendSpec:
    """Check a spec string's syntax (no imports, no network) and return it parsed."""
    if not isinstance(spec, str) or not spec.strip():
        raise BackendSpecError(f"backend must be one of {', '.join(BACKEND_SPECS)}; got {spec!r}")
    text = spec.strip()
    if ":" not in text and _is_fake_name(text):
        text = f"fake:{text}"
    kind, _, arg = text.partition(":")
    if kind not in BACKEND_KINDS:
        raise BackendSpecError(f"unknown backend {spec!r}; use one of {', '.join(BACKEND_SPECS)}")
    placeholder = BACKEND_KINDS[kind][0]
    if placeholder is None and arg:
        raise BackendSpecError(f"backend {kind!r} takes no argument, got {spec!r}")
    if placeholder is not None and not arg:
        raise BackendSpecError(f"backend {kind!r} needs a name: {kind}:{placeholder}, got {spec!r}")
    if kind in ("fake", "aer-noisy") and not _is_fake_name(arg):
        raise BackendSpecError(f"{kind}:<name> needs a fake device name such as fake_manila, got {arg!r}")
    return BackendSpec(kind, arg)


def backend_kind_ok(spec: str) -> None:
    """Validate a spec's syntax; raises :class:`BackendSpecError` (a ``ValueError``)."""
    parse_backend_spec(spec)


def backend_class(spec: str | BackendSpec) -> type:
    """The quicq backend class a spec builds (imports that backend's module, nothing else)."""
    s = spec if isinstance(spec, BackendSpec) else parse_backend_spec(spec)
    if s.kind == "exact":
        from quicq.hardware.backends import ExactBackend

        return ExactBackend
    if s.kind in ("aer", "aer-noisy"):
        from quicq.hardware.aer import AerBackend

        return AerBackend
    if s.kind in ("fake", "ibm"):
        from quicq.hardware.ibm import IBMRuntimeBackend

        return IBMRuntimeBackend
    from quicq.hardware.pennylane import PennyLaneBackend

    return PennyLaneBackend


def backend_options(cls: type) -> set[str]:
    """Keyword names the constructor of ``cls`` accepts, following ``**kwargs`` up its MRO."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.name != "self"
                  and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def _aer_threads(threads: int | None) -> dict[str, Any]:
    return {} if threads is None else {"max_parallel_threads": int(threads)}


def backend_from_spec(spec: str, *, shots: int | None = 1024, seed: int | None = None,
                      retries: int = 3, retry_delay: float = 1.0, timeout: float | None = None,
                      sim_threads: int | None = 1, **options: Any) -> Any:
    """Build a quicq backend from a spec string (forms in the module docstring).

    ``sim_threads`` caps Aer's threads (see :class:`~quicq.hardware.aer.AerBackend`; ``None``:
    Aer's default). ``options`` go to the backend's constructor by name (for example the
    mitigation settings of a training config's ``[mitigation]`` table); a name the constructor
    does not take raises :class:`BackendSpecError` listing the ones it does, before anything is built.
    """
    s = parse_backend_spec(spec)
    cls = backend_class(s)
    accepted = backend_options(cls)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise BackendSpecError(f"backend {s} ({cls.__name__}) has no option {unknown[0]!r}; "
                               f"it accepts {sorted(accepted)}")
    common = {"retries": retries, "retry_delay": retry_delay, "timeout": timeout, **options}
    if s.kind == "exact":
        return cls(shots, seed=seed, **common)
    if s.kind in ("aer", "aer-noisy"):
        if s.kind == "aer-noisy":
            common.setdefault("noise", s.arg)
        common.setdefault("simulator_options", _aer_threads(sim_threads))
        return cls(shots, seed=seed, **common)
    if s.kind in ("fake", "ibm"):
        if shots is None:
            raise BackendSpecError(f"{s}: a device samples shots; give shots > 0")
        return cls(s.arg, shots=shots, seed=seed, **common)
    return cls(s.arg, shots, seed=seed, **common)
