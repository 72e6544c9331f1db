"""Packing block circuits side by side on disjoint qubit chains: chains, layouts, agreement, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from quicq.circuits import pyramid
from quicq.hardware import AerBackend, BackendError, BlockTomography, ExactBackend
from quicq.hardware.packing import PackedBackend, PackingError, _schedule, device_graph, find_chains, pack_count

pytest.importorskip("qiskit_aer")
fake = pytest.importorskip("qiskit_ibm_runtime.fake_provider")


def _z(a, b):
    """Per-entry z-scores of two independent raw estimates."""
    return (a.raw[1] - b.raw[1]) / np.hypot(a.stderr[1], b.stderr[1])


@pytest.mark.parametrize("device, at_least", [("FakeTorino", 13), ("FakeSherbrooke", 12)])
def test_chains_on_heavy_hex_devices_are_disjoint_coupled_paths(device, at_least):
    g = device_graph(getattr(fake, device)())
    chains = find_chains(g, 8)
    assert len(chains) >= at_least  # ≥ 12 blocks of n = 8 side by side on a 127/133-qubit device
    flat = [q for c in chains for q in c]
    assert len(flat) == len(set(flat)) and all(len(c) == 8 for c in chains)
    assert all(g.has_edge(a, b) for c in chains for a, b in zip(c, c[1:]))
    spaced = find_chains(g, 8, spacing=1)
    used = [set(c) for c in spaced]
    for i, c in enumerate(spaced):  # no qubit of another chain next to this one
        others = set().union(*(u for j, u in enumerate(used) if j != i))
        assert not any(w in others for v in c for w in g.neighbors(v))
    assert len(spaced) <= len(chains)
    assert find_chains(g, 8, count=3) == chains[:3]
    assert find_chains(None, 4, n_qubits=10) == [(0, 1, 2, 3), (4, 5, 6, 7)]


def test_schedule_places_every_execution_once():
    circuits = ["a", "b", "c"]
    batches = [7, 2, 3]
    pubs = _schedule(batches, circuits, 3)
    placed = sorted(x for p in pubs for row in p.rows for x in row)
    assert placed == sorted((t, b) for t, B in enumerate(batches) for b in range(B))
    assert sum(len(p.rows) for p in pubs) == pack_count(batches, 3) == 2 + 2  # 2 full "a" packs + 6 rest / 3
    for p in pubs:  # a structure's rows all hold the same circuits
        assert all(tuple(circuits[t] for t, _ in row) == tuple(circuits[t] for t in p.tasks) for row in p.rows)


def test_small_pack_agrees_with_unpacked_on_ideal_aer():
    c = pyramid(4)
    plan = BlockTomography(c, (1, 2))
    th = np.random.default_rng(0).uniform(-1, 1, (3, c.n_params))
    packed = PackedBackend(AerBackend(shots=3000, seed=2), max_slots=3, seed=3)
    assert packed.layout(4).chains == ((0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11))
    r_un = plan.run(AerBackend(shots=3000, seed=1), th)
    r_pk = plan.run(packed, th)
    assert packed.wide_executions == math.ceil(len(plan.circuits) * 3 / 3) == len(plan.circuits)
    z = _z(r_un, r_pk)
    assert np.abs(z).max() < 4.5 and (z**2).mean() < 1.6
    exact = plan.exact(torch.as_tensor(th))
    for k, ex in zip(plan.keys, exact):
        assert np.abs(r_pk.blocks[k] - ex.numpy()).max() < 0.08


def test_packed_circuits_on_a_device_need_no_swaps():
    dev = fake.FakeGuadalupeV2()
    packed = PackedBackend(AerBackend(shots=2000, seed=4, noise=dev), seed=5)
    lay = packed.layout(4)
    assert lay.slots == 3
    c = pyramid(4)
    plan = BlockTomography(c, (1,))
    tqc = packed.compiled_circuit([plan.circuits[0]] * 3)
    assert "swap" not in tqc.count_ops()
    coupled = {tuple(sorted(e)) for e in dev.coupling_map.get_edges()}
    two_q = [tuple(sorted(tqc.find_bit(q).index for q in inst.qubits)) for inst in tqc.data
             if inst.operation.num_qubits == 2]
    assert two_q and all(pair in coupled for pair in two_q)
    used = {q for pair in two_q for q in pair}
    assert used <= {q for ch in lay.chains for q in ch}


def test_wide_pack_on_mps_agrees_with_unpacked():
    """16 six-qubit blocks on FakeSherbrooke's chains (96 active qubits), simulated as MPS."""
    c = pyramid(6)
    plan = BlockTomography(c, (1,), magnitudes=False)
    th = np.random.default_rng(0).uniform(-1, 1, (16, c.n_params))
    packed = PackedBackend(AerBackend(shots=1000, seed=2, method="matrix_product_state"), seed=3,
                           device=fake.FakeSherbrooke(), max_slots=16)
    assert packed.slots(6) == 16
    r_pk = plan.run(packed, th)
    r_un = plan.run(AerBackend(shots=1000, seed=5), th)
    assert packed.wide_executions == len(plan.circuits)  # 6 instead of 96
    z = _z(r_un, r_pk)
    assert np.abs(z).max() < 4.5 and (z**2).mean() < 1.5


def test_a_pack_that_does_not_fit_fails_before_submitting():
    packed = PackedBackend(AerBackend(shots=100, noise="FakeManilaV2"))
    wide = pyramid(5)
    # FakeManila is a 5-qubit line: a chain of 5 exists, so 5 fits once; 6 qubits exceed the device
    assert packed.slots(5) == 1
    with pytest.raises(BackendError, match="nothing was submitted"):
        packed.sample([(pyramid(6), np.zeros(pyramid(6).n_params))])
    guad = PackedBackend(AerBackend(shots=100, noise="FakeGuadalupeV2"))
    with pytest.raises(PackingError, match="no connected chain of 14 qubits"):  # 16 qubits, no such path
        guad.sample([(pyramid(14), np.zeros(pyramid(14).n_params))])
    assert guad.wide_executions == 0 and packed.wide_executions == 0
    with pytest.raises(PackingError, match="Qiskit-based"):
        PackedBackend(ExactBackend())
    with pytest.raises(PackingError, match="spacing"):
        PackedBackend(AerBackend(), spacing=2)
    assert wide.n_qubits == 5


# ---- the public backend surface packing uses ----------------------------------------------------


class _Counting:
    """A real sampler behind a call counter."""

    def __init__(self, sampler):
        self.sampler, self.calls = sampler, 0

    def run(self, pubs, shots=None):
        self.calls += 1
        return self.sampler.run(pubs, shots=shots)


def test_qiskit_backends_expose_device_sampler_and_transpile_backend():
    from quicq.hardware.ibm import IBMRuntimeBackend
    from quicq.hardware.qiskit_backend import QiskitBackend

    ideal, noisy = AerBackend(64, seed=1), AerBackend(64, seed=1, noise="FakeManilaV2")
    ibm = IBMRuntimeBackend("FakeManilaV2", shots=64, seed=1)
    assert all(isinstance(b, QiskitBackend) for b in (ideal, noisy, ibm))
    assert ideal.device is None and ideal.transpile_backend is ideal.simulator
    assert noisy.device.name == "fake_manila" and noisy.transpile_backend is noisy.simulator
    assert ibm.device.name == "fake_manila" and ibm.transpile_backend is ibm.device
    s = noisy.sampler(seed=11)  # built once, seeded per job
    assert noisy.sampler(seed=12) is s and s.options.run_options["seed_simulator"] == 12
    assert ibm.sampler(seed=13).options.simulator.seed_simulator == 13
    from qiskit_aer.primitives import SamplerV2

    mine = _Counting(SamplerV2(seed=3))
    assert AerBackend(64, sampler=mine).sampler(seed=99) is mine  # a user's sampler is not touched
    with pytest.raises(BackendError, match="returned 64 shots, 100 were asked"):
        ideal.fit_shots(np.zeros((1, 64, 2), dtype=np.uint8), 100)
    assert ibm.fit_shots(np.zeros((2, 80, 3), dtype=np.uint8), 64).shape == (2, 64, 3)  # twirling rounds up


def test_packing_runs_on_the_wrapped_backends_sampler():
    """The pack goes through the inner backend's own sampler (a user's one included), one job per call."""
    from qiskit_aer.primitives import SamplerV2

    mine = _Counting(SamplerV2(seed=5))
    c = pyramid(3)
    plan = BlockTomography(c, (1,), magnitudes=False)
    th = np.random.default_rng(1).uniform(-1, 1, (2, c.n_params))
    packed = PackedBackend(AerBackend(2000, sampler=mine), max_slots=2, seed=1)
    res = plan.run(packed, th)
    assert mine.calls == 1 and packed.wide_executions == len(plan.circuits)
    assert np.abs(res.blocks[1] - plan.exact(torch.as_tensor(th))[0].numpy()).max() < 0.12


def test_packing_on_an_ibm_runtime_fake_device_agrees_with_exact():
    """IBM Runtime (local mode, FakeManila's 5-qubit line): two 2-qubit chains, one packed job."""
    from quicq.hardware.ibm import IBMRuntimeBackend

    c = pyramid(2)
    plan = BlockTomography(c, (1,))
    th = np.random.default_rng(2).uniform(-1, 1, (2, c.n_params))
    packed = PackedBackend(IBMRuntimeBackend("FakeManilaV2", shots=2000, seed=4), seed=6)
    assert packed.slots(2) == 2
    res = plan.run(packed, th)
    assert packed.wide_executions == len(plan.circuits)  # 2 bindings side by side per circuit
    exact = plan.exact(torch.as_tensor(th))[0].numpy()
    assert np.abs(res.blocks[1] - exact).max() < 0.15  # FakeManila's noise, 2000 shots
