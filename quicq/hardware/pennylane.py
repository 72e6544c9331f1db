"""PennyLane devices as a quicq backend.

Circuits are compiled from the IR with :func:`quicq.circuits.pennylane_io.to_pennylane` (never
through Qiskit: docs/design.md#environment). Every task becomes one broadcast tape (the (B, P) angle array is
PennyLane parameter broadcasting) measuring ``qml.sample`` (shots) or ``qml.probs`` (exact);
all tapes of a call run in one ``qml.execute``. Shots are set on the tapes — the tape-level
form of ``qml.set_shots`` — never on the device (deprecated). PennyLane orders wires like
quicq (wire 0 = most significant bit), so no reordering is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quicq.circuits.bitorder import bits_to_index
from quicq.circuits.pennylane_io import _import_pennylane, to_pennylane
from quicq.hardware.backends import Backend, Task
from quicq.hardware.outcome import Outcome


class PennyLaneBackend(Backend):
    """A PennyLane simulator (``"default.qubit"``, ``"lightning.qubit"``, …) as a backend.

    Args:
        device: device name; one device per qubit count is created and reused.
        shots: default shots per binding; ``None`` (default) for exact probabilities.
        seed: device seed: successive calls continue its random stream (reproducible runs).
        retries, retry_delay, timeout: see :class:`~quicq.hardware.backends.Backend`
            (execution is synchronous, so ``timeout`` does not apply).
    """

    def __init__(self, device: str = "default.qubit", shots: int | None = None, *,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(shots, **kwargs)
        self._qml = _import_pennylane()
        self.device_name = device
        self.seed = seed
        self.name = f"pennylane[{device}]"
        self._devices: dict[int, Any] = {}
        self._qfuncs: dict[Any, Any] = {}

    def _device(self, n: int) -> Any:
        dev = self._devices.get(n)
        if dev is None:
            seed = None if self.seed is None else self.seed + 7919 * n
            dev = self._qml.device(self.device_name, wires=n, seed=seed)
            self._devices[n] = dev
        return dev

    def _tape(self, circuit: Any, angles: np.ndarray, shots: int | None) -> Any:
        qml = self._qml
        qfunc = self._qfuncs.get(circuit)
        if qfunc is None:
            qfunc = self._qfuncs[circuit] = to_pennylane(circuit)
        ops = qml.tape.make_qscript(qfunc)(angles).operations
        wires = list(range(circuit.n_qubits))
        meas = qml.sample(wires=wires) if shots is not None else qml.probs(wires=wires)
        return qml.tape.QuantumScript(ops, [meas], shots=shots)

    def _run(self, tasks: list[Task], shots: int | None) -> list[Outcome]:
        qml = self._qml
        # One execute per qubit count (a device has a fixed number of wires).
        by_n: dict[int, list[int]] = {}
        for i, (c, _) in enumerate(tasks):
            by_n.setdefault(c.n_qubits, []).append(i)
        out: list[Outcome | None] = [None] * len(tasks)
        for n, idx in by_n.items():
            tapes = [self._tape(tasks[i][0], tasks[i][1], shots) for i in idx]
            results = qml.execute(tapes, self._device(n))
            for i, res in zip(idx, results):
                B = tasks[i][1].shape[0]
                arr = np.asarray(res)
                if shots is None:
                    arr = np.broadcast_to(arr.reshape(-1, 1 << n), (B, 1 << n)).astype(float)
                    out[i] = Outcome(n, None, probs=np.clip(arr, 0.0, None))
                else:
                    arr = arr.reshape(-1, shots, n)
                    if arr.shape[0] == 1 and B > 1:  # no parametric gate: not broadcast
                        arr = np.concatenate([arr] + [np.asarray(qml.execute(
                            [self._tape(tasks[i][0], tasks[i][1][:1], shots)], self._device(n))[0]
                        ).reshape(1, shots, n) for _ in range(B - 1)])
                    out[i] = Outcome(n, shots, indices=bits_to_index(arr))
        return out  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"PennyLaneBackend(device={self.device_name!r}, shots={self.shots}, seed={self.seed})"
