"""Adapter parameter counts (quicq.adapters.counts) against the paper, the circuits and peft."""

from __future__ import annotations

import math

import pytest

from quicq.adapters.counts import (
    QUIC_PARAMETERIZATIONS,
    count_model,
    count_model_detail,
    linear_shapes,
    lora_params,
    qpeft_params,
    quic_block_dim,
    quic_block_params,
    quic_params,
    reference_meta_model,
)
from quicq.circuits.layouts import brick, butterfly, pyramid, x_layout
from quicq.circuits.pauli import pauli, pauli_param_count

pytest.importorskip("transformers")

# transformers 5 names DINOv2's projections q_proj/k_proj/v_proj; 4.x had attention.{query,key,value}
DINO_QKV = r".*attention\.(q_proj|k_proj|v_proj|attention\.(query|key|value))"


@pytest.fixture(scope="module")
def meta_models():
    return {name: reference_meta_model(name) for name in ("deberta-v3-base", "llama-7b", "dinov2-large", "minilm-l6")}


def _brute_block_dim(b: int, orders: tuple[int, ...]) -> int:
    return max(n for n in range(1, b + 2) if sum(math.comb(n, k) for k in orders) <= b)


@pytest.mark.parametrize("orders", [(1,), (2,), (1, 2), (1, 2, 3), (2, 3)])
def test_block_dim_is_largest_fitting_n(orders):
    for b in range(sum(math.comb(2, k) for k in orders), 400):
        n = quic_block_dim(b, orders)
        assert n == _brute_block_dim(b, orders), (b, orders)
        assert sum(math.comb(n, k) for k in orders) <= b < sum(math.comb(n + 1, k) for k in orders)


def test_block_dim_known_values():
    assert quic_block_dim(256, (1, 2)) == 22  # DeBERTaV3-base, N=3 (22 + 231 = 253)
    assert quic_block_dim(1024, (1, 2)) == 44  # LLaMA-7B, N=4 (44 + 946 = 990)
    assert quic_block_dim(341, (1, 2)) == 25  # DINOv2-large, N=3: b = ⌊1024/3⌋ (25 + 300 = 325)
    assert quic_block_dim(128, (1,)) == 128
    assert quic_block_dim(256, (1, 2), power_of_two=True) == 16
    assert quic_block_dim(1024, (1, 2), power_of_two=True) == 32


def test_block_dim_rejects_tiny_blocks():
    with pytest.raises(ValueError, match="too small"):
        quic_block_dim(2, (1, 2))
    with pytest.raises(ValueError):
        quic_block_dim(0, (1,))
    with pytest.raises(ValueError):
        quic_block_dim(10, ())
    with pytest.raises(ValueError):
        quic_block_dim(10, (0,))


def test_paper_count_deberta(meta_models):
    detail = count_model_detail(
        meta_models["deberta-v3-base"], ["output.dense"], "quic",
        n_blocks=3, orders=(1, 2), parameterization="cayley",
    )
    assert len(detail) == 24
    assert {s.d_out for s, _ in detail} == {768}
    assert {c for _, c in detail} == {1452}
    assert sum(c for _, c in detail) == 34_848


def test_paper_count_llama(meta_models):
    detail = count_model_detail(
        meta_models["llama-7b"], ["q_proj", "v_proj"], "quic",
        n_blocks=4, orders=(1, 2), parameterization="cayley",
    )
    assert len(detail) == 64
    assert {s.d_out for s, _ in detail} == {4096}
    assert sum(c for _, c in detail) == 495_616 == 64 * 4 * 44**2


def test_paper_count_dinov2(meta_models):
    # 1024 is not divisible by 3: b = ⌊1024/3⌋ = 341 → n = 25, the 1024th output is left alone
    # (the paper's code pads the block-diagonal matrix with an identity).
    detail = count_model_detail(
        meta_models["dinov2-large"], DINO_QKV, "quic",
        n_blocks=3, orders=(1, 2), parameterization="cayley",
    )
    assert len(detail) == 72
    assert {s.d_out for s, _ in detail} == {1024}
    assert sum(c for _, c in detail) == 135_000 == 72 * 3 * 25**2


@pytest.mark.parametrize("n", range(2, 21))
def test_circuit_counts_match_layouts(n):
    assert quic_block_params(n, "pyramid") == pyramid(n).n_params == n * (n - 1) // 2
    assert quic_block_params(n, "x") == x_layout(n).n_params
    for layers in range(1, 6):
        assert quic_block_params(n, "brick", n_layers=layers) == brick(n, layers).n_params
    if n & (n - 1) == 0:
        assert quic_block_params(n, "butterfly") == butterfly(n).n_params == n // 2 * int(math.log2(n))
    else:
        with pytest.raises(ValueError, match="power of two"):
            quic_block_params(n, "butterfly")
    assert quic_block_params(n, "cayley") == n * n


def test_quic_params_variants():
    # DeBERTa output.dense, N = 3: n = 22 (pyramid, cayley), 16 (butterfly)
    assert quic_params(768, 3, (1, 2), "pyramid") == 3 * 231
    assert quic_params(768, 3, (1, 2), "butterfly") == 3 * 8 * 4
    assert quic_params(768, 3, (1, 2), "brick", n_layers=4) == 3 * (11 + 10 + 11 + 10)
    assert quic_params(768, 3, (1, 2), "cayley", block_share=True) == 22 * 22
    assert quic_params(384, 8, (1,), "pyramid") == 8 * 48 * 47 // 2
    assert quic_params(768, block_size=256) == quic_params(768, 3) == quic_params(768, 3, (1, 2), "pyramid")
    assert quic_params(768) == quic_params(768, 4)  # QuICConfig's default N
    assert quic_params(96, block_size=40, orders=(1, 2, 3)) == 2 * 10  # b = 40 (not 96 // 2): n = 5
    assert quic_params(1000, 3, (1, 2), "cayley") == 3 * quic_block_dim(333, (1, 2)) ** 2  # 1 row left over
    with pytest.raises(ValueError, match="not both"):
        quic_params(768, 3, block_size=256)
    with pytest.raises(ValueError, match="n_layers"):
        quic_params(768, 3, (1, 2), "pyramid", n_layers=2)
    with pytest.raises(ValueError, match="brick needs"):
        quic_params(768, 3, (1, 2), "brick")
    with pytest.raises(ValueError, match="unknown parameterization"):
        quic_params(768, 3, (1, 2), "householder")
    with pytest.raises(ValueError, match="n_blocks"):
        quic_params(768, 0)


@pytest.mark.parametrize("q", [1, 2, 3, 5, 8, 10, 12])
@pytest.mark.parametrize("L", [0, 1, 2, 3, 6])
def test_quantum_peft_formula_powers_of_two(q, L):
    N = 2**q
    expected = (2 * L + 1) * q - 2 * L  # q = 1: one RY, the layers have no pair to act on
    assert pauli_param_count(N, L) == expected
    if N <= 256:
        assert pauli(N, L).n_params == expected


def test_qpeft_params():
    # MiniLM query 384 = 3·2^7: register of 3 levels (2 angles per "RY") + 7 qubits
    assert qpeft_params(384, 384, 8, 1) == 2 * pauli_param_count(384, 1) + 8
    assert qpeft_params(4096, 4096, 8, 2) == 2 * (5 * 12 - 4) + 8
    assert qpeft_params(1536, 384, 4, 1) == pauli_param_count(1536, 1) + pauli_param_count(384, 1) + 4
    with pytest.raises(ValueError, match="rank"):
        qpeft_params(16, 8, 9, 1)


def test_lora_and_target_matching(meta_models):
    bert = meta_models["minilm-l6"]
    qv = linear_shapes(bert, ["query", "value"])
    assert len(qv) == 12 and all((s.d_out, s.d_in) == (384, 384) for s in qv)
    assert count_model(bert, ["query", "value"], "lora", r=8) == 12 * 8 * 768 == lora_params(384, 384, 8) * 12
    # a string is a whole-name regex (peft convention), so "query" alone matches nothing
    with pytest.raises(ValueError, match="no Linear"):
        linear_shapes(bert, "query")
    assert len(linear_shapes(bert, r".*\.(query|value)")) == 12
    # rotate="input" splits the in-side: intermediate.dense is 384 → 1536
    inter = ["intermediate.dense"]
    assert count_model(bert, inter, "quic", n_blocks=1) == 6 * quic_params(1536, 1)
    assert count_model(bert, inter, "quic", n_blocks=1, rotate="input") == 6 * quic_params(384, 1)
    with pytest.raises(ValueError, match="rotate"):
        count_model(bert, inter, "quic", rotate="both")
    with pytest.raises(ValueError, match="unknown method"):
        count_model(bert, ["query"], "dora")


def test_lora_count_matches_peft():
    """The LoRA formula equals what peft actually allocates, on a tiny real BERT."""
    peft = pytest.importorskip("peft")
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=48))
    targets = ["query", "value", "intermediate.dense", "output.dense"]
    expected = count_model(model, targets, "lora", r=4)
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=targets))
    trainable, _ = wrapped.get_nb_trainable_parameters()
    assert trainable == expected


def test_counts_match_quicq_adapters():
    """The formulas equal what quicq's own adapter layers allocate, on a tiny real BERT."""
    adapters = pytest.importorskip("quicq.adapters")
    import torch
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=50, hidden_size=96, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=128)
    targets = ["query", "value", "output.dense"]
    cases = [
        (adapters.QuICConfig(target_modules=targets, n_blocks=2, orders=(1, 2), parameterization=p),
         dict(method="quic", n_blocks=2, orders=(1, 2), parameterization=p))
        for p in ("pyramid", "butterfly", "cayley", "x")
    ] + [
        (adapters.QuICConfig(target_modules=targets, n_blocks=3, parameterization="brick", n_layers=3),
         dict(method="quic", n_blocks=3, parameterization="brick", n_layers=3)),
        (adapters.QuICConfig(target_modules=targets, block_size=40, orders=(1, 2, 3), block_share=True),
         dict(method="quic", block_size=40, orders=(1, 2, 3), block_share=True)),
        (adapters.QuICConfig(target_modules=targets, n_blocks=1, rotate="input"),
         dict(method="quic", n_blocks=1, rotate="input")),
        (adapters.QuICConfig(target_modules=targets),  # defaults: N = 4, K = {1, 2}, pyramid
         dict(method="quic")),
    ] + [
        (adapters.QuantumPEFTConfig(target_modules=targets, rank=4, n_layers=L),
         dict(method="qpeft", rank=4, n_layers=L))
        for L in (1, 2)
    ]
    assert set(adapters.QUIC_PARAMETERIZATIONS) == set(QUIC_PARAMETERIZATIONS)
    for config, kw in cases:
        torch.manual_seed(0)
        model = BertModel(cfg)
        expected = count_model(model, targets, **kw)
        wrapped = adapters.get_quicq_model(model, config)
        trainable, _ = wrapped.get_nb_trainable_parameters()
        assert trainable == expected, (kw, trainable, expected)
