"""IBM Runtime backend: fake devices in every execution mode, credentials, no token leaks."""

from __future__ import annotations

import logging
import os
import traceback

import numpy as np
import pytest

from quicq.circuits import Circuit, Gate, pyramid
from quicq.hardware import (
    AerBackend,
    BackendError,
    BlockTomography,
    CredentialsError,
    ExactBackend,
    IBMRuntimeBackend,
    RuntimeAccount,
    redact,
)
from quicq.hardware import backends as backends_mod

SECRET = "SECRET-TOKEN-123"
X02 = Circuit(3, (Gate("x", (0,)), Gate("x", (2,)), Gate("ry", (1,), 0)), 1)


@pytest.mark.parametrize("mode", ["job", "batch", "session"])
def test_fake_device_in_every_mode(mode):
    with IBMRuntimeBackend("FakeManilaV2", mode=mode, shots=300, seed=11) as be:
        assert be.local and be.max_qubits == 5
        for _ in range(2):
            (out,) = be.sample([(X02, np.zeros((2, 1)))])
            assert out.bits.shape == (2, 300, 3)
            freq = out.probabilities()
            assert np.all(freq.argmax(-1) == 5)  # |101⟩ = qubits 0 and 2 set
            assert np.all(freq[:, 5] > 0.8)  # readout noise, not wrong bits
        assert be.transpile_cache.misses == 1


def test_fake_device_names_and_errors():
    assert IBMRuntimeBackend("fake_manila", shots=10).device.name == "fake_manila"
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    be = IBMRuntimeBackend(FakeManilaV2(), shots=10)
    assert "fake_manila" in be.name
    with pytest.raises(ValueError, match="shots=None"):
        be.sample([(X02, np.zeros(1))], shots=None)
    with pytest.raises(ValueError, match="mode"):
        IBMRuntimeBackend("FakeManilaV2", mode="stream")
    big = pyramid(6)
    with pytest.raises(BackendError, match="only 5"):
        be.sample([(big, np.zeros(big.n_params))])


def test_fake_device_tomography_is_close():
    """Block tomography through Runtime's local mode (noisy FakeManila) lands near the exact block."""
    circ = pyramid(3)
    th = np.array([0.4, -0.9, 1.3])
    plan = BlockTomography(circ, (1,))
    res = plan.run(IBMRuntimeBackend("FakeManilaV2", shots=2000, seed=3), th)
    exact = plan.run(ExactBackend(), th, shots=None)
    assert np.abs(res[1] - exact[1]).max() < 0.1
    assert np.allclose(res[1] @ res[1].T, np.eye(3), atol=1e-10)
    assert 0.6 < res.kept_fraction[1].mean() < 1.0


def test_missing_credentials_name_the_variables(monkeypatch, tmp_path):
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    account = RuntimeAccount.from_env(filename=str(tmp_path / "no-accounts.json"))
    with pytest.raises(CredentialsError) as info:
        IBMRuntimeBackend("ibm_brisbane", account=account)
    msg = str(info.value)
    for var in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_CHANNEL", "save_account"):
        assert var in msg


def test_token_never_leaks(monkeypatch, caplog, tmp_path):
    """A token in the environment appears in no repr, log record or error text."""
    monkeypatch.setenv("QISKIT_IBM_TOKEN", SECRET)
    monkeypatch.setenv("QISKIT_IBM_CHANNEL", "ibm_quantum_platform")
    monkeypatch.delenv("QISKIT_IBM_INSTANCE", raising=False)
    texts = []
    with caplog.at_level(logging.DEBUG):
        account = RuntimeAccount.from_env(filename=str(tmp_path / "none.json"))
        assert account.token_in_env
        texts += [repr(account), str(account)]
        with pytest.raises(CredentialsError) as info:  # no network here: the connection fails
            IBMRuntimeBackend("ibm_brisbane", account=account)
        exc = info.value
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        assert "could not connect to IBM Quantum" in str(exc)
        # A failing job whose cause quotes the token: redacted, and the cause is not chained.
        monkeypatch.setattr(backends_mod.time, "sleep", lambda s: None)

        class LeakyBackend(ExactBackend):
            name = "leaky"

            def _run(self, tasks, shots):
                raise PermissionError(f"401 for token {os.environ['QISKIT_IBM_TOKEN']}")

        with pytest.raises(BackendError) as info2:
            LeakyBackend(retries=2, retry_delay=0.0).sample([(X02, np.zeros(1))])
        texts += [str(info2.value), repr(info2.value), "".join(traceback.format_exception(info2.value))]
        assert "***" in str(info2.value)
        for obj in (IBMRuntimeBackend("FakeManilaV2"), AerBackend(), ExactBackend()):
            texts += [repr(obj), str(obj)]
    texts += [caplog.text] + [r.getMessage() for r in caplog.records] + [repr(r.args) for r in caplog.records]
    assert caplog.records  # the credential path did log (library and retries)
    for t in texts:
        assert SECRET not in t
    assert redact(f"x{SECRET}y") == "x***y"


@pytest.mark.ibm
@pytest.mark.skipif(not os.environ.get("QISKIT_IBM_TOKEN"), reason="needs QISKIT_IBM_TOKEN and network")
def test_real_device_unary_block():  # pragma: no cover - needs an IBM Quantum account
    service = RuntimeAccount.from_env().connect()
    name = os.environ.get("QUICQ_IBM_BACKEND") or service.least_busy(simulator=False, operational=True).name
    with IBMRuntimeBackend(name, mode="batch", shots=2000, service=service, timeout=3600) as be:
        circ = pyramid(3)
        th = np.array([0.4, -0.9, 1.3])
        plan = BlockTomography(circ, (1,))
        res = plan.run(be, th)
        exact = plan.run(ExactBackend(), th, shots=None)
        assert np.abs(res[1] - exact[1]).max() < 0.2
