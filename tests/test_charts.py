"""Parameterizations: the tangent at the start, the identity start, inverses, bad input.

The tangent test is the one that failed on quicq 0.1's pyramid: started at θ = 0, a
nearest-neighbour layout's tangent has rank n − 1 whatever its depth.
"""

from __future__ import annotations

import pytest
import torch
from adapters_helpers import mlp, one_thread  # noqa: F401
from scipy.stats import special_ortho_group

from quicq.adapters import QuICConfig, get_quicq_model
from quicq.adapters.config import AdapterConfigError
from quicq.adapters.parameterizations import PARAMETERIZATIONS, ParameterizationError, get_parameterization

SIZES = (4, 5, 8, 13, 16)


def cases():
    for name in PARAMETERIZATIONS:
        for n in SIZES:
            if name == "butterfly" and n & (n - 1):
                continue
            yield name, n


def tangent_singular_values(p) -> torch.Tensor:
    """Singular values of d vec_upper(A)/dθ at the start, A the applied matrix (A = I there,
    so the upper triangle holds the whole antisymmetric tangent)."""
    th0 = p.start_params().unsqueeze(0)
    J = torch.autograd.functional.jacobian(lambda t: p.matrix(t)[0], th0)
    iu = torch.triu_indices(p.n, p.n, 1)
    return torch.linalg.svdvals(J[iu[0], iu[1]].reshape(iu.shape[1], -1))


@pytest.mark.parametrize("name,n", list(cases()))
def test_start_is_identity_with_full_rank_well_conditioned_tangent(name, n):
    p = get_parameterization(name, n, n_layers=3)
    A = p.matrix(p.start_params().unsqueeze(0))[0]
    assert float((A - torch.eye(n, dtype=A.dtype)).abs().max()) < 1e-15
    s = tangent_singular_values(p)
    rank = int((s > 1e-8).sum())
    assert rank == p.dof
    if name == "x" and n % 2:  # odd-n X repeats its middle pair: one direction fewer than angles
        assert p.dof == p.n_params - 2
        return
    assert p.dof == min(p.n_params, n * (n - 1) // 2)
    assert float(s[0] / s[rank - 1]) < 1 + 1e-9  # orthonormal tangent: condition number 1


@pytest.mark.parametrize("name", ["pyramid", "brick", "x"])
def test_identity_start_is_the_degenerate_point(name):
    """What quicq 0.1 did: all angles 0 — a nearest-neighbour layout's tangent has rank n − 1."""
    n = 8
    p = get_parameterization(name, n, n_layers=n, start="identity")
    assert int((tangent_singular_values(p) > 1e-8).sum()) == n - 1


@pytest.mark.parametrize("name,layers", [("pyramid", 2), ("brick", 7), ("cayley", 2)])
def test_from_matrix_inverts_matrix(name, layers):
    p = get_parameterization(name, 7, n_layers=layers)
    A = torch.as_tensor(special_ortho_group.rvs(7, size=3, random_state=0))
    th = p.from_matrix(A)
    torch.testing.assert_close(p.matrix(th), A, atol=1e-10, rtol=0)


def test_non_covering_charts_refuse_inverse_and_reflections_are_refused():
    A = torch.as_tensor(special_ortho_group.rvs(8, size=2, random_state=1))
    for name in ("x", "butterfly"):
        with pytest.raises(ParameterizationError, match="does not reach every orthogonal matrix"):
            get_parameterization(name, 8).from_matrix(A)
    R = A.clone()
    R[:, :, 0] *= -1  # det −1
    with pytest.raises(ParameterizationError, match="determinant −1"):
        get_parameterization("pyramid", 8).from_matrix(R)


@pytest.mark.parametrize("name", sorted(PARAMETERIZATIONS))
def test_adapter_starts_as_the_base_model(name):
    x = torch.randn(5, 16)
    base = mlp()
    want = base(x)
    qm = get_quicq_model(mlp(), QuICConfig(target_modules=["0", "2"], n_blocks=1, parameterization=name))
    torch.testing.assert_close(qm(x), want, atol=1e-6, rtol=0)


def test_bad_chart_names_and_orders_fail_before_allocation():
    with pytest.raises(AdapterConfigError, match="unknown parameterization 'hadamard'"):
        QuICConfig(target_modules=["0"], parameterization="hadamard")
    with pytest.raises(AdapterConfigError, match="start must be one of"):
        QuICConfig(target_modules=["0"], start="random")
    with pytest.raises(AdapterConfigError, match="largest order that fits is"):
        get_quicq_model(mlp(), QuICConfig(target_modules=["0"], n_blocks=1, orders=(100,)))
    with pytest.raises(AdapterConfigError, match="largest order that fits is"):
        get_quicq_model(torch.nn.Sequential(torch.nn.Linear(4, 4096)), QuICConfig(target_modules=["0"], n_blocks=1,
                                                                               orders=(12,)))
