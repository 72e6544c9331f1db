"""Component benchmarks of the adapter benchmark: the QuIC block computation against the frozen
layer it adapts, ``pauli_columns``, and the engine against the libraries a user would pick
instead (``torch.nn.utils.parametrizations.orthogonal``; ffsim for the weight-2 sector).

Every comparison interleaves its candidates (see ``_bench.interleaved``) and reports per-round
paired ratios. Angles are float32 (what adapters train in) and away from the start point:
``_moved`` takes a few AdamW steps at the benchmark's learning rate, as training does, because
blocks near the start are where float32 subnormals appear.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from _bench import calls_for, interleaved, paired_ratio, summary


def _moved(params: list[torch.Tensor], loss: Callable[[], torch.Tensor], lr: float, steps: int = 3) -> None:
    """``steps`` AdamW steps on ``loss`` (moves parameters off the start as training would)."""
    opt = torch.optim.AdamW(params, lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss().backward()
        opt.step()
    for p in params:
        p.grad = None


def _calibrated(fns: dict[str, Callable[[], object]], repeats: int, warmup: int, target_ms: float,
                clock: str) -> dict[str, list[float]]:
    """Warm up (the last warm-up call, untimed in the result, sizes the rounds to ~``target_ms``
    per candidate), then time interleaved."""
    first = interleaved(fns, repeats=1, warmup=max(0, warmup - 1), calls=1, clock=clock)
    calls = {k: calls_for(first[k][0], target_ms) for k in fns}
    return interleaved(fns, repeats=repeats, warmup=0, calls=calls, clock=clock)


def _fwd_bwd(fn: Callable[[], torch.Tensor], leaves: list[torch.Tensor]) -> Callable[[], None]:
    """A closure: out = fn(); backward of a fixed random projection of out; clear the leaves' grads."""
    probe: dict[str, torch.Tensor] = {}

    def run() -> None:
        out = fn()
        if "g" not in probe:
            probe["g"] = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=out.dtype)
        (out * probe["g"]).sum().backward()
        for t in leaves:
            t.grad = None

    return run


# --------------------------------------------------------------------------- blocks vs frozen layer
def blocks_vs_frozen(width: int, tokens: int, parameterizations: list[str], *, lr: float, repeats: int,
                     warmup: int, target_ms: float, clock: str = "cpu") -> dict[str, Any]:
    """QuIC {1,2}, one block (n the largest with n + C(n,2) ≤ width), on a Linear(width, width).

    Per parameterization: ``blocks`` = the block computation alone, forward + backward to the
    angles (what the forward computes from the parameters: A, and any compound it forms densely); ``adapted`` = the adapted layer's forward + backward (to its input and the
    angles); ``frozen`` = the frozen layer's own forward + backward (to its input). The adapter's
    cost is adapted − frozen (blocks + apply); the goal is ≤ 1× frozen.
    """
    from quicq.adapters import QuICConfig, QuICLayer, get_quicq_model

    torch.manual_seed(0)
    lin = nn.Linear(width, width)
    lin.requires_grad_(False)
    x = torch.randn(tokens, width, requires_grad=True)
    fns: dict[str, Callable[[], object]] = {"frozen": _fwd_bwd(lambda: lin(x), [x])}
    info: dict[str, Any] = {}
    for p in parameterizations:
        holder = nn.Module()
        holder.proj = nn.Linear(width, width)
        holder.proj.weight, holder.proj.bias = lin.weight, lin.bias  # the same frozen tensors
        model = get_quicq_model(holder, QuICConfig(target_modules=["proj"], n_blocks=1, orders=(1, 2),
                                                   parameterization=p))
        layer = next(m for m in model.modules() if isinstance(m, QuICLayer))
        angles = [q for q in model.parameters() if q.requires_grad]
        _moved(angles, lambda: (layer(x) ** 2).mean(), lr)
        fns[f"adapted-{p}"] = _fwd_bwd(lambda layer=layer: layer(x), [x, *angles])
        fns[f"blocks-{p}"] = _blocks_fwd_bwd(layer, angles)
        info[p] = {"n": layer.circuit().n_qubits, "computed_shapes": [list(b.shape) for b in _applied(layer)]}
    s = _calibrated(fns, repeats, warmup, target_ms, clock)
    rows = []
    for p in parameterizations:
        over = [a - f for a, f in zip(s[f"adapted-{p}"], s["frozen"], strict=True)]
        rows.append({"parameterization": p, **info[p], "frozen_ms": summary(s["frozen"]),
                     "adapted_ms": summary(s[f"adapted-{p}"]), "blocks_ms": summary(s[f"blocks-{p}"]),
                     "adapter_ms": summary(over),
                     "adapter_over_frozen": summary([o / f for o, f in zip(over, s["frozen"], strict=True)]),
                     "blocks_over_frozen": paired_ratio(s, f"blocks-{p}", "frozen")})
    return {"width": width, "tokens": tokens, "rows": rows}


def _applied(layer: nn.Module) -> list[torch.Tensor]:
    """The tensors the layer's forward computes from its parameters before applying them: the
    n×n matrix A (applied as exterior powers) and any compound formed densely; older layers
    without ``applied_rotation`` give their dense blocks."""
    if not hasattr(layer, "applied_rotation"):
        return list(layer.blocks())
    rot = layer.applied_rotation()
    return ([] if rot.A is None else [rot.A]) + [d for d in (rot.dense or []) if d is not None]


def _blocks_fwd_bwd(layer: nn.Module, angles: list[torch.Tensor]) -> Callable[[], None]:
    probes: list[torch.Tensor] = []

    def run() -> None:
        blocks = _applied(layer)
        if not probes:
            gen = torch.Generator().manual_seed(0)
            probes.extend(torch.randn(b.shape, generator=gen, dtype=b.dtype) for b in blocks)
        sum((b * g).sum() for b, g in zip(blocks, probes, strict=True)).backward()
        for t in angles:
            t.grad = None

    return run


# --------------------------------------------------------------------------- pauli_columns
def pauli_columns_time(N: int, K: int, L: int, *, repeats: int, warmup: int, target_ms: float,
                       clock: str = "cpu") -> dict[str, Any]:
    """``quicq.engine.pauli_columns`` forward + backward at N, K, L (random angles, float32)."""
    from quicq.circuits import pauli
    from quicq.engine import pauli_columns

    circ = pauli(N, L)
    th = ((torch.rand(circ.n_params, generator=torch.Generator().manual_seed(0)) * 2 - 1) * math.pi).requires_grad_()
    s = _calibrated({"pauli": _fwd_bwd(lambda: pauli_columns(circ, th, K), [th])}, repeats, warmup, target_ms, clock)
    return {"N": N, "K": K, "L": L, "n_params": circ.n_params, "ms": summary(s["pauli"])}


# --------------------------------------------------------------------------- vs torch orthogonal
def unary_vs_orthogonal(sizes: list[int], *, scale: float, repeats: int, warmup: int,
                        target_ms: float, clock: str = "cpu") -> list[dict[str, Any]]:
    """n×n orthogonal matrix, forward + backward: the engine's pyramid block vs torch's
    ``parametrizations.orthogonal`` (default trivialization) with its cayley and matrix_exp maps.

    Parameters are N(0, scale²), a point a few training steps from the identity, for all three.
    """
    from torch.nn.utils import parametrizations

    from quicq.circuits import pyramid
    from quicq.engine import unary_block

    out = []
    for n in sizes:
        gen = torch.Generator().manual_seed(n)
        circ = pyramid(n)
        th = (scale * torch.randn(circ.n_params, generator=gen)).requires_grad_()
        fns: dict[str, Callable[[], object]] = {"engine": _fwd_bwd(lambda circ=circ, th=th: unary_block(circ, th), [th])}
        for m in ("cayley", "matrix_exp"):
            lin = nn.Linear(n, n, bias=False)
            parametrizations.orthogonal(lin, orthogonal_map=m)
            orig = lin.parametrizations.weight.original
            with torch.no_grad():
                orig.copy_(scale * torch.randn(n, n, generator=gen))
            fns[m] = _fwd_bwd(lambda lin=lin: lin.weight, [orig])
        s = _calibrated(fns, repeats, warmup, target_ms, clock)
        out.append({"n": n, "engine_ms": summary(s["engine"]),
                    **{f"{m}_ms": summary(s[m]) for m in ("cayley", "matrix_exp")},
                    **{f"engine_over_{m}": paired_ratio(s, "engine", m) for m in ("cayley", "matrix_exp")}})
    return out


# --------------------------------------------------------------------------- vs ffsim
def weight2_vs_ffsim(sizes: list[int], *, repeats: int, warmup: int, target_ms: float,
                     clock: str = "cpu") -> dict[str, Any]:
    """The weight-2 block of a pyramid of RBS gates (θ uniform in [−π, π]): the engine vs ffsim.

    ffsim simulates the same Givens network (``GivensAnsatzOp``, spinless, 2 fermions; for
    nearest-neighbour gates the RBS and fermionic Givens rotations coincide on this sector).
    Candidates: ``engine`` = the full C(n,2)² block, forward (float64, as ffsim); ``engine_fb``
    = the same with backward to the angles (ffsim has no gradients); ``ffsim_block`` = the same
    block from ffsim, one basis state at a time; ``ffsim_state`` = ffsim on one state;
    ``ffsim_orbital_state`` = ffsim's orbital-rotation path on one state, given the n×n matrix. The two
    blocks are checked equal before timing (``max_abs_diff``).
    """
    try:
        import ffsim
    except ImportError as exc:
        return {"skipped": f"ffsim is not installed ({exc}); pip install 'quicq[bench]'"}
    import numpy as np

    from quicq.circuits import pyramid
    from quicq.circuits.ir import subsets
    from quicq.engine import sector_block, unary_block

    rows = []
    for n in sizes:
        circ = pyramid(n)
        rng = np.random.default_rng(n)
        th_np = rng.uniform(-np.pi, np.pi, circ.n_params)
        th = torch.tensor(th_np, requires_grad=True)
        pairs, thetas = [], np.empty(len(circ.gates))
        for i, g in enumerate(circ.gates):  # RBS_ab(θ) maps e_a → cos θ e_a + sin θ e_b: ffsim's G(−θ, (a, b))
            pairs.append(tuple(g.qubits))
            thetas[i] = -th_np[g.param]
        op = ffsim.GivensAnsatzOp(n, pairs, thetas, None, None)
        subs = subsets(n, 2)
        strings = [sum(1 << q for q in s) for s in subs]
        addr = ffsim.strings_to_addresses(strings, n, 2)
        dim = len(subs)

        def ffsim_block(op=op, addr=addr, dim=dim, n=n) -> np.ndarray:
            out = np.empty((dim, dim), dtype=complex)
            for j in range(dim):
                v = np.zeros(dim, dtype=complex)
                v[addr[j]] = 1.0
                out[:, j] = ffsim.apply_unitary(v, op, norb=n, nelec=2)[addr]
            return out

        ref = sector_block(circ, th.detach(), 2).numpy()
        U = unary_block(circ, th.detach()).numpy().astype(complex)
        diff = float(np.abs(ffsim_block() - ref).max())
        v0 = np.zeros(dim, dtype=complex)
        v0[addr[0]] = 1.0
        fns: dict[str, Callable[[], object]] = {
            "engine": lambda circ=circ, th=th: sector_block(circ, th.detach(), 2),
            "engine_fb": _fwd_bwd(lambda circ=circ, th=th: sector_block(circ, th, 2), [th]),
            "ffsim_block": ffsim_block,
            "ffsim_state": lambda op=op, v0=v0, n=n: ffsim.apply_unitary(v0, op, norb=n, nelec=2),
            # ffsim's fastest path, given the n×n orbital rotation (not counted: building it)
            "ffsim_orbital_state": lambda U=U, v0=v0, n=n: ffsim.apply_orbital_rotation(v0, U, norb=n, nelec=2),
        }
        s = _calibrated(fns, repeats, warmup, target_ms, clock)
        rows.append({"n": n, "dim": dim, "max_abs_diff": diff, **{f"{k}_ms": summary(v) for k, v in s.items()},
                     "engine_over_ffsim_block": paired_ratio(s, "engine", "ffsim_block"),
                     "engine_fb_over_ffsim_block": paired_ratio(s, "engine_fb", "ffsim_block")})
    return {"rows": rows}
