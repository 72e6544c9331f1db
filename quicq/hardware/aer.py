"""Qiskit Aer backend: ideal or noisy simulation, one SamplerV2 call per estimate.

Design (docs/design.md#tomography, docs/design.md#environment):

* The simulator is built **once**. For a device noise model that is
  ``AerSimulator.from_backend(fake)`` — ``SamplerV2(mode=fake)`` would rebuild the noise model
  on every call (seconds on the larger fake devices).
* Each circuit structure is transpiled **once** (Aer rejects the custom ``rbs``/``fbs`` gates
  until they are lowered; for a device the transpiler also maps to its basis and coupling map
  with a fixed seed and optimisation level); afterwards only parameter values change.
* All circuits of one :meth:`~quicq.hardware.backends.Backend.sample` call go into **one**
  ``qiskit_aer.primitives.SamplerV2`` run, as PUBs ``(circuit, values (B, P))``.
* ``shots=None`` gives exact probabilities via ``save_probabilities`` on the final physical
  qubits: statevector for an ideal simulator, density matrix with noise (gate noise only —
  readout errors act on measurements, which exact mode does not have).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quicq._optional import require

require("qiskit_aer", "qiskit")  # first: without the extra, name the pip line
from quicq.hardware._qiskit import (
    CompileCache,
    check_layout,
    layout_transpiler,
    quicq_index_table,
)
from quicq.hardware.backends import Task, await_job
from quicq.hardware.errors import MitigationError
from quicq.hardware.mitigation import ReadoutMitigator
from quicq.hardware.outcome import Outcome
from quicq.hardware.qiskit_backend import QiskitBackend

# qiskit-aer 0.18.2 ignores bound parameter values of controlled rotations (cry, crx, crz, cp:
# the gate acts as if the angle were 0) whenever they are bound through ``parameter_binds`` —
# which is how its SamplerV2 binds PUB values. Controlled RYs (the IR's ``mcry``) would come out
# silently wrong, so ideal simulations are transpiled to a basis without those gates.
_AER_BROKEN_BINDS = frozenset({"cry", "crx", "crz", "cp", "cu1", "cu3", "mcry", "mcrx", "mcrz", "mcp",
                               "mcphase", "mcu1"})
AER_SAFE_BASIS: tuple[str, ...] = ("ry", "rz", "x", "h", "cx", "cz", "sx", "z", "s", "sdg", "u")


class AerBackend(QiskitBackend):
    """Qiskit Aer as a quicq backend.

    Its public surface for wrappers (packing) and the planner is :class:`~quicq.hardware.
    qiskit_backend.QiskitBackend`'s: :attr:`device`, :attr:`simulator` (= :attr:`transpile_backend`),
    :meth:`sampler`, :meth:`run_pubs`.

    Args:
        shots: default shots per binding; ``None`` for exact probabilities.
        seed: seeds a numpy ``Generator`` that draws one simulator seed per call, so repeated
            estimates are independent and the whole sequence is reproducible.
        noise: ``None`` (ideal), a fake IBM device (instance, class name like ``"FakeManilaV2"``
            or backend name like ``"fake_manila"``), or a ``qiskit_aer.noise.NoiseModel``.
        method: Aer simulation method for sampling (``"automatic"``, ``"statevector"``, …).
        optimization_level, seed_transpiler: fixed transpiler settings (deterministic layouts).
        simulator_options: passed to ``AerSimulator.set_options``. The default
            ``{"max_parallel_threads": 1}`` is deliberate: quicq's circuits are small, and Aer's
            own threading was measured 10–18× slower than one thread when the cores are shared
            (pytest -n 2, a training loop beside it). Pass ``{}`` to keep Aer's defaults.
        sampler: your own ``SamplerV2`` (e.g. ``qiskit_aer.primitives.SamplerV2`` with its own
            options) to run the shots instead of the one built on the simulator; quicq then
            sets no seed on it. Transpilation still targets ``noise`` (its basis and coupling
            map), exact mode still uses the simulator.
        pass_manager: your own pass manager (anything with ``run(circuit)``) instead of the
            preset one; ``initial_layout``: the physical qubits of IR qubits 0, 1, … for the
            preset pass manager (device noise only). Not both.
        calibration_shots: shots per M3 calibration circuit (``readout="m3"`` plans).
        retries, retry_delay, timeout: see :class:`~quicq.hardware.backends.Backend`.

    IBM Runtime's error suppression (twirling, dynamical decoupling) does not exist in Aer's
    sampler: asking for it here is an error. Use
    :class:`~quicq.hardware.ibm.IBMRuntimeBackend`, whose client-side sampler applies both even
    on fake devices.
    """

    def __init__(self, shots: int | None = 1024, *, seed: int | None = None, noise: Any = None,
                 method: str = "automatic", optimization_level: int = 1, seed_transpiler: int = 1234,
                 simulator_options: dict[str, Any] | None = None, sampler: Any = None,
                 pass_manager: Any = None, initial_layout: Any = None, options: Any = None,
                 calibration_shots: int | None = None, **kwargs: Any) -> None:
        super().__init__(shots, **kwargs)
        from qiskit.transpiler import generate_preset_pass_manager
        from qiskit_aer import AerSimulator
        from qiskit_aer.noise import NoiseModel

        if options:
            raise MitigationError(
                f"AerBackend: runtime options {sorted(options)} (twirling, dynamical decoupling, …) "
                f"are IBM Runtime features that Aer's SamplerV2 does not have; use "
                f"IBMRuntimeBackend(fake_device, options=...) to run them locally on a fake device"
            )
        if sampler is not None and not callable(getattr(sampler, "run", None)):
            raise TypeError(f"AerBackend: sampler must be a SamplerV2 (with run()), got {type(sampler).__name__}")
        if pass_manager is not None and not callable(getattr(pass_manager, "run", None)):
            raise TypeError(f"AerBackend: pass_manager must have run(circuit), got {type(pass_manager).__name__}")
        if pass_manager is not None and initial_layout is not None:
            raise ValueError("AerBackend: give either pass_manager or initial_layout, not both")
        self.calibration_shots = calibration_shots
        self._mitigator = None

        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self.method = method
        self.optimization_level = optimization_level
        self._device = None
        self._noise_model = None
        if noise is None:
            self._sim = AerSimulator(method=method)
            self.name = "aer"
        elif isinstance(noise, NoiseModel):
            self._noise_model = noise
            self._sim = AerSimulator(method=method, noise_model=noise)
            self.name = "aer[noise model]"
        else:
            from quicq.hardware.ibm import fake_backend

            self._device = fake_backend(noise)
            self._sim = AerSimulator.from_backend(self._device, method=method)
            self.name = f"aer[{self._device.name}]"
        self.simulator_options = {"max_parallel_threads": 1} if simulator_options is None else dict(simulator_options)
        self._sim.set_options(**self.simulator_options)
        self._user_sampler = sampler
        self._sampler_obj = sampler  # else built on first sampling call, then reused (~8 ms to build)
        self._exact_sim = None  # built on first exact call (density matrix when noisy)
        # Read once: AerSimulator.num_qubits rebuilds Aer's target on every access.
        if self._device is not None:
            self._max_qubits: int | None = int(self._device.num_qubits)
        else:
            self._max_qubits = int(self._sim.num_qubits) if self._sim.num_qubits else None
        self.initial_layout = check_layout(initial_layout, self._max_qubits, self.name)
        if self.initial_layout is not None and self._device is None:
            raise ValueError("AerBackend: initial_layout needs a device (noise=fake device); an ideal "
                             "or noise-model simulator has no physical qubit map")
        if pass_manager is not None:
            transpile = pass_manager.run
        elif self._device is not None:  # the device's own basis and coupling map
            transpile = layout_transpiler(
                lambda layout: generate_preset_pass_manager(
                    backend=self._sim, optimization_level=optimization_level,
                    seed_transpiler=seed_transpiler, initial_layout=layout),
                self.initial_layout)
        else:
            basis = list(AER_SAFE_BASIS)
            if self._noise_model is not None:
                basis = [g for g in self._noise_model.basis_gates if g not in _AER_BROKEN_BINDS] or basis
            transpile = generate_preset_pass_manager(basis_gates=basis, optimization_level=optimization_level,
                                                     seed_transpiler=seed_transpiler).run
        self._cache = CompileCache(transpile)

    @property
    def max_qubits(self) -> int | None:
        return self._max_qubits

    def readout_mitigator(self) -> ReadoutMitigator:
        """M3 calibrations on this simulator (seeded from ``seed``), built on first use."""
        if self._mitigator is None:
            self._mitigator = ReadoutMitigator(self._sim, shots=self.calibration_shots,
                                               seed=None if self.seed is None else self.seed + 7919)
        return self._mitigator

    @property
    def simulator(self) -> Any:
        """The ``AerSimulator`` used for sampling (built once)."""
        return self._sim

    @property
    def device(self) -> Any:
        """The fake device whose noise, basis and coupling map are simulated; ``None`` without one."""
        return self._device

    @property
    def transpile_backend(self) -> Any:
        """The simulator: circuits are transpiled for its Target (the device's, with ``noise``)."""
        return self._sim

    def sampler(self, seed: int | None = None) -> Any:
        """Aer's ``SamplerV2`` on :attr:`simulator` (built once), seeded for the next job.

        A fresh simulator seed per job (drawn from the seeded stream unless ``seed`` is given)
        keeps repeated estimates independent and the run reproducible. Your own sampler is
        returned untouched.
        """
        if self._sampler_obj is None:
            from qiskit_aer.primitives import SamplerV2

            self._sampler_obj = SamplerV2.from_backend(self._sim)
        if self._user_sampler is None:
            self._sampler_obj.options.run_options["seed_simulator"] = self._seed() if seed is None else int(seed)
        return self._sampler_obj

    @property
    def noisy(self) -> bool:
        """True when the simulator carries a noise model."""
        return self._device is not None or self._noise_model is not None

    def _seed(self) -> int:
        return int(self._rng.integers(0, 2**31 - 1))

    def _run(self, tasks: list[Task], shots: int | None) -> list[Outcome]:
        return self._run_exact(tasks) if shots is None else self._run_shots(tasks, shots)

    def _exact_simulator(self) -> Any:
        if self._exact_sim is None:
            from qiskit_aer import AerSimulator

            if self._device is not None:
                self._exact_sim = AerSimulator.from_backend(self._device, method="density_matrix")
            elif self._noise_model is not None:
                self._exact_sim = AerSimulator(method="density_matrix", noise_model=self._noise_model)
            else:
                self._exact_sim = AerSimulator(method="statevector")
            self._exact_sim.set_options(**self.simulator_options)
        return self._exact_sim

    def _run_exact(self, tasks: list[Task]) -> list[Outcome]:
        from qiskit_aer.library import SaveProbabilities

        circuits, binds, sizes = [], [], []
        for circuit, angles in tasks:
            comp = self._cache.get(circuit, "probs")
            qc = comp.circuit.copy()
            qc.append(SaveProbabilities(circuit.n_qubits), list(comp.final_qubits))
            params = list(qc.parameters)  # same order as comp.slots
            if params:
                vals = comp.values(angles)
                binds.append({p: vals[:, i].tolist() for i, p in enumerate(params)})
                sizes.append(angles.shape[0])
            else:  # parameter-free: simulate once, repeat for every binding
                binds.append({})
                sizes.append(1)
            circuits.append(qc)
        job = self._exact_simulator().run(circuits, parameter_binds=binds)
        result = await_job(job, self.timeout)
        out, pos = [], 0
        for (circuit, angles), size in zip(tasks, sizes):
            perm = quicq_index_table(circuit.n_qubits)
            probs = np.stack([np.asarray(result.data(pos + i)["probabilities"], dtype=float)[perm]
                              for i in range(size)])
            pos += size
            if size == 1 and angles.shape[0] > 1:
                probs = np.repeat(probs, angles.shape[0], axis=0)
            probs = np.clip(probs, 0.0, None)
            out.append(Outcome(circuit.n_qubits, None, probs=probs / probs.sum(-1, keepdims=True)))
        return out

    def __repr__(self) -> str:
        return (f"AerBackend(name={self.name!r}, shots={self.shots}, seed={self.seed}, "
                f"method={self.method!r})")
