"""QuIC and Quantum-PEFT layers against dense references built from the definitions."""

from __future__ import annotations

import math

import pytest
import torch
from adapters_helpers import (  # noqa: F401
    block_matrices,
    dense_rotation,
    mlp,
    one_thread,
    randomize_adapters,
)
from torch import nn

from quicq.adapters import (
    AdapterConfigError,
    AdapterError,
    QuantumPEFTConfig,
    QuICConfig,
    get_quicq_model,
)
from quicq.adapters.counts import qpeft_params, quic_params
from quicq.circuits import brick, butterfly, pyramid, x_layout
from quicq.engine import pauli_columns, sector_blocks, unary_block

PARAMS = ["pyramid", "x", "butterfly", "brick", "cayley"]


def single(module: nn.Module, config, seed: int = 0):
    """Wrap a one-module Sequential; return (quicq model, adapted layer)."""
    qm = get_quicq_model(nn.Sequential(module), config)
    return qm, qm.base_model[0]


@pytest.mark.parametrize("parameterization", PARAMS)
@pytest.mark.parametrize("rotate", ["output", "input"])
@pytest.mark.parametrize("mode", ["activations", "weight"])
def test_quic_linear_matches_dense_definition(parameterization, rotate, mode):
    # out 30 = 4 blocks of 7 + 2 leftover rows; in 22 = 4 blocks of 5 + 2 leftover: every tail is exercised
    torch.manual_seed(0)
    lin = nn.Linear(22, 30).double()
    W, b = lin.weight.detach().clone(), lin.bias.detach().clone()
    qm, layer = single(lin, QuICConfig(target_modules=["0"], n_blocks=4, parameterization=parameterization,
                                      rotate=rotate, apply_mode=mode))
    randomize_adapters(qm)
    spec = layer.quic_spec["default"]
    assert (spec.d, spec.n_blocks, spec.block_size) == ((30, 4, 7) if rotate == "output" else (22, 4, 5))
    R = dense_rotation(layer)
    x = torch.randn(3, 5, 22, dtype=torch.float64)
    want = x @ W.T @ R.T + b if rotate == "output" else x @ R.T @ W.T + b
    torch.testing.assert_close(qm(x), want, atol=1e-12, rtol=0)
    assert layer.last_apply_mode == mode
    torch.testing.assert_close(layer.rotation().double(), R, atol=1e-12, rtol=0)


@pytest.mark.parametrize("orders", [(1,), (2,), (1, 2, 3), (2, 3)])
def test_quic_orders_fill_the_block_with_compounds(orders):
    torch.manual_seed(0)
    qm, layer = single(nn.Linear(8, 32).double(), QuICConfig(target_modules=["0"], n_blocks=1, orders=orders))
    randomize_adapters(qm)
    spec = layer.quic_spec["default"]
    assert sum(math.comb(spec.n, k) for k in orders) <= 32 < sum(math.comb(spec.n + 1, k) for k in orders)
    R = dense_rotation(layer)
    x = torch.randn(4, 8, dtype=torch.float64)
    base = layer.base_layer
    torch.testing.assert_close(qm(x), (x @ base.weight.T) @ R.T + base.bias, atol=1e-12, rtol=0)


def test_butterfly_uses_largest_power_of_two_and_fbs():
    _, layer = single(nn.Linear(8, 40), QuICConfig(target_modules=["0"], n_blocks=1, parameterization="butterfly"))
    spec = layer.quic_spec["default"]
    # n=8 needs 8 + 28 = 36 ≤ 40 rows; pyramid would take n=8 too, but at b=35 butterfly drops to 4
    assert spec.n == 8 and layer.circuit() == butterfly(8) and set(layer.circuit().count_ops()) == {"fbs"}
    _, layer = single(nn.Linear(8, 35), QuICConfig(target_modules=["0"], n_blocks=1, parameterization="butterfly"))
    assert layer.quic_spec["default"].n == 4


def test_block_share_uses_one_matrix_for_all_blocks():
    qm, layer = single(nn.Linear(8, 32).double(), QuICConfig(target_modules=["0"], n_blocks=4, block_share=True))
    randomize_adapters(qm)
    assert layer.quic_params["default"].shape[0] == 1
    R = dense_rotation(layer)
    b = 8
    for i in range(1, 4):
        torch.testing.assert_close(R[i * b:(i + 1) * b, i * b:(i + 1) * b], R[:b, :b])
    assert not torch.allclose(R[:b, :b], torch.eye(b, dtype=R.dtype))


@pytest.mark.parametrize("kind", ["conv1d", "conv2d"])
@pytest.mark.parametrize("rotate", ["output", "input"])
@pytest.mark.parametrize("mode", ["activations", "weight"])
def test_quic_conv_layers_match_rotated_weight(kind, rotate, mode):
    torch.manual_seed(0)
    if kind == "conv1d":
        from transformers.pytorch_utils import Conv1D

        module = Conv1D(12, 10).double()  # weight stored (in=10, out=12)
        x = torch.randn(2, 3, 10, dtype=torch.float64)
        W = module.weight.detach().T.clone()
    else:
        module = nn.Conv2d(10, 12, 3, padding=1).double()
        x = torch.randn(2, 10, 5, 5, dtype=torch.float64)
        W = module.weight.detach().clone()
    bias = module.bias.detach().clone()
    qm, layer = single(module, QuICConfig(target_modules=["0"], n_blocks=2, rotate=rotate, apply_mode=mode))
    randomize_adapters(qm)
    R = dense_rotation(layer)
    W2 = W.flatten(1) if kind == "conv1d" else W
    Wr = torch.einsum("ij,j...->i...", R, W2) if rotate == "output" else torch.einsum("oj...,ji->oi...", W2, R)
    if kind == "conv1d":
        want = x @ Wr.T + bias
    else:
        want = torch.nn.functional.conv2d(x, Wr, bias, padding=1)
    torch.testing.assert_close(qm(x), want, atol=1e-12, rtol=0)


def test_chained_adapters_compose_in_order():
    torch.manual_seed(0)
    lin = nn.Linear(12, 16).double()
    W, b = lin.weight.detach().clone(), lin.bias.detach().clone()
    qm = get_quicq_model(nn.Sequential(lin), QuICConfig(target_modules=["0"], n_blocks=2, init_weights=False), "a")
    qm.add_adapter("b", QuICConfig(target_modules=["0"], n_blocks=1, parameterization="brick", init_weights=False))
    qm.add_adapter("c", QuICConfig(target_modules=["0"], n_blocks=3, rotate="input", init_weights=False))
    qm.add_adapter("d", QuICConfig(target_modules=["0"], n_blocks=2, rotate="input", parameterization="cayley",
                                   init_weights=False))
    layer = qm.base_model[0]
    Ra, Rb, Rc, Rd = (dense_rotation(layer, a) for a in "abcd")
    x = torch.randn(5, 12, dtype=torch.float64)
    for mode in ("activations", "weight"):
        layer.apply_mode = mode
        qm.set_adapter(["a", "b", "c", "d"])
        torch.testing.assert_close(qm(x), x @ (Rb @ Ra @ W @ Rc @ Rd).T + b, atol=1e-12, rtol=0)
        qm.set_adapter(["b", "a"])
        torch.testing.assert_close(qm(x), x @ (Ra @ Rb @ W).T + b, atol=1e-12, rtol=0)
    qm.set_adapter(["a", "b", "c", "d"])
    want = qm(x)
    qm.merge_adapter()
    torch.testing.assert_close(layer.base_layer.weight, Rb @ Ra @ W @ Rc @ Rd, atol=1e-12, rtol=0)
    torch.testing.assert_close(qm(x), want, atol=1e-12, rtol=0)
    qm.unmerge_adapter()
    torch.testing.assert_close(layer.base_layer.weight, W, atol=1e-12, rtol=0)


def test_auto_mode_picks_cheaper_side():
    qm, layer = single(nn.Linear(16, 32), QuICConfig(target_modules=["0"], n_blocks=2))
    randomize_adapters(qm)
    small, big = torch.randn(4, 16), torch.randn(4096, 16)
    y_train = qm(small)
    assert layer.last_apply_mode == "activations"  # training: dW' of a rotated weight would cost tokens·out·in
    with torch.no_grad():
        y_big = qm(big)
        assert layer.last_apply_mode == "weight"  # 4096 tokens > 16 inputs: rotate W once
        y_small = qm(small)
        assert layer.last_apply_mode == "activations"
    torch.testing.assert_close(y_small, y_train.detach(), atol=1e-6, rtol=0)
    layer.apply_mode = "activations"
    with torch.no_grad():
        torch.testing.assert_close(qm(big), y_big, atol=1e-5, rtol=0)


@pytest.mark.parametrize("width,mode", [(384, "weight"), (1024, "activations")])
def test_auto_mode_in_training_weighs_the_exterior_kernel(width, mode):
    # QuIC {1,2}, one block, 1024 tokens: at MiniLM's width (n = 27) rotating W and paying dL/dW'
    # was measured 3× cheaper than the exterior kernel on the tokens; at 1024 (n = 44) the reverse
    qm, layer = single(nn.Linear(width, width), QuICConfig(target_modules=["0"], orders=(1, 2), n_blocks=1))
    x = torch.randn(8, 128, width)
    qm(x).sum().backward()
    assert layer.last_apply_mode == mode


def test_block_source_contract():
    qm, layer = single(nn.Linear(8, 20).double(), QuICConfig(target_modules=["0"], n_blocks=2))
    randomize_adapters(qm)
    x = torch.randn(3, 8, dtype=torch.float64)
    want = qm(x)
    spec = layer.quic_spec["default"]
    fixed = [B.detach() for B in layer.blocks()]
    layer.set_block_source(fixed)
    torch.testing.assert_close(qm(x), want, atol=0, rtol=0)

    calls = []

    def source(circuit, angles, orders):
        calls.append((circuit, tuple(angles.shape), tuple(orders)))
        return sector_blocks(circuit, angles, orders)

    qm.set_block_source(source)
    out = qm(x)
    torch.testing.assert_close(out, want, atol=0, rtol=0)
    assert calls == [(spec.circuit, (2, spec.circuit.n_params), (1, 2))]
    out.sum().backward()
    assert layer.quic_params["default"].grad is not None and layer.quic_params["default"].grad.abs().sum() > 0

    layer.set_block_source(lambda c, a, o: [torch.eye(3, dtype=torch.float64).expand(2, 3, 3)])
    with pytest.raises(AdapterError, match="returned 1 tensors, expected one per order"):
        qm(x)
    with pytest.raises(AdapterError, match=r"shape \(2, 5, 5\), expected \(2, 4, 4\)"):
        layer.set_block_source([torch.eye(5).expand(2, 5, 5), torch.eye(6).expand(2, 6, 6)])
    # not orthogonal: forward works (the caller's business), merging refuses
    layer.set_block_source([2 * B for B in fixed])
    with pytest.raises(AdapterError, match="not orthogonal"):
        qm.merge_adapter()
    layer.set_block_source(None)
    torch.testing.assert_close(qm(x), want, atol=0, rtol=0)

    _, lc = single(nn.Linear(8, 20), QuICConfig(target_modules=["0"], n_blocks=2, parameterization="cayley"))
    with pytest.raises(AdapterError, match="cayley"):
        lc.set_block_source(fixed)


@pytest.mark.parametrize("parameterization,layout", [
    ("pyramid", pyramid), ("x", x_layout), ("brick", lambda n: brick(n, 2)), ("cayley", pyramid)])
def test_circuit_and_angles_reproduce_blocks(parameterization, layout):
    cfg = QuICConfig(target_modules=["0"], n_blocks=2, parameterization=parameterization)
    qm, layer = single(nn.Linear(8, 20), cfg)
    randomize_adapters(qm)
    n = layer.quic_spec["default"].n
    assert layer.circuit() == layout(n)
    angles = layer.angles()
    assert angles.shape == (2, layer.circuit().n_params)
    if parameterization != "cayley":
        assert angles is layer.quic_params["default"]
    A = torch.stack(block_matrices(layer))
    # the circuit at its angles gives A·A₀ (A₀ the start's signed permutation; I for cayley)
    start = layer.parameterization().start_params()
    A0 = torch.eye(n, dtype=torch.float64) if parameterization == "cayley" else unary_block(layer.circuit(), start).round()
    torch.testing.assert_close(unary_block(layer.circuit(), angles.detach().double()) @ A0.T, A, atol=1e-6, rtol=0)


def test_quantum_peft_matches_low_rank_update():
    torch.manual_seed(0)
    lin = nn.Linear(12, 6).double()  # neither size a power of two
    W, b = lin.weight.detach().clone(), lin.bias.detach().clone()
    qm, layer = single(lin, QuantumPEFTConfig(target_modules=["0"], rank=3, n_layers=2, alpha=6.0))
    x = torch.randn(4, 12, dtype=torch.float64)
    torch.testing.assert_close(qm(x), x @ W.T + b, atol=0, rtol=0)  # λ = 0: exactly the base layer
    randomize_adapters(qm, std=0.7)
    spec = layer.qpeft_spec["default"]
    assert spec.scale == 2.0 and layer.circuit(which="u").meta["N"] == 6 and layer.circuit(which="v").meta["N"] == 12
    U = pauli_columns(layer.circuit(which="u"), layer.angles(which="u"), 3)
    V = pauli_columns(layer.circuit(which="v"), layer.angles(which="v"), 3)
    for M in (U, V):
        torch.testing.assert_close(M.T @ M, torch.eye(3, dtype=M.dtype), atol=1e-12, rtol=0)
    lam = layer.qpeft_lambda["default"]
    dW = 2.0 * U @ torch.diag(lam) @ V.T
    torch.testing.assert_close(layer.delta_weight(), dW)
    torch.testing.assert_close(qm(x), x @ (W + dW).T + b, atol=1e-12, rtol=0)
    qm.merge_adapter()
    torch.testing.assert_close(layer.base_layer.weight, W + dW.detach(), atol=1e-12, rtol=0)


def test_quantum_peft_conv2d_matches_merged_kernel():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1, stride=2).double()
    W, b = conv.weight.detach().clone(), conv.bias.detach().clone()
    qm, layer = single(conv, QuantumPEFTConfig(target_modules=["0"], rank=2, init_weights=False))
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    dW = layer.delta_weight().detach().reshape(W.shape)
    assert layer.qpeft_spec["default"].d_in == 27
    want = torch.nn.functional.conv2d(x, W + dW, b, padding=1, stride=2)
    torch.testing.assert_close(qm(x), want, atol=1e-12, rtol=0)


def test_quantum_peft_column_source():
    qm, layer = single(nn.Linear(12, 6).double(), QuantumPEFTConfig(target_modules=["0"], rank=2, init_weights=False))
    x = torch.randn(4, 12, dtype=torch.float64)
    want = qm(x)
    U, _, V = (t.detach() for t in layer.factors())
    layer.set_block_source((U, V))
    torch.testing.assert_close(qm(x), want, atol=0, rtol=0)
    with pytest.raises(AdapterError, match=r"U of adapter 'default' must be a float tensor of shape \(6, 2\)"):
        layer.set_block_source((U[:, :1], V))
    layer.set_block_source(pauli_columns)
    torch.testing.assert_close(qm(x), want, atol=0, rtol=0)


@pytest.mark.parametrize("parameterization", PARAMS)
@pytest.mark.parametrize("block_share", [False, True])
def test_parameter_counts_agree_with_counts_module(parameterization, block_share):
    model = mlp()
    cfg = QuICConfig(target_modules=["0", "2"], n_blocks=3, parameterization=parameterization, block_share=block_share)
    qm = get_quicq_model(model, cfg)
    n_layers = 2 if parameterization == "brick" else None
    want = sum(quic_params(d, 3, (1, 2), parameterization, n_layers, block_share) for d in (32, 24))
    assert qm.get_nb_trainable_parameters()[0] == want


def test_quantum_peft_parameter_count():
    qm = get_quicq_model(mlp(), QuantumPEFTConfig(target_modules=["0", "2"], rank=3, n_layers=2))
    assert qm.get_nb_trainable_parameters()[0] == qpeft_params(32, 16, 3, 2) + qpeft_params(24, 32, 3, 2)


@pytest.mark.parametrize("parameterization", PARAMS)
def test_blocks_stay_orthogonal_after_training(parameterization):
    torch.manual_seed(0)
    qm = get_quicq_model(mlp(), QuICConfig(target_modules=["0", "2"], n_blocks=2, parameterization=parameterization))
    opt = torch.optim.Adam([p for p in qm.parameters() if p.requires_grad], lr=1e-2)
    x, y = torch.randn(64, 16), torch.randn(64, 4)
    losses = []
    for _ in range(100):
        loss = ((qm(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for layer in qm.quicq_layers().values():
        assert layer.quic_params["default"].abs().max() > 1e-3  # it moved
        for B in layer.blocks():
            eye = torch.eye(B.shape[-1])
            assert (B.transpose(-1, -2) @ B - eye).abs().max() <= 1e-6


def test_spec_errors_name_module_and_size():
    with pytest.raises(AdapterConfigError, match=r"module '0' \(out_features=6, 4 blocks of size 1\).*too small"):
        get_quicq_model(nn.Sequential(nn.Linear(4, 6)), QuICConfig(target_modules=["0"], n_blocks=4))
    with pytest.raises(AdapterConfigError, match=r"block_size=16 is larger than its out_features=6"):
        get_quicq_model(nn.Sequential(nn.Linear(4, 6)), QuICConfig(target_modules=["0"], block_size=16))
    with pytest.raises(AdapterConfigError, match=r"orders \[1, 3\] need k ≤ n, but only n=2"):
        get_quicq_model(nn.Sequential(nn.Linear(4, 6)), QuICConfig(target_modules=["0"], n_blocks=3, orders=(1, 3)))
    with pytest.raises(AdapterConfigError, match=r"rank=5 exceeds min\(out, in\)=4"):
        get_quicq_model(nn.Sequential(nn.Linear(4, 6)), QuantumPEFTConfig(target_modules=["0"], rank=5))
    with pytest.raises(AdapterConfigError, match=r"grouped Conv2d \(groups=2\)"):
        get_quicq_model(nn.Sequential(nn.Conv2d(4, 4, 1, groups=2)), QuICConfig(target_modules=["0"], n_blocks=1))
    with pytest.raises(AdapterConfigError, match=r"module '0' \(LayerNorm\).*only nn.Linear"):
        get_quicq_model(nn.Sequential(nn.LayerNorm(4)), QuICConfig(target_modules=["0"]))


def test_rotate_auto_takes_each_layers_narrower_side():
    # 8 → 24 (input narrower), 24 → 12 (output narrower), 12 → 12 (tie: output)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 24), nn.Linear(24, 12), nn.Linear(12, 12)).double()
    want = [(8, "input"), (12, "output"), (12, "output")]
    cfg = QuICConfig(target_modules=["0", "1", "2"], n_blocks=1, rotate="auto", apply_mode="activations")
    base = {k: v.clone() for k, v in model.state_dict().items()}
    qm = get_quicq_model(model, cfg)
    layers = [qm.base_model[i] for i in range(3)]
    assert [(L.quic_spec["default"].d, L.quic_spec["default"].rotate) for L in layers] == want
    # the same map as asking each layer for its side explicitly
    randomize_adapters(qm)
    x = torch.randn(4, 8, dtype=torch.float64)
    h = x
    for L, (_, side) in zip(layers, want):
        lin = nn.Linear(L.base_layer.in_features, L.base_layer.out_features).double()
        lin.load_state_dict(L.base_layer.state_dict())
        R = dense_rotation(L)
        h = h @ lin.weight.T @ R.T + lin.bias if side == "output" else h @ R.T @ lin.weight.T + lin.bias
    torch.testing.assert_close(qm(x), h, atol=1e-12, rtol=0)
    # parameter counts without building the model agree, side by side
    from quicq.adapters.counts import count_model

    fresh = nn.Sequential(nn.Linear(8, 24), nn.Linear(24, 12), nn.Linear(12, 12))
    fresh.load_state_dict(base)
    assert count_model(fresh, ["0", "1", "2"], "quic", n_blocks=1, rotate="auto") == sum(
        p.numel() for n, p in qm.named_parameters() if "quic_params" in n)


def test_rotate_auto_passes_over_a_side_the_blocks_do_not_fit():
    # blocks of 8 cannot tile the 4-wide input of 4 → 16, so auto rotates the output
    qm, layer = single(nn.Linear(4, 16), QuICConfig(target_modules=["0"], block_size=8, orders=(1,), rotate="auto"))
    assert (layer.quic_spec["default"].rotate, layer.quic_spec["default"].d) == ("output", 16)
    from quicq.adapters.counts import count_model

    assert count_model(nn.Sequential(nn.Linear(4, 16)), ["0"], "quic", block_size=8, orders=(1,), rotate="auto") \
        == layer.quic_params["default"].numel()
