"""Hardware for a whole training run: one model-level bridge, QuIC blocks and Quantum-PEFT columns alike.

:func:`attach_hardware` puts a :class:`~quicq.hardware.model_bridge.ModelHardwareBridge` on the
model: every adapted layer's QuIC blocks (a
:class:`~quicq.hardware.tomography.BlockTomography` per layer) and Quantum-PEFT U / V columns (a
:class:`~quicq.hardware.pauli_tomography.PauliTomography` each) are estimated in **one**
primitive job per forward, and all their shifted (parameter shift) or perturbed (SPSA) bindings
in one more per backward — 2 jobs per parameter-shift step however many layers are adapted.

Mitigation options (a training config's ``[mitigation]`` table) are routed by name:
:func:`route_options` hands each key to the backend constructor or to the tomography
constructor that declares it, and refuses a key neither declares — before anything runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from quicq.training.errors import ConfigError
from quicq.training.rng import find_generators

__all__ = ["attach_hardware", "hardware_generators", "route_options", "tomography_options"]


def _init_names(cls: type) -> set[str]:
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}


def tomography_options(method: str) -> set[str]:
    """Option names the tomography plan of an adapter ``method`` takes (beyond circuit and size)."""
    if method == "quic":
        from quicq.hardware.tomography import BlockTomography

        return _init_names(BlockTomography) - {"circuit", "orders"}
    from quicq.hardware.pauli_tomography import PauliTomography

    return _init_names(PauliTomography) - {"circuit", "K"}


def route_options(options: Mapping[str, Any], backend_cls: type, method: str, *,
                  reserved: Iterable[str] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``options`` into (backend constructor kwargs, tomography kwargs) by the names each declares.

    A key both declare goes to both; a key neither declares, or one in ``reserved`` (set
    elsewhere in the config), raises :class:`ConfigError` listing what is accepted.
    """
    from quicq.hardware.spec import backend_options

    b_names = backend_options(backend_cls) - set(reserved)
    t_names = tomography_options(method) - set(reserved)
    to_backend, to_tomo = {}, {}
    for key, val in options.items():
        if key in reserved:
            raise ConfigError(f"'mitigation.{key}' is set elsewhere in the config ([backend]); remove it here")
        if key not in b_names and key not in t_names:
            raise ConfigError(
                f"unknown mitigation option 'mitigation.{key}': {backend_cls.__name__} accepts {sorted(b_names)}, "
                f"the {method} tomography accepts {sorted(t_names)}")
        if key in b_names:
            to_backend[key] = val
        if key in t_names:
            to_tomo[key] = val
    return to_backend, to_tomo


def attach_hardware(model: Any, backend: Any, gradient: str, *, magnitudes: bool = True, postselect: bool = True,
                    spsa_eps: float = 0.1, seed: int | None = None,
                    tomography: Mapping[str, Any] | None = None) -> Any:
    """Put one :class:`~quicq.hardware.model_bridge.ModelHardwareBridge` on every adapted layer of ``model``.

    ``tomography``: further plan options (routed by :func:`route_options`). Bad options raise
    :class:`ConfigError` before anything is submitted.
    """
    from quicq.hardware.model_bridge import BridgeError, ModelHardwareBridge

    opts = dict(tomography or {})
    method = opts.pop("method", "derived")  # a BlockTomography option the bridge takes by name
    try:
        return ModelHardwareBridge(model, backend, gradient=gradient, magnitudes=magnitudes, postselect=postselect,
                                   method=method, tomography=opts, spsa_eps=spsa_eps, seed=seed)
    except BridgeError as exc:
        raise ConfigError(f"[mitigation] / [train]: {exc}") from None


def hardware_generators(bridge: Any) -> dict[str, np.random.Generator]:
    """Named random generators a bit-exact resume restores: the backend's shot sampler (and, for a
    :class:`~quicq.hardware.packing.PackedBackend`, its inner backend's) and the bridge's SPSA streams."""
    backend = bridge.backend
    return find_generators(backend, getattr(backend, "inner", None), prefix="backend") | bridge.generators()

