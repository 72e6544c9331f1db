"""peft's vocabulary in quicq: top-level imports, task_type, field-name hints, status methods."""

from __future__ import annotations

import warnings

import pytest
import torch
from adapters_helpers import bert_cls, mlp, one_thread  # noqa: F401

from quicq.adapters.config import AdapterConfigError


def test_top_level_imports_like_peft():
    from quicq import QuantumPEFTConfig, QuICConfig, QuicqModel, get_quicq_model  # noqa: F401

    qm = get_quicq_model(mlp(), QuICConfig(target_modules=["0"], n_blocks=1))
    assert isinstance(qm, QuicqModel)


@pytest.mark.parametrize("field,hint", [("r", "rank"), ("lora_alpha", "alpha"), ("lora_dropout", "no dropout")])
def test_peft_field_names_get_a_hint(field, hint):
    from quicq import QuantumPEFTConfig, QuICConfig

    for cls in (QuICConfig, QuantumPEFTConfig):
        with pytest.raises(AdapterConfigError, match=hint):
            cls(target_modules=["0"], **{field: 8})
        with pytest.raises(AdapterConfigError, match=hint):
            cls.from_dict({"target_modules": ["0"], field: 8})


def test_task_type_seq_cls_trains_the_head_and_a_frozen_head_warns():
    from quicq import QuICConfig, get_quicq_model

    qm = get_quicq_model(bert_cls(), QuICConfig(target_modules=["query", "value"], n_blocks=4, task_type="SEQ_CLS"))
    assert any(n.startswith("base_model.classifier.modules_to_save") and p.requires_grad
               for n, p in qm.named_parameters())
    with pytest.warns(UserWarning, match="task head .*classifier.* stays frozen"):
        get_quicq_model(bert_cls(), QuICConfig(target_modules=["query"], n_blocks=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_quicq_model(bert_cls(), QuICConfig(target_modules=["query"], n_blocks=4, modules_to_save=["classifier"]))
    with pytest.raises(AdapterConfigError, match="task_type must be one of"):
        QuICConfig(target_modules=["query"], task_type="CLASSIFY")


def test_inference_mode_status_and_set_requires_grad():
    from quicq import QuantumPEFTConfig, get_quicq_model

    qm = get_quicq_model(mlp(), QuantumPEFTConfig(target_modules=["0", "2"], rank=2, inference_mode=True))
    assert qm.get_nb_trainable_parameters()[0] == 0
    status = qm.get_model_status()
    assert status.requires_grad == {"default": False} and status.available_adapters == ["default"]
    qm.set_requires_grad("default")
    layers = qm.get_layer_status()
    assert [s.name for s in layers] == ["0", "2"] and all(s.requires_grad["default"] for s in layers)
    assert layers[0].module_type == "Linear" and layers[0].devices["default"] == ["cpu"] and layers[0].enabled
    assert qm.get_model_status().trainable_params > 0
    x = torch.randn(2, 16)
    with qm.disable_adapter():
        assert qm.get_model_status().enabled is False
    qm(x)
    with pytest.raises(AdapterConfigError, match="unknown adapter"):
        qm.set_requires_grad("other")
