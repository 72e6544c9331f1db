"""What every tomography plan is and returns: :class:`Tomography` and :class:`TomographyResult`.

A plan fixes its measured circuits once (so every backend transpiles them once) and reduces one
backend call's outcomes to blocks with error bars. :meth:`Tomography.run` is the one place that
binds angles, applies readout mitigation and assembles the result, for every plan:
:class:`~quicq.hardware.tomography.BlockTomography` (Hamming-weight-preserving circuits) and
:class:`~quicq.hardware.pauli_tomography.PauliTomography` (Pauli circuits).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from quicq.circuits.ir import Circuit
from quicq.hardware.backends import DEFAULT_SHOTS, Backend, as_angle_batch
from quicq.hardware.errors import MitigationError
from quicq.hardware.outcome import Outcome

__all__ = ["Key", "Tomography", "TomographyResult", "mitigation_report", "readout_mitigator"]

Key = Any  # int (Hamming weight k) or "columns"


@dataclass
class TomographyResult:
    """Blocks estimated from one backend call.

    Attributes:
        blocks: key → (..., rows, cols) estimate (projected when the plan projects). Keys are
            Hamming weights k for HW-preserving circuits, ``"columns"`` for Pauli circuits.
        stderr: key → per-entry standard errors (zeros in exact mode).
        raw: key → the combined estimate before projection.
        kept_fraction: key → (..., cols) fraction of Z-basis shots kept by post-selection per
            input column (``None`` when no Z-basis circuits were measured for that key).
        n_circuits: distinct circuits submitted (each run at every binding).
        circuit_labels: what each circuit measures.
        shots: shots per circuit and binding (``None``: exact).
        backend: backend name.
        method: estimation method.
        details: method-specific intermediate estimates (signed X estimates, magnitudes, …).
        mitigation: what mitigation ran, by technique: ``postselect``, ``readout`` (M3
            calibration summary or ``None``), ``zne`` (scales, fit, weights or ``None``),
            ``runtime`` (the backend's own suppression options, e.g. twirling, DD).
    """

    blocks: dict[Key, np.ndarray]
    stderr: dict[Key, np.ndarray]
    raw: dict[Key, np.ndarray]
    kept_fraction: dict[Key, np.ndarray | None]
    n_circuits: int
    circuit_labels: tuple[str, ...]
    shots: int | None
    backend: str
    method: str
    details: dict[str, Any] = field(default_factory=dict)
    mitigation: dict[str, Any] = field(default_factory=dict)

    @property
    def keys(self) -> tuple[Key, ...]:
        """Block keys in order."""
        return tuple(self.blocks)

    def __getitem__(self, key: Key) -> np.ndarray:
        return self.blocks[key]

    def summary(self) -> str:
        """One line per block: shape, mean standard error, mean kept fraction."""
        head = (f"tomography on {self.backend}: {self.n_circuits} circuits, shots={self.shots}, "
                f"method={self.method}")
        lines = [head]
        if self.mitigation:
            m = self.mitigation
            ro = m.get("readout")
            zne = m.get("zne")
            lines.append(f"  mitigation: postselect={m.get('postselect')}, readout="
                         f"{ro['method'] if isinstance(ro, dict) else ro}, zne="
                         f"{None if zne is None else tuple(zne['scales'])}, runtime={m.get('runtime') or {}}")
        for k, b in self.blocks.items():
            kept = self.kept_fraction.get(k)
            kf = "" if kept is None else f", kept {float(np.mean(kept)):.3f}"
            lines.append(f"  {k}: {b.shape[-2]}×{b.shape[-1]}, mean stderr "
                         f"{float(np.mean(self.stderr[k])):.2e}{kf}")
        return "\n".join(lines)


class Tomography(ABC):
    """A fixed set of measured circuits and the estimator that turns their outcomes into blocks."""

    circuit: Circuit
    method: str

    @property
    @abstractmethod
    def keys(self) -> tuple[Key, ...]:
        """Keys of the estimated blocks, in output order."""

    @property
    @abstractmethod
    def circuits(self) -> tuple[Circuit, ...]:
        """The measured circuits (preparation + circuit + basis change)."""

    @property
    @abstractmethod
    def labels(self) -> tuple[str, ...]:
        """One description per measured circuit."""

    @abstractmethod
    def shapes(self) -> tuple[tuple[int, int], ...]:
        """(rows, cols) of each block, in key order."""

    @abstractmethod
    def reduce(self, outcomes: list[Outcome], angles: np.ndarray, shots: int | None) -> dict[str, Any]:
        """Outcomes (one per circuit, batch B) → dict with blocks/stderr/raw/kept/details (batch B)."""

    @abstractmethod
    def exact(self, angles: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The exact engine's blocks (differentiable), in key order: the reference."""

    def gradient_plan(self) -> Tomography:
        """The plan the hybrid bridge uses for shifted estimates by default (see BlockTomography)."""
        return self

    def tasks(self, angles: np.ndarray) -> list[tuple[Circuit, np.ndarray]]:
        """Every measured circuit at every binding (one backend call)."""
        return [(c, angles) for c in self.circuits]

    def mitigation(self) -> dict[str, Any]:
        """The plan's mitigation options by name (post-selection, readout, ZNE)."""
        zne = getattr(self, "zne", None)
        # a signed-only block plan (magnitudes=False) measures nothing that post-selection acts on
        return {"postselect": bool(getattr(self, "postselect", False)) and bool(getattr(self, "magnitudes", True)),
                "readout": getattr(self, "readout", None),
                "zne": None if zne is None else zne.report()}

    def run(self, backend: Backend, angles: Any, shots: int | None | Any = DEFAULT_SHOTS) -> TomographyResult:
        """Estimate the blocks at ``angles`` (shape (..., n_params)) with one backend call.

        With ``readout="m3"`` the backend's readout mitigator corrects every outcome (its
        calibration is one extra job the first time a physical qubit is used). A backend that
        cannot mitigate raises :class:`~quicq.hardware.errors.MitigationError` before anything
        is submitted.
        """
        th = np.asarray(angles.detach().cpu().numpy() if hasattr(angles, "detach") else angles,
                        dtype=np.float64)
        lead = th.shape[:-1]
        flat = as_angle_batch(self.circuit, th.reshape(-1, th.shape[-1]) if th.ndim else th, "angles")
        shots_used = backend.shots if shots is DEFAULT_SHOTS else shots
        mitigator = readout_mitigator(self, backend, shots_used)
        outcomes = backend.sample(self.tasks(flat), shots_used)
        if mitigator is not None:
            outcomes = [mitigator.correct(o) for o in outcomes]
        red = self.reduce(outcomes, flat, shots_used)

        def shape(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a.reshape(lead + a.shape[1:])

        return TomographyResult(
            blocks={k: shape(v) for k, v in red["blocks"].items()},
            stderr={k: shape(v) for k, v in red["stderr"].items()},
            raw={k: shape(v) for k, v in red["raw"].items()},
            kept_fraction={k: shape(v) for k, v in red["kept"].items()},
            n_circuits=len(self.circuits),
            circuit_labels=self.labels,
            shots=shots_used,
            backend=backend.name,
            method=self.method,
            details={k: shape(v) if isinstance(v, np.ndarray) else v for k, v in red.get("details", {}).items()},
            mitigation=mitigation_report(self, backend, mitigator),
        )


def readout_mitigator(plan: Tomography, backend: Backend, shots: int | None) -> Any:
    """The backend's readout mitigator if ``plan`` asks for readout mitigation, else ``None``.

    Raises :class:`~quicq.hardware.errors.MitigationError` before anything is submitted when the
    plan asks for it but the estimate is exact (no shots) or the backend cannot mitigate.
    """
    if getattr(plan, "readout", None) is None:
        return None
    if shots is None:
        raise MitigationError("readout mitigation corrects measured shots; shots=None (exact) has none")
    return backend.readout_mitigator()


def mitigation_report(plan: Tomography, backend: Backend, mitigator: Any) -> dict[str, Any]:
    """What mitigation an estimate of ``plan`` on ``backend`` ran (a result's ``mitigation``)."""
    report = plan.mitigation()
    if mitigator is not None:
        report["readout"] = mitigator.report()
    report["runtime"] = backend.mitigation_report()
    return report
