"""Error mitigation for block tomography: readout (M3), Hamming-weight post-selection, ZNE.

Each technique is a separate, named option, and every result reports which ones ran
(:meth:`Mitigation.report`):

* **Post-selection** (``postselect``, on by default): Z-basis outcomes outside the Hamming-weight
  sector are errors of an HW-preserving circuit and are dropped (:func:`hamming_mask`).
* **Readout** (``readout="m3"``): mthree's M3 corrects each measured distribution inside the
  subspace of the bitstrings observed. The correction runs on the *full* observed set (the
  out-of-sector strings included — a single readout flip always leaves the sector, so they hold
  exactly the mass M3 moves back), then post-selection renormalises the corrected
  quasi-probabilities to the sector. The X-basis sign circuits end with H gates and are read
  in Z, so their parities come from M3-corrected distributions as well. Calibrations belong to
  the backend (:meth:`~quicq.hardware.backends.Backend.readout_mitigator`), are keyed by the
  physical qubits the transpiled circuits measure (``mthree.utils.final_measurement_mapping``)
  and are taken once per qubit: later estimates, steps and plans reuse them.
* **ZNE** (``zne=True`` = ``ZNE((1, 3))``, or ``ZNE((1, 3, 5))``): every RBS/FBS gate g is folded to g·(g†·g)^m, scale
  λ = 2m + 1, with g† = RBS(−θ) written as Z_a·RBS(θ)·Z_a — Z gates are free (virtual RZ on
  IBM devices), so only the two-qubit noise grows, and each folded gate is still
  Hamming-weight preserving (post-selection and the vacuum sign reference keep working). CZ is
  self-inverse (folded to CZ^λ). Each unprojected block entry is extrapolated to λ = 0, then
  the block is projected onto O(n) — last, so the projection sees the extrapolated block.
  Why not mitiq: its folding acts on the *transpiled* two-qubit gates (CX/ECR), whose noise is
  not Hamming-weight preserving, and its factories extrapolate one scalar per executor call,
  while a block estimate extrapolates thousands of entries from one shared set of shots; the
  folding here is a few IR gates and the fit is one weighted sum.
* **Runtime suppression** (twirling, dynamical decoupling) is an option of the IBM backend, not
  of the plan: see :class:`~quicq.hardware.ibm.IBMRuntimeBackend`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from quicq.circuits.ir import Circuit, Gate
from quicq.hardware.errors import MitigationError
from quicq.hardware.outcome import Outcome
from quicq.circuits.bitorder import qiskit_index
from quicq.circuits.gates import GIVENS_GATES

READOUT_METHODS: tuple[str, ...] = ("m3",)
ZNE_FITS: tuple[str, ...] = ("linear", "richardson")

#: :class:`~quicq.hardware.tomography.BlockTomography` options for blocks from a noisy device —
#: the demo's mitigated path. Chosen on ``benchmarks/mitigation.py`` (results/mitigation.json:
#: Aer with FakeManila / FakeTorino noise, n = 4..8, orders {1, 2}, equal total shots; the
#: ratios are means over its 7 device × n rows of raw error / variant error):
#:
#: * the signed-only estimator (``magnitudes=False``) is the big win: 3.44× lower mean block
#:   error than raw, where post-selection + M3 + ZNE on the default estimator reach only 1.62×.
#:   Its magnitudes √p̂ are post-selected and renormalised — not linear in the noise, so ZNE
#:   extrapolates them badly — while the signed estimate is linear in the shot frequencies;
#: * ZNE (λ = 1, 3) on top: 3.46×, mean error 0.0163 vs 0.0192; it helped in 5 of 7 rows (the
#:   larger, noisier circuits) and hurt on FakeTorino at n = 4, 5, where its 2.5× variance
#:   amplification outweighs the small bias. It doubles the executions at the same total shots;
#: * M3 is left out: on the signed estimator it changed nothing beyond the error bars (3.41×
#:   with ZNE, 3.03× vs 3.44× without) and costs a calibration job.
NOISY_BLOCK_TOMOGRAPHY: dict[str, Any] = {"magnitudes": False, "zne": True}


# ---------------------------------------------------------------------------------------------
# Post-selection
# ---------------------------------------------------------------------------------------------


def hamming_mask(bits: np.ndarray, k: int) -> np.ndarray:
    """Which shots (rows of a (..., n) 0/1 array) have Hamming weight ``k``: the post-selection rule."""
    return np.asarray(bits).sum(-1) == k


# ---------------------------------------------------------------------------------------------
# Zero-noise extrapolation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZNE:
    """Zero-noise extrapolation by RBS folding.

    Args:
        scales: odd noise scale factors λ (1 = the circuit itself), at least two, distinct.
            Default (1, 3): in a pilot on FakeTorino noise (n = 7, pyramid, 6000 shots per
            scale, angles not used by the benchmark) the projected blocks' error grew with λ
            but not linearly up to λ = 5 (≈ 300 two-qubit gates): a line through 1, 3, 5
            extrapolated *worse* than no ZNE (0.062 vs 0.044 mean max-entry error with M3),
            Richardson through 1, 3, 5 gave 0.057 (its 5.2× variance amplification), the line
            through 1, 3 gave 0.035. ``benchmarks/mitigation.py`` reports both scale sets.
        fit: ``"linear"`` (least-squares line through every scale, the default) or
            ``"richardson"`` (the polynomial through all scales; the same for two scales). At
            λ = 1, 3, 5 the linear fit's weights (13/12, 1/3, −5/12) amplify shot variance
            1.46×, Richardson's (15/8, −5/4, 3/8) 5.2×; at λ = 1, 3 both are (3/2, −1/2), 2.5×.
    """

    scales: tuple[int, ...] = (1, 3)
    fit: str = "linear"

    def __post_init__(self) -> None:
        sc = tuple(self.scales)
        if len(sc) < 2 or len(set(sc)) != len(sc) or any(
                isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 or s % 2 == 0 for s in sc):
            raise MitigationError(f"ZNE scales must be ≥ 2 distinct odd positive ints (1, 3, 5, …), got {self.scales!r}")
        if self.fit not in ZNE_FITS:
            raise MitigationError(f"ZNE fit must be one of {ZNE_FITS}, got {self.fit!r}")
        object.__setattr__(self, "scales", tuple(int(s) for s in sc))

    @property
    def weights(self) -> np.ndarray:
        """w with estimate(λ = 0) = Σ_s w_s · estimate(λ_s): linear in the measured values."""
        lam = np.asarray(self.scales, dtype=np.float64)
        deg = 1 if self.fit == "linear" else len(lam) - 1
        V = np.vander(lam, deg + 1, increasing=True)  # columns 1, λ, λ², …
        return np.linalg.pinv(V)[0]  # row giving the constant coefficient

    def extrapolate(self, values: Sequence[np.ndarray], variances: Sequence[np.ndarray]
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-entry zero-noise value and variance (independent estimates at each scale)."""
        w = self.weights
        est = sum(wi * v for wi, v in zip(w, values))
        var = sum(wi**2 * v for wi, v in zip(w, variances))
        return est, var

    def report(self) -> dict[str, Any]:
        return {"scales": list(self.scales), "fit": self.fit, "weights": [float(x) for x in self.weights],
                "folding": "RBS(θ)·[Z·RBS(θ)·Z]·RBS(θ)…"}


def as_zne(spec: Any) -> ZNE | None:
    """``None``/``False`` → no ZNE; ``True`` → ZNE(); a tuple of scales or a :class:`ZNE` as given."""
    if spec is None or spec is False:
        return None
    if spec is True:
        return ZNE()
    if isinstance(spec, ZNE):
        return spec
    if isinstance(spec, dict):
        return ZNE(**spec)
    if isinstance(spec, (tuple, list)):
        return ZNE(tuple(spec))
    raise MitigationError(f"zne must be None, True, a tuple of odd scales or a ZNE, got {spec!r}")


def fold(circuit: Circuit, scale: int) -> Circuit:
    """``circuit`` with every two-qubit gate folded to noise scale ``scale`` (odd).

    RBS/FBS g → g·(g†·g)^m with g† = Z_a·g·Z_a (a = the gate's first qubit: conjugating by Z on
    one qubit negates the off-diagonal terms, i.e. the angle); CZ → CZ^scale. The folded circuit
    equals the original exactly, stays Hamming-weight preserving and keeps its parameter slots.
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1 or scale % 2 == 0:
        raise MitigationError(f"fold: scale must be an odd positive int, got {scale!r}")
    if scale == 1:
        return circuit
    m = (scale - 1) // 2
    gates: list[Gate] = []
    for g in circuit.gates:
        if g.name in GIVENS_GATES:
            za = Gate("z", (g.qubits[0],))
            gates.append(g)
            for _ in range(m):
                gates += [za, g, za, g]
        elif g.name == "cz":
            gates += [g] * scale
        elif len(g.qubits) > 1:
            raise MitigationError(f"fold: no Hamming-weight-preserving fold for gate {g.name!r}")
        else:
            gates.append(g)
    return Circuit(circuit.n_qubits, tuple(gates), circuit.n_params, dict(circuit.meta))


# ---------------------------------------------------------------------------------------------
# Readout mitigation (M3)
# ---------------------------------------------------------------------------------------------


class _SeededSystem:
    """An Aer simulator as mthree's calibration "system", with a seed per calibration job.

    mthree submits its calibration circuits through ``system.run(circuits, shots=…, rep_delay=…,
    job_tags=…)``; Aer has no use for the last two, and without a seed the calibration (hence
    every corrected estimate) would not be reproducible. Everything else is the simulator's.
    """

    def __init__(self, system: Any, rng: np.random.Generator) -> None:
        self._system = system
        self._rng = rng

    def run(self, circuits: Any, shots: int | None = None, **_: Any) -> Any:
        return self._system.run(circuits, shots=shots, seed_simulator=int(self._rng.integers(1, 2**31 - 1)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._system, name)


class ReadoutMitigator:
    """M3 readout calibrations of one backend, taken per physical qubit on first use and reused.

    Args:
        system: what mthree calibrates on (an ``AerSimulator``, a fake device, an ``IBMBackend``).
        shots: calibration shots per circuit (mthree's default: min(10 000, the device's maximum)).
        seed: simulators only: seeds the calibration jobs (reproducible corrections).
        simulator: whether ``system`` is a local simulator (then seeded, 'independent' cals).
    """

    def __init__(self, system: Any, *, shots: int | None = None, seed: int | None = None,
                 simulator: bool = True) -> None:
        try:
            import mthree
        except ImportError as exc:
            raise MitigationError("readout mitigation needs mthree: pip install 'quicq[qiskit]'") from exc
        self._system = _SeededSystem(system, np.random.default_rng(seed)) if simulator else system
        self._m3 = mthree.M3Mitigation(self._system)
        self.shots = shots
        self.simulator = simulator
        self._qubits: set[int] = set()
        self._lock = threading.Lock()
        self.calibration_jobs = 0

    @property
    def calibrated_qubits(self) -> tuple[int, ...]:
        """Physical qubits with a calibration, sorted."""
        return tuple(sorted(self._qubits))

    def calibrate(self, qubits: Iterable[int]) -> None:
        """Calibrate the physical qubits not calibrated yet (one job; nothing if all are)."""
        with self._lock:
            missing = sorted({int(q) for q in qubits} - self._qubits)
            if not missing:
                return
            self._m3.cals_from_system(qubits=missing, shots=self.shots, async_cal=False,
                                      method="independent" if self.simulator else "balanced")
            self._qubits.update(missing)
            self.calibration_jobs += 1

    def correct(self, outcome: Outcome) -> Outcome:
        """Readout-corrected quasi-probabilities of a shot outcome (calibrating first if needed)."""
        if outcome.indices is None:
            raise MitigationError("readout mitigation needs per-shot outcomes; exact probabilities have no readout")
        if outcome.physical_qubits is None:
            raise MitigationError("readout mitigation needs the physical qubits the outcome was measured on")
        n = outcome.n_qubits
        phys = list(outcome.physical_qubits)
        self.calibrate(phys)
        counts = outcome.counts()
        # mthree speaks Qiskit bitstrings (clbit 0 = IR qubit 0 rightmost): convert via bitorder
        dicts = []
        for row in counts:
            nz = np.flatnonzero(row)
            dicts.append({format(qiskit_index(int(i), n), f"0{n}b"): int(row[i]) for i in nz})
        quasi = self._m3.apply_correction(dicts, phys)
        probs = np.zeros((outcome.batch, 1 << n))
        for b, q in enumerate(quasi):
            for key, val in q.items():
                probs[b, qiskit_index(int(key, 2), n)] = val
        probs /= probs.sum(-1, keepdims=True)
        return Outcome(n, outcome.shots, probs=probs, physical_qubits=outcome.physical_qubits)

    def report(self) -> dict[str, Any]:
        return {"method": "m3", "calibrated_qubits": list(self.calibrated_qubits),
                "calibration_shots": self._m3.cal_shots, "calibration_jobs": self.calibration_jobs,
                "cal_method": self._m3.cal_method}


def check_readout(readout: Any) -> str | None:
    """Validate a ``readout`` option: ``None`` or one of :data:`READOUT_METHODS`."""
    if readout is None or readout is False:
        return None
    if readout not in READOUT_METHODS:
        raise MitigationError(f"readout must be None or one of {READOUT_METHODS}, got {readout!r}")
    return str(readout)
