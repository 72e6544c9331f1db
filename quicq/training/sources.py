"""Hardware block sources for a whole model: QuIC blocks and Quantum-PEFT Pauli columns alike.

QuIC layers take their blocks from :class:`~quicq.hardware.bridge.HardwareBlockSource`
(:class:`QuICHardwareSource` only adds tomography options to it); Quantum-PEFT layers take
their U and V columns from :class:`PauliHardwareSource`, which wraps each Pauli circuit in the
same :class:`~quicq.hardware.hybrid.HardwareBlock` bridge with a
:class:`~quicq.hardware.pauli_tomography.PauliTomography` plan, so both adapters train with the
same gradients (parameter shift / SPSA / exact surrogate).

Mitigation options (a training config's ``[mitigation]`` table) are routed by name:
:func:`route_options` hands each key to the backend constructor or to the tomography
constructor that declares it, and refuses a key neither declares — before anything runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from quicq.hardware.bridge import HardwareBlockSource
from quicq.training.errors import ConfigError
from quicq.training.rng import find_generators

__all__ = ["PauliHardwareSource", "QuICHardwareSource", "attach_hardware", "fix_estimated_blocks",
           "route_options", "tomography_options"]


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


class QuICHardwareSource(HardwareBlockSource):
    """:class:`HardwareBlockSource` whose tomography plans also get ``tomography_options``."""

    def __init__(self, backend: Any, gradient: str = "parameter_shift", *,
                 tomography_options: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(backend, gradient, **kwargs)
        self.tomography_options = dict(tomography_options or {})

    def bridge(self, circuit: Any, orders: Iterable[int]) -> Any:
        key = (circuit, tuple(sorted(int(k) for k in orders)))
        hb = self._blocks.get(key)
        if hb is None:
            from quicq.hardware.hybrid import HardwareBlock
            from quicq.hardware.tomography import BlockTomography

            plan = BlockTomography(circuit, key[1], magnitudes=self.magnitudes, postselect=self.postselect,
                                   **self.tomography_options)
            seed = None if self.seed is None else self.seed + len(self._blocks)
            hb = HardwareBlock(None, self.backend, tomography=plan, gradient=self.gradient, shots=self.shots,
                               spsa_eps=self.spsa_eps, seed=seed)
            self._blocks[key] = hb
        return hb


class PauliHardwareSource:
    """A Quantum-PEFT :data:`~quicq.adapters.layer.ColumnSource` whose columns come from a backend.

    One :class:`~quicq.hardware.hybrid.HardwareBlock` per distinct (Pauli circuit, K); called
    as ``source(circuit, angles, K) -> (N, K)`` for U and for V of every layer.
    """

    def __init__(self, backend: Any, gradient: str = "parameter_shift", *, postselect: bool = True,
                 spsa_eps: float = 0.1, seed: int | None = None, shots: Any = None,
                 tomography_options: Mapping[str, Any] | None = None) -> None:
        from quicq.hardware.backends import DEFAULT_SHOTS
        from quicq.hardware.hybrid import GRADIENTS

        if gradient not in GRADIENTS:
            raise ConfigError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
        self.backend, self.gradient, self.postselect = backend, gradient, postselect
        self.spsa_eps, self.seed = spsa_eps, seed
        self.shots = DEFAULT_SHOTS if shots is None else shots
        self.tomography_options = dict(tomography_options or {})
        self._blocks: dict[tuple[Any, int], Any] = {}
        self.calls = 0

    def bridge(self, circuit: Any, K: int) -> Any:
        key = (circuit, int(K))
        hb = self._blocks.get(key)
        if hb is None:
            from quicq.hardware.hybrid import HardwareBlock
            from quicq.hardware.pauli_tomography import PauliTomography

            opts = {"postselect": self.postselect, **self.tomography_options}
            plan = PauliTomography(circuit, key[1], **opts)
            seed = None if self.seed is None else self.seed + len(self._blocks)
            hb = HardwareBlock(None, self.backend, tomography=plan, gradient=self.gradient, shots=self.shots,
                               spsa_eps=self.spsa_eps, seed=seed)
            self._blocks[key] = hb
        return hb

    def prepare(self, model: Any) -> PauliHardwareSource:
        """Build the bridges of every Quantum-PEFT layer of ``model`` now, in module order (for resume)."""
        for layer in model.quicq_layers().values():
            for a in layer.adapter_names():
                rank = layer.qpeft_spec[a].rank
                for which in ("u", "v"):
                    self.bridge(layer.circuit(a, which), rank)
        return self

    def generators(self) -> dict[str, np.random.Generator]:
        """Named random generators to checkpoint: the backend's sampler and each bridge's SPSA stream."""
        out = find_generators(self.backend, prefix="backend")
        for i, hb in enumerate(self._blocks.values()):
            out[f"bridge{i}.rng"] = hb.rng
        return out

    @property
    def last_results(self) -> list[Any]:
        return [hb.last_result for hb in self._blocks.values()]

    def __call__(self, circuit: Any, angles: torch.Tensor, K: int) -> torch.Tensor:
        self.calls += 1
        (cols,) = self.bridge(circuit, K)(angles)
        return cols


def attach_hardware(model: Any, backend: Any, gradient: str, *, magnitudes: bool = True, postselect: bool = True,
                    spsa_eps: float = 0.1, seed: int | None = None,
                    tomography: Mapping[str, Any] | None = None) -> Any:
    """Build the right source for ``model``'s adapter method, prepare it and set it on every layer."""
    method = next(iter(model.peft_config.values())).method
    if method == "quic":
        source: Any = QuICHardwareSource(backend, gradient, magnitudes=magnitudes, postselect=postselect,
                                         spsa_eps=spsa_eps, seed=seed, tomography_options=tomography)
    else:
        source = PauliHardwareSource(backend, gradient, postselect=postselect, spsa_eps=spsa_eps, seed=seed,
                                     tomography_options=tomography)
    source.prepare(model)
    model.set_block_source(source)
    return source


def fix_estimated_blocks(model: Any, source: Any) -> None:
    """Estimate every layer's blocks (or columns) once through ``source`` and pin them as fixed sources.

    Evaluation then runs any number of batches on one estimate per layer, as a deployed adapter
    would (and at the cost of one forward's circuits).
    """
    with torch.no_grad():
        for layer in model.quicq_layers().values():
            for a in layer.adapter_names():
                if hasattr(layer, "qpeft_spec"):
                    rank = layer.qpeft_spec[a].rank
                    cols = [source(layer.circuit(a, w), layer.angles(a, w).detach(), rank).detach().float()
                            for w in ("u", "v")]
                    layer.set_block_source(cols, a)
                else:
                    orders = layer.quic_spec[a].orders
                    blocks = source(layer.circuit(a), layer.angles(a).detach(), orders)
                    layer.set_block_source([b.detach().float() for b in blocks], a)
