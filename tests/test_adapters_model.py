"""Model surgery: identity at start, freezing, merge, disable, multiple adapters, targeting, Trainer."""

from __future__ import annotations

import pickle

import pytest
import torch
from adapters_helpers import (  # noqa: F401
    bert,
    bert_cls,
    convnet,
    mlp,
    one_thread,
    randomize_adapters,
    same_state,
    snapshot,
    trainable_names,
)
from torch import nn

from quicq.adapters import (
    AdapterConfigError,
    ModulesToSaveWrapper,
    QuantumPEFTConfig,
    QuantumPEFTLayer,
    QuICConfig,
    QuICLayer,
    get_quicq_model,
)

IDS = torch.randint(0, 100, (3, 7), generator=torch.Generator().manual_seed(0))

# (model builder, input builder, config) — the three model families of the suite
CASES = {
    "mlp-quic": (mlp, lambda: torch.randn(5, 16), QuICConfig(target_modules=["0", "2"], n_blocks=2)),
    "mlp-qpeft": (mlp, lambda: torch.randn(5, 16), QuantumPEFTConfig(target_modules=["0", "2", "4"], rank=3)),
    "conv-quic": (convnet, lambda: torch.randn(2, 3, 8, 8),
                  QuICConfig(target_modules=["0", "2", "4"], n_blocks=2, orders=(1,))),
    "conv-qpeft": (convnet, lambda: torch.randn(2, 3, 8, 8), QuantumPEFTConfig(target_modules=["0", "2"], rank=2)),
    "bert-quic": (bert, lambda: {"input_ids": IDS},
                  QuICConfig(target_modules=["query", "value", "output.dense"], n_blocks=2)),
    "bert-qpeft": (bert, lambda: {"input_ids": IDS},
                   QuantumPEFTConfig(target_modules="all-linear", rank=2, n_layers=2)),
    "bertcls-cayley": (bert_cls, lambda: {"input_ids": IDS},
                       QuICConfig(target_modules="all-linear", block_size=16, parameterization="cayley",
                                  modules_to_save=["classifier"])),
}


def run(model, inp):
    out = model(**inp) if isinstance(inp, dict) else model(inp)
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    return torch.cat([out.last_hidden_state.flatten(1), out.pooler_output], dim=1)  # every module counts


@pytest.fixture(params=sorted(CASES))
def case(request):
    build, make_input, config = CASES[request.param]
    torch.manual_seed(123)
    inp = make_input()
    ref = run(build(), inp).detach()
    qm = get_quicq_model(build(), config)
    return qm, inp, ref, build


def test_identity_at_start(case):
    qm, inp, ref, _ = case
    assert (run(qm, inp) - ref).abs().max() <= 1e-6


def test_only_adapter_params_get_gradients(case):
    qm, inp, _, _ = case
    randomize_adapters(qm, std=0.1)  # λ ≠ 0 so every Quantum-PEFT angle has a gradient too
    names = trainable_names(qm)
    adapter_attrs = ("quic_params", "qpeft_theta_u", "qpeft_theta_v", "qpeft_lambda", ".modules_to_save.")
    assert names and all(any(a in n for a in adapter_attrs) for n in names)
    assert all(not p.requires_grad for n, p in qm.named_parameters() if ".base_layer." in n or "original_module" in n)
    run(qm, inp).square().sum().backward()
    for n, p in qm.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, n
        else:
            assert p.grad is None, n


def test_merge_unmerge_disable(case):
    qm, inp, ref, _ = case
    randomize_adapters(qm, std=0.2)
    with torch.no_grad():
        y = run(qm, inp)
        assert (y - ref).abs().max() > 1e-3
        qm.merge_adapter()
        assert all(layer.merged for layer in qm.quicq_layers().values())
        assert (run(qm, inp) - y).abs().max() <= 1e-5
        qm.unmerge_adapter()
        assert (run(qm, inp) - y).abs().max() <= 1e-5
        with qm.disable_adapter():
            assert (run(qm, inp) - ref).abs().max() <= 1e-5
        assert (run(qm, inp) - y).abs().max() <= 1e-5
        qm.merge_adapter()
        with pytest.warns(UserWarning, match="unmerging"), qm.disable_adapter():
            assert (run(qm, inp) - ref).abs().max() <= 1e-5


def test_merge_and_unload_returns_plain_model(case):
    qm, inp, _, build = case
    randomize_adapters(qm, std=0.2)
    with torch.no_grad():
        y = run(qm, inp)
        plain = qm.merge_and_unload()
        assert not any(isinstance(m, (QuICLayer, QuantumPEFTLayer, ModulesToSaveWrapper)) for m in plain.modules())
        assert type(plain) is type(build())
        assert set(plain.state_dict()) == set(build().state_dict())
        assert (run(plain, inp) - y).abs().max() <= 1e-5


def test_disable_adapter_is_exact_base_output():
    qm = get_quicq_model(mlp(), QuICConfig(target_modules=["0", "2"], n_blocks=2, init_weights=False))
    x = torch.randn(4, 16)
    with qm.disable_adapter():
        torch.testing.assert_close(qm(x), mlp()(x), atol=0, rtol=0)
        assert not trainable_names(qm)
    assert trainable_names(qm)


def test_multiple_adapters_add_set_delete():
    x = torch.randn(4, 16)
    ref = mlp()(x)
    qm = get_quicq_model(mlp(), QuICConfig(target_modules=["0", "2"], n_blocks=2), "a")
    randomize_adapters(qm, seed=1)
    ya = qm(x)
    qm.add_adapter("b", QuantumPEFTConfig(target_modules=["4"], rank=2, init_weights=False))
    qm.add_adapter("c", QuICConfig(target_modules=["2"], n_blocks=1, parameterization="butterfly", init_weights=False))
    assert list(qm.peft_config) == ["a", "b", "c"] and qm.active_adapters == ["a"]
    assert all(n.endswith(".a") for n in trainable_names(qm))  # added adapters start frozen
    torch.testing.assert_close(qm(x), ya)
    qm.set_adapter("b")
    yb = qm(x)
    assert isinstance(qm.base_model[4], QuantumPEFTLayer) and trainable_names(qm) == {
        f"base_model.4.{a}.b" for a in ("qpeft_theta_u", "qpeft_theta_v", "qpeft_lambda")}
    assert (yb - ya).abs().max() > 1e-3 and (yb - ref).abs().max() > 1e-3
    qm.set_adapter(["a", "b", "c"])
    yabc = qm(x)
    assert (yabc - ya).abs().max() > 1e-3
    assert {n.rsplit(".", 1)[1] for n in trainable_names(qm)} == {"a", "b", "c"}
    with pytest.raises(AdapterConfigError, match="unknown adapter"):
        qm.set_adapter("zzz")
    with pytest.raises(AdapterConfigError, match="already exists"):
        qm.add_adapter("a", QuICConfig(target_modules=["0"]))
    with pytest.raises(AdapterConfigError, match="cannot mix quicq methods"):
        qm.add_adapter("d", QuantumPEFTConfig(target_modules=["0"], rank=2))
    assert list(qm.peft_config) == ["a", "b", "c"]  # the failed add left nothing behind
    qm.delete_adapter("b")
    assert isinstance(qm.base_model[4], nn.Linear)  # its only adapter is gone: unwrapped
    assert qm.active_adapters == ["a", "c"]
    qm.delete_adapter("a")
    assert isinstance(qm.base_model[0], nn.Linear) and qm.active_adapters == ["c"]
    qm.add_adapter("e", QuICConfig(target_modules=["0"], n_blocks=2))
    with pytest.warns(UserWarning, match="'e' is active now"):
        qm.delete_adapter("c")  # the active one deleted: the first remaining takes over
    assert qm.active_adapters == ["e"]
    qm.delete_adapter("e")
    assert not qm.peft_config and same_state(qm.base_model, snapshot(mlp()))
    torch.testing.assert_close(qm(x), ref, atol=0, rtol=0)


def test_targeting_rules_follow_peft():
    model = bert_cls()
    names = lambda cfg: sorted(get_quicq_model(bert_cls(), cfg).quicq_layers())
    suffix = names(QuICConfig(target_modules=["query"], n_blocks=2))
    assert suffix == [f"bert.encoder.layer.{i}.attention.self.query" for i in range(2)]
    regex = names(QuICConfig(target_modules=r".*layer\.1\..*(query|key)", n_blocks=2))
    assert regex == ["bert.encoder.layer.1.attention.self.key", "bert.encoder.layer.1.attention.self.query"]
    all_linear = names(QuICConfig(target_modules="all-linear", n_blocks=2))
    linears = sorted(n for n, m in model.named_modules() if isinstance(m, nn.Linear))
    assert all_linear == [n for n in linears if n != "classifier"] and len(all_linear) == 13
    excluded = names(QuICConfig(target_modules="all-linear", exclude_modules=["pooler.dense", "intermediate.dense"],
                                n_blocks=2))
    assert len(excluded) == 10 and not any("pooler" in n or "intermediate" in n for n in excluded)


def test_gpt2_conv1d_all_linear_skips_lm_head():
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.pytorch_utils import Conv1D

    def build():
        torch.manual_seed(0)
        return GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, n_positions=16)).eval()

    ids = IDS[:, :6]
    ref = build()(input_ids=ids).logits
    qm = get_quicq_model(build(), QuICConfig(target_modules="all-linear", n_blocks=4))
    layers = qm.quicq_layers()
    assert len(layers) == 8 and all(isinstance(m.base_layer, Conv1D) for m in layers.values())
    assert "lm_head" not in layers
    with torch.no_grad():
        assert (qm(input_ids=ids).logits - ref).abs().max() <= 1e-6
        randomize_adapters(qm, std=0.2)
        y = qm(input_ids=ids).logits
        assert (y - ref).abs().max() > 1e-3
        plain = qm.merge_and_unload()
        assert (plain(input_ids=ids).logits - y).abs().max() <= 1e-5


def test_modules_to_save_are_trained_copies():
    inp = {"input_ids": IDS}
    qm = get_quicq_model(bert_cls(), QuICConfig(target_modules=["query"], n_blocks=2, modules_to_save=["classifier"]))
    wrapper = qm.base_model.classifier
    assert isinstance(wrapper, ModulesToSaveWrapper)
    assert {n for n in trainable_names(qm) if "classifier" in n} == {
        "base_model.classifier.modules_to_save.default.weight", "base_model.classifier.modules_to_save.default.bias"}
    with torch.no_grad():
        wrapper.modules_to_save["default"].weight.add_(1.0)
    ref = run(bert_cls(), inp)
    assert (run(qm, inp) - ref).abs().max() > 1e-2
    with qm.disable_adapter():
        torch.testing.assert_close(run(qm, inp), ref, atol=1e-6, rtol=0)
    assert qm.classifier is wrapper  # attribute access falls through to the base model


def test_bad_configs_raise_clearly_and_leave_model_unchanged():
    model = bert_cls()
    before = snapshot(model)
    types_before = [type(m) for m in model.modules()]
    cases = [
        (QuICConfig(target_modules=["nonexistent"]), r"matched no adaptable module of BertForSequenceClassification"),
        (QuICConfig(target_modules=["query", "LayerNorm"], n_blocks=2), r"'bert.embeddings.LayerNorm' \(LayerNorm\)"),
        (QuICConfig(target_modules=["query", "dense"], n_blocks=16),
         (r"module 'bert.encoder.layer.0.attention.self.query' \(out_features=32, 16 blocks of size 2\): "
          r"block size b=2 is too small for orders \(1, 2\)")),
        (QuICConfig(target_modules=["query"], n_blocks=40), r"n_blocks=40 exceeds its out_features=32"),
        (QuantumPEFTConfig(target_modules=["query"], modules_to_save=["not_a_module"]), "matches no module"),
    ]
    for cfg, msg in cases:
        with pytest.raises(AdapterConfigError, match=msg):
            get_quicq_model(model, cfg)
        assert same_state(model, before) and [type(m) for m in model.modules()] == types_before
    with pytest.raises(AdapterConfigError, match=r"unknown parameterization 'givens'; choose one of"):
        QuICConfig(target_modules=["query"], parameterization="givens")
    with pytest.raises(AdapterConfigError, match="give n_blocks or block_size, not both"):
        QuICConfig(target_modules=["query"], n_blocks=2, block_size=8)
    with pytest.raises(AdapterConfigError, match="orders must be distinct ints ≥ 1"):
        QuICConfig(target_modules=["query"], orders=(0, 1))
    with pytest.raises(AdapterConfigError, match="needs target_modules"):
        QuantumPEFTConfig()
    with pytest.raises(AdapterConfigError, match="not a valid regular expression"):
        QuICConfig(target_modules="(query")
    with pytest.raises(AdapterConfigError, match="already a QuicqModel"):
        get_quicq_model(get_quicq_model(mlp(), QuICConfig(target_modules=["0"])), QuICConfig(target_modules=["2"]))


def test_wrapper_delegates_and_exposes_circuits():
    import inspect

    qm = get_quicq_model(bert_cls(), QuICConfig(target_modules=["query"], n_blocks=2))
    assert list(inspect.signature(qm.forward).parameters)[:2] == ["input_ids", "attention_mask"]
    assert qm.config.hidden_size == 32 and qm.get_base_model() is qm.base_model
    layer = qm.quicq_layers()["bert.encoder.layer.0.attention.self.query"]
    assert layer.circuit().n_qubits == layer.quic_spec["default"].n == 5
    assert layer.weight is layer.base_layer.weight  # model code reading .weight keeps working


def test_deepcopy_and_pickle_keep_working():
    import copy

    x = torch.randn(3, 16)
    for cfg in (QuICConfig(target_modules=["0"], n_blocks=2, init_weights=False),
                QuantumPEFTConfig(target_modules=["2"], rank=2, init_weights=False)):
        qm = get_quicq_model(mlp(), cfg)
        twin = copy.deepcopy(qm)
        assert torch.equal(twin(x), qm(x))
        with torch.no_grad():
            next(p for p in twin.parameters() if p.requires_grad).add_(1.0)
        assert not torch.equal(twin(x), qm(x))  # the copy calls its own base model
        # multiprocessing (DataLoader workers, spawn-based DDP) pickles whole models; adapter
        # files themselves are safetensors + JSON and never go through pickle.
        assert torch.equal(pickle.loads(pickle.dumps(qm))(x), qm(x))


def test_trainer_runs_one_epoch(tmp_path):
    from transformers import Trainer, TrainingArguments

    class Tiny(torch.utils.data.Dataset):
        def __init__(self) -> None:
            g = torch.Generator().manual_seed(0)
            self.ids = torch.randint(0, 100, (16, 6), generator=g)
            self.labels = torch.randint(0, 2, (16,), generator=g)

        def __len__(self) -> int:
            return 16

        def __getitem__(self, i):
            return {"input_ids": self.ids[i], "attention_mask": torch.ones(6, dtype=torch.long),
                    "labels": self.labels[i], "unused_column": 0}

    qm = get_quicq_model(bert_cls(), QuICConfig(target_modules=["query", "value"], n_blocks=2,
                                                modules_to_save=["classifier"]))
    frozen = {n: p.detach().clone() for n, p in qm.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in qm.named_parameters() if p.requires_grad}
    args = TrainingArguments(output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=4,
                             learning_rate=1e-2, report_to=[], save_strategy="no", logging_strategy="no",
                             use_cpu=True, disable_tqdm=True, dataloader_num_workers=0)
    result = Trainer(model=qm, args=args, train_dataset=Tiny()).train()
    assert result.global_step == 4
    assert all(torch.equal(p, frozen[n]) for n, p in qm.named_parameters() if n in frozen)
    assert all(not torch.equal(p, trained[n]) for n, p in qm.named_parameters() if n in trained)
