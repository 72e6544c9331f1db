"""README's Python examples run as written (in one namespace, with a tiny random BERT as `base`)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    from transformers import BertConfig, BertForSequenceClassification

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3, "README lost its examples"
    monkeypatch.chdir(tmp_path)  # save_pretrained("adapter/") writes here
    cfg = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, vocab_size=100)
    ns = {"base": BertForSequenceClassification(cfg), "fresh_base": BertForSequenceClassification(cfg)}
    for code in blocks:
        exec(compile(code, str(README), "exec"), ns)  # noqa: S102 - our own README
    assert ns["U_hat"].shape == (5, 5) and ns["C2_hat"].shape == (10, 10)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
