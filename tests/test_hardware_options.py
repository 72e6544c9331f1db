"""Your sampler, your options: user samplers, runtime options, pass managers, layouts, retries."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from quicq.circuits import pyramid
from quicq.hardware import AerBackend, BlockTomography, ExactBackend, IBMRuntimeBackend
from quicq.hardware import backends as backends_mod
from quicq.hardware.errors import BackendError, MitigationError, TransientBackendError, is_transient

TWIRL = {"twirling": {"enable_gates": True, "enable_measure": True}}


class _Counting:
    """A real sampler behind a call counter (what quicq submits is unchanged)."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.calls = 0

    def run(self, pubs, shots=None):
        self.calls += 1
        return self.sampler.run(pubs, shots=shots)


def test_aer_runs_a_users_sampler():
    from qiskit_aer.primitives import SamplerV2

    mine = _Counting(SamplerV2(seed=7))
    be = AerBackend(256, sampler=mine)
    circ = BlockTomography(pyramid(3)).circuits[0]
    (out,) = be.sample([(circ, np.zeros((2, 3)))])
    assert mine.calls == 1 and out.shots == 256 and out.physical_qubits == (0, 1, 2)


def test_aer_refuses_runtime_options_and_bad_arguments():
    with pytest.raises(MitigationError, match="IBM Runtime features"):
        AerBackend(100, options=TWIRL)
    with pytest.raises(TypeError, match="sampler"):
        AerBackend(100, sampler=object())
    with pytest.raises(TypeError, match="pass_manager"):
        AerBackend(100, pass_manager="level3")
    with pytest.raises(ValueError, match="initial_layout needs a device"):
        AerBackend(100, initial_layout=[0, 1])


def test_initial_layout_and_pass_manager_are_used():
    be = AerBackend(64, noise="FakeManilaV2", seed=1, initial_layout=[4, 3, 2])
    circ = BlockTomography(pyramid(3)).circuits[0]
    (out,) = be.sample([(circ, np.zeros(3))])
    assert out.physical_qubits == (4, 3, 2)
    assert be.max_qubits == 5
    with pytest.raises(ValueError, match="distinct"):
        AerBackend(64, noise="FakeManilaV2", initial_layout=[1, 1])
    with pytest.raises(ValueError, match="outside"):
        AerBackend(64, noise="FakeManilaV2", initial_layout=[0, 9])
    from qiskit.transpiler import generate_preset_pass_manager

    seen = []
    pm = generate_preset_pass_manager(basis_gates=["ry", "rz", "cx", "h", "x", "sx"], optimization_level=0)

    class Recording:
        def run(self, qc):
            seen.append(qc.num_qubits)
            return pm.run(qc)

    AerBackend(32, pass_manager=Recording()).sample([(circ, np.zeros(3))])
    assert seen == [3]


def test_max_qubits_is_read_once(monkeypatch):
    be = AerBackend(16)
    first = be.max_qubits

    def boom(self):
        raise AssertionError("AerSimulator.num_qubits rebuilt on a hot path")

    monkeypatch.setattr(type(be.simulator), "num_qubits", property(boom))
    assert be.max_qubits == first
    be.sample([(pyramid(2), np.zeros(1))])


def test_executor_sampler_twirls_on_a_fake_device():
    """The client-side sampler applies twirling even locally: reported, exact shot count kept."""
    be = IBMRuntimeBackend("FakeManilaV2", shots=300, seed=3, options=TWIRL)
    assert be.sampler_kind == "executor"
    plan = BlockTomography(pyramid(3), readout="m3")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the executor sampler is not deprecated
        res = plan.run(be, np.zeros(3))
    assert res.shots == 300
    assert res.mitigation["runtime"]["twirling"] == TWIRL["twirling"]
    assert res.mitigation["runtime"]["sampler"] == "executor"
    assert np.abs(res.blocks[1] - np.eye(3)).max() < 0.2


def test_legacy_sampler_warns_and_refuses_ignored_options():
    with pytest.raises(MitigationError, match="would be ignored"):
        IBMRuntimeBackend("FakeManilaV2", sampler="legacy", options=TWIRL)
    be = IBMRuntimeBackend("FakeManilaV2", shots=64, seed=1, sampler="legacy")
    with pytest.warns(DeprecationWarning, match="SamplerV2 class is deprecated"):
        be.sample([(pyramid(2), np.zeros(1))])


def test_ibm_options_are_validated_before_submission():
    with pytest.raises(ValueError, match="invalid executor sampler options"):
        IBMRuntimeBackend("FakeManilaV2", options={"twirlng": {"enable_gates": True}})
    with pytest.raises(ValueError, match="sampler must be"):
        IBMRuntimeBackend("FakeManilaV2", sampler="server")
    with pytest.raises(ValueError, match="not both"):
        IBMRuntimeBackend("FakeManilaV2", pass_manager=_Counting(None), initial_layout=[0])


def test_ibm_runs_a_users_executor_sampler():
    from qiskit_ibm_runtime.executor_sampler import Sampler
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    dev = FakeManilaV2()
    mine = _Counting(Sampler(mode=dev))
    be = IBMRuntimeBackend(dev, shots=128, sampler=mine)
    (out,) = be.sample([(pyramid(2), np.zeros(1))])
    assert mine.calls == 1 and out.shots == 128 and be.mitigation_report()["sampler"] == "user"
    with pytest.raises(ValueError, match="options go on your own sampler"):
        IBMRuntimeBackend(dev, sampler=mine, options=TWIRL)


# ---- transient vs permanent failures -------------------------------------------------------------


class Failing(ExactBackend):
    """Raises the given exceptions on its first attempts, then runs."""

    name = "failing"

    def __init__(self, errors, **kw):
        super().__init__(None, **kw)
        self.errors = list(errors)
        self.attempts = 0

    def _run(self, tasks, shots):
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        return super()._run(tasks, shots)


def _transients():
    from qiskit.providers import JobError
    from qiskit_ibm_runtime.exceptions import RuntimeJobFailureError

    return [ConnectionError("reset"), TimeoutError("slow"), JobError("device fault"),
            RuntimeJobFailureError("job failed on the service"), TransientBackendError("retry me")]


@pytest.mark.parametrize("index", range(5))
def test_transient_failures_are_retried(monkeypatch, index):
    monkeypatch.setattr(backends_mod.time, "sleep", lambda s: None)
    exc = _transients()[index]
    assert is_transient(exc)
    be = Failing([exc], retries=3, retry_delay=0.0)
    (out,) = be.sample([(pyramid(3), np.zeros(3))])
    assert be.attempts == 2 and np.allclose(out.probs[0, 0], 1.0)


def test_permanent_failures_fail_at_once(monkeypatch):
    from qiskit.transpiler.exceptions import TranspilerError
    from qiskit_ibm_runtime.exceptions import IBMInputValueError

    monkeypatch.setattr(backends_mod.time, "sleep", lambda s: pytest.fail("a permanent error was retried"))
    for exc in (TypeError("unsupported operand"), TranspilerError("bad circuit: gate not in basis"),
                IBMInputValueError("invalid pub"), ValueError("shape mismatch")):
        assert not is_transient(exc)
        be = Failing([exc], retries=3, retry_delay=1.0)
        with pytest.raises(type(exc), match=str(exc).split(":")[0]):
            be.sample([(pyramid(3), np.zeros(3))])
        assert be.attempts == 1


def test_http_refusals_are_permanent_and_server_errors_transient():
    from qiskit_ibm_runtime.api.exceptions import RequestsApiError

    assert is_transient(RequestsApiError("503 service unavailable", status_code=503))
    assert not is_transient(RequestsApiError("401 unauthorized", status_code=401))


def test_transient_failures_still_exhaust_into_backend_error(monkeypatch):
    monkeypatch.setattr(backends_mod.time, "sleep", lambda s: None)
    be = Failing([ConnectionError("reset")] * 3, retries=3, retry_delay=0.0)
    with pytest.raises(BackendError, match=r"after 3 attempt\(s\)"):
        be.sample([(pyramid(3), np.zeros(3))])
