"""QuicqTrainer: HF Trainer checkpoints and save_model hold only the adapter, and resume from it."""

from __future__ import annotations

import torch
from adapters_helpers import bert_cls, one_thread  # noqa: F401

from quicq import QuICConfig, QuicqModel, get_quicq_model


def _data(n: int = 16) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (n, 12), generator=g)
    return [{"input_ids": ids[i], "attention_mask": torch.ones(12, dtype=torch.long), "labels": int(i % 2)}
            for i in range(n)]


def test_trainer_checkpoints_hold_only_the_adapter_and_resume(tmp_path):
    from transformers import TrainingArguments

    from quicq.adapters.hf import QuicqTrainer

    qm = get_quicq_model(bert_cls(), QuICConfig(target_modules=["query", "value"], n_blocks=4, task_type="SEQ_CLS"))
    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=4,
                             save_steps=1, logging_steps=1, report_to=[], use_cpu=True, learning_rate=1e-2,
                             dataloader_num_workers=0)
    trainer = QuicqTrainer(model=qm, args=args, train_dataset=_data())
    trainer.train()
    ckpt = tmp_path / "run" / "checkpoint-2"
    files = {p.name for p in ckpt.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "training_args.json"} <= files
    assert "model.safetensors" not in files and "training_args.bin" not in files
    total = sum(p.stat().st_size for p in (tmp_path / "run" / "checkpoint-2").iterdir() if p.suffix == ".safetensors")
    assert total < 200_000  # the adapter and the head, not the model
    trainer.save_model(str(tmp_path / "final"))
    loaded = QuicqModel.from_pretrained(bert_cls(), tmp_path / "final")
    x = {"input_ids": torch.randint(5, 100, (2, 12))}
    qm.eval()
    torch.testing.assert_close(loaded(**x).logits, qm(**x).logits)
    # resuming copies the checkpoint's adapter back into a fresh adapted model
    fresh = get_quicq_model(bert_cls(), QuICConfig(target_modules=["query", "value"], n_blocks=4, task_type="SEQ_CLS"))
    QuicqTrainer(model=fresh, args=args, train_dataset=_data())._load_from_checkpoint(str(ckpt))
    fresh.eval()
    qm_ckpt = QuicqModel.from_pretrained(bert_cls(), ckpt)
    torch.testing.assert_close(fresh(**x).logits, qm_ckpt(**x).logits)
