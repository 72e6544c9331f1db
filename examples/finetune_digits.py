"""Adapt a small CNN pretrained on digits 0–4 to digits 5–9, with PEFT methods side by side.

The task, network and recipe are the accuracy harness's (``benchmarks/accuracy.py``): the
:class:`quicq.tasks.DigitsCNN` pretrained on every 0–4 image of scikit-learn's 8×8 digits, adapted
on the 5–9 training images (a validation part carved from them) and tested on held-out 5–9 images;
AdamW, 6% warmup + cosine, 300 steps of batch 32. Adapters go on ``conv2``, ``fc1``, ``fc2``; the
head is always trained. Each method's lr is the one the harness chose on *validation* (from
``results/accuracy.json`` when its settings match), else the middle of its grid, or ``--lr``.

    python examples/finetune_digits.py                               # ~1 minute, 1 thread
    python examples/finetune_digits.py --steps 5 --methods head,quic-pyramid   # smoke test

Prints a table and writes ``<out>/digits.json`` and ``<out>/digits.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads import example_main  # noqa: E402

DEFAULT_METHODS = ("head", "full", "lora", "oft", "quic-pyramid", "quic-butterfly", "quic-cayley", "qpeft")


def main(argv: list[str] | None = None) -> int:
    return example_main("digits", __doc__, DEFAULT_METHODS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
