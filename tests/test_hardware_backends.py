"""Backends behind one interface: bit order, exact agreement, sampling, validation, retries."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import torch

from quicq.circuits import Circuit, Gate, pauli, pyramid
from quicq.circuits.ir import CircuitError
from quicq.engine import simulate
from quicq.hardware import (
    AerBackend,
    BackendError,
    BackendTimeoutError,
    ExactBackend,
    Outcome,
    PennyLaneBackend,
)
from quicq.hardware import backends as backends_mod
from quicq.hardware.backends import await_job

RNG = np.random.default_rng(20261123)


def _backends(shots):
    return [
        ExactBackend(shots, seed=1),
        AerBackend(shots, seed=2),
        PennyLaneBackend("default.qubit", shots, seed=3),
        PennyLaneBackend("lightning.qubit", shots, seed=4),
    ]


def _prepared(circuit: Circuit) -> Circuit:
    """A circuit with a state-preparation prefix and a basis-change suffix, as tomography uses."""
    n = circuit.n_qubits
    return circuit.with_prefix([Gate("x", (0,)), Gate("h", (n - 1,))]).with_suffix([Gate("h", (1,))])


def test_bit_order_is_quicq_order():
    """X on qubits 0 and 2 of 3 reads bits [1, 0, 1] and basis index 0b101 on every backend."""
    circ = Circuit(3, (Gate("x", (0,)), Gate("x", (2,)), Gate("ry", (1,), 0)), 1)
    angles = np.zeros((2, 1))
    for be in _backends(64):
        (out,) = be.sample([(circ, angles)])
        assert out.bits.shape == (2, 64, 3)
        assert np.all(out.bits == np.array([1, 0, 1])), be.name
        assert np.all(out.indices == 5), be.name
    for be in _backends(None):
        (out,) = be.sample([(circ, angles)])
        assert np.allclose(out.probs[:, 5], 1.0), be.name


@pytest.mark.parametrize("circuit", [_prepared(pyramid(4, gate="fbs")), pauli(6, 1), pauli(8, 2)],
                         ids=["pyramid-fbs", "pauli6-mcry", "pauli8"])
def test_exact_probabilities_agree(circuit):
    """Exact mode of every backend equals the engine to 1e-10 (pauli6 has mcry: the Aer bind bug)."""
    angles = RNG.uniform(-np.pi, np.pi, (3, circuit.n_params))
    ref = (simulate(circuit, torch.tensor(angles), [0])[:, 0, :] ** 2).numpy()
    for be in _backends(None):
        (out,) = be.sample([(circuit, angles)])
        assert out.exact and out.shots is None
        assert np.abs(out.probs - ref).max() < 1e-10, be.name


def test_sampling_matches_probabilities():
    """Shot frequencies lie within 5 binomial standard errors of the exact probabilities."""
    circuit = _prepared(pyramid(3))
    angles = RNG.uniform(-np.pi, np.pi, (2, circuit.n_params))
    ref = (simulate(circuit, torch.tensor(angles), [0])[:, 0, :] ** 2).numpy()
    shots = 4000
    se = np.sqrt(ref * (1 - ref) / shots) + 1.0 / shots
    for be in _backends(shots):
        (out,) = be.sample([(circuit, angles)])
        freq = out.probabilities()
        assert np.all(np.abs(freq - ref) <= 5 * se), be.name
        assert np.allclose(out.counts().sum(-1), shots)


def test_successive_calls_are_independent_but_reproducible():
    circuit = Circuit(2, (Gate("h", (0,)), Gate("h", (1,))), 0)
    a = ExactBackend(100, seed=5).sample([(circuit, np.zeros((1, 0)))] * 2)
    be = AerBackend(100, seed=5)
    first, second = be.sample([(circuit, np.zeros((1, 0)))]), be.sample([(circuit, np.zeros((1, 0)))])
    assert not np.array_equal(first[0].indices, second[0].indices)
    again = AerBackend(100, seed=5).sample([(circuit, np.zeros((1, 0)))])
    assert np.array_equal(first[0].indices, again[0].indices)
    assert not np.array_equal(a[0].indices, a[1].indices)


def test_parameter_free_circuit_with_many_bindings():
    """Every binding of an unparametrised circuit is really sampled (Aer returns zeros otherwise)."""
    circuit = Circuit(2, (Gate("h", (0,)),), 0)
    for be in _backends(400):
        (out,) = be.sample([(circuit, np.zeros((4, 0)))])
        ones = out.bits[..., 0].mean(-1)
        assert np.all((ones > 0.35) & (ones < 0.65)), (be.name, ones)
        assert np.all(out.bits[..., 1] == 0)


def test_unused_slots_are_bound_correctly():
    """A slot no gate reads is dropped by the transpiler; the remaining slots keep their values."""
    circuit = Circuit(2, (Gate("ry", (1,), 2), Gate("ry", (0,), 0)), 3)
    angles = np.array([[np.pi, 0.3, 0.0], [0.0, -1.0, np.pi]])
    for be in _backends(None):
        (out,) = be.sample([(circuit, angles)])
        assert np.allclose(out.probs[0], [0, 0, 1, 0], atol=1e-12), be.name  # qubit 0 set
        assert np.allclose(out.probs[1], [0, 1, 0, 0], atol=1e-12), be.name  # qubit 1 set


def test_transpile_once_per_structure():
    be = AerBackend(50, seed=0)
    circuit = pyramid(4)
    for _ in range(3):
        be.sample([(circuit, RNG.uniform(-1, 1, (2, circuit.n_params)))])
    assert be.transpile_cache.misses == 1
    be.sample([(circuit, RNG.uniform(-1, 1, (1, circuit.n_params)))], shots=None)
    assert be.transpile_cache.misses == 2  # the exact variant (no measurement) is its own structure


def test_outcome_statistics():
    """parities / z_expectations from shots agree with a direct computation from the bits."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (2, 500, 4))
    out = Outcome.from_bits(bits)
    z, se = out.z_expectations()
    assert np.allclose(z, (1 - 2 * bits).mean(1))
    assert np.allclose(se, np.sqrt((1 - z**2) / 500))
    par, _ = out.parities([(0, 2), (1, 2, 3)])
    assert np.allclose(par[:, 0], ((1 - 2 * bits[..., 0]) * (1 - 2 * bits[..., 2])).mean(1))
    assert np.allclose(par[:, 1], np.prod(1 - 2 * bits[..., 1:], axis=-1).mean(1))
    probs = out.probabilities()
    assert np.allclose(probs.sum(-1), 1.0)
    exact = Outcome(2, None, probs=np.array([[0.5, 0.0, 0.0, 0.5]]))
    assert np.allclose(exact.parities([(0, 1), (0,)])[0], [[1.0, 0.0]])
    with pytest.raises(ValueError, match="either exact probabilities or per-shot"):
        Outcome(2, None)


@pytest.mark.parametrize("bad", [0, -5, 1.5, "10", True])
def test_invalid_shots(bad):
    circuit = pyramid(3)
    with pytest.raises(ValueError, match="shots"):
        ExactBackend(bad)
    with pytest.raises(ValueError, match="shots"):
        ExactBackend().sample([(circuit, np.zeros(circuit.n_params))], shots=bad)


def test_invalid_tasks():
    circuit = pyramid(3)
    be = ExactBackend()
    with pytest.raises(TypeError, match="list of"):
        be.sample((circuit, np.zeros(3)))
    with pytest.raises(CircuitError, match="shape"):
        be.sample([(circuit, np.zeros((2, 4)))])
    with pytest.raises(CircuitError, match="non-finite"):
        be.sample([(circuit, np.array([0.0, np.nan, 0.0]))])


class CountingExact(ExactBackend):
    """The exact backend, counting how many jobs it runs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.jobs = 0

    def _run(self, tasks, shots):
        self.jobs += 1
        return super()._run(tasks, shots)


def test_circuit_wider_than_device_is_rejected_before_submission():
    big = pyramid(6)
    be = AerBackend(100, noise="FakeManilaV2")
    with pytest.raises(BackendError, match=r"needs 6 qubits but the backend has only 5"):
        be.sample([(big, np.zeros(big.n_params))])
    exact = CountingExact()
    with pytest.raises(BackendError, match="nothing was submitted"):
        exact.sample([(pyramid(3), np.zeros(3)), (Circuit(25, (), 0), np.zeros(0))])
    assert exact.jobs == 0


class FlakyBackend(CountingExact):
    """A real exact backend whose first ``failures`` jobs raise, as a lost connection would."""

    name = "flaky"

    def __init__(self, failures, **kwargs):
        super().__init__(**kwargs)
        self.failures = failures

    def _run(self, tasks, shots):
        if self.jobs < self.failures:
            self.jobs += 1
            raise ConnectionError(f"connection reset (job {self.jobs})")
        return super()._run(tasks, shots)


def test_retry_with_exponential_backoff(monkeypatch, caplog):
    delays = []
    monkeypatch.setattr(backends_mod.time, "sleep", delays.append)
    circuit = pyramid(3)
    be = FlakyBackend(2, retries=3, retry_delay=0.01)
    with caplog.at_level(logging.WARNING, logger="quicq.hardware.backends"):
        (out,) = be.sample([(circuit, np.zeros(3))])
    assert np.allclose(out.probs[0, 0], 1.0)
    assert be.jobs == 3
    assert delays == [0.01, 0.02]
    assert sum("attempt 1/3 failed" in r.getMessage() for r in caplog.records) == 1


def test_retries_exhausted_raise_backend_error(monkeypatch):
    monkeypatch.setattr(backends_mod.time, "sleep", lambda s: None)
    be = FlakyBackend(5, retries=3, retry_delay=0.0)
    with pytest.raises(BackendError) as info:
        be.sample([(pyramid(3), np.zeros(3))])
    msg = str(info.value)
    assert "flaky" in msg and "after 3 attempt(s)" in msg and "ConnectionError: connection reset (job 3)" in msg
    assert isinstance(info.value.__cause__, ConnectionError)
    assert be.jobs == 3


def test_await_job_times_out_and_cancels():
    from qiskit.primitives.primitive_job import PrimitiveJob

    job = PrimitiveJob(time.sleep, 0.5)
    job._submit()
    with pytest.raises(BackendTimeoutError, match="did not finish within 0.05 s"):
        await_job(job, 0.05)
    quick = PrimitiveJob(lambda: 42)
    quick._submit()
    assert await_job(quick, 5.0) == 42


class SlowBackend(CountingExact):
    """Submits a real asynchronous job that outlives the backend's timeout."""

    name = "slow"

    def _run(self, tasks, shots):
        from qiskit.primitives.primitive_job import PrimitiveJob

        self.jobs += 1
        job = PrimitiveJob(time.sleep, 0.3)
        job._submit()
        return await_job(job, self.timeout)


def test_timeouts_are_retried_then_reported():
    be = SlowBackend(retries=2, retry_delay=0.0, timeout=0.02)
    with pytest.raises(BackendError, match=r"slow: job timed out after 2 attempt\(s\)"):
        be.sample([(pyramid(3), np.zeros(3))])
    assert be.jobs == 2


def test_backend_options_are_validated():
    with pytest.raises(ValueError, match="retries"):
        ExactBackend(retries=0)
    with pytest.raises(ValueError, match="retry_delay"):
        ExactBackend(retry_delay=-1)
    with pytest.raises(ValueError, match="timeout"):
        ExactBackend(timeout=0)
    with pytest.raises(ValueError, match="unknown fake backend"):
        AerBackend(noise="FakeNoSuchDevice")
