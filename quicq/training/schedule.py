"""The learning-rate schedule of every quicq recipe: linear warmup, then cosine decay to 0.

One definition, used by ``quicq train`` (:mod:`quicq.training.run`), the examples and
``benchmarks/accuracy.py`` (``examples/common.py``), so a config trained with ``quicq train``
follows exactly the schedule whose learning rates the accuracy harness chose on validation.

The multiplier is a pure function of the step number, so a resumed run recomputes it instead of
checkpointing a scheduler's state (bit-exact resume needs nothing more than the step counter).
"""

from __future__ import annotations

import math

__all__ = ["SCHEDULES", "WARMUP_FRACTION", "lr_factor", "warmup_steps"]

#: ``constant``: the base lr at every step; ``cosine``: linear warmup then cosine to 0.
SCHEDULES: tuple[str, ...] = ("constant", "cosine")
#: Warmup fraction of the recipes (peft's and the QuIC authors' GLUE recipes warm up over ~6%).
WARMUP_FRACTION = 0.06


def warmup_steps(steps: int, fraction: float) -> int:
    """Warmup length of a ``steps``-step run: ``round(fraction · steps)``, at least 1."""
    return max(1, round(fraction * steps))


def lr_factor(step: int, steps: int, *, warmup: float = WARMUP_FRACTION, schedule: str = "cosine") -> float:
    """Multiplier of every group's base lr at 0-based ``step`` of a ``steps``-step run.

    ``cosine``: ``(step + 1) / w`` over the first ``w = warmup_steps(steps, warmup)`` steps, then
    ``½(1 + cos(π (step − w) / (steps − w)))`` — 1 right after warmup, → 0 at the last step.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; schedules are {list(SCHEDULES)}")
    if schedule == "constant":
        return 1.0
    w = warmup_steps(steps, warmup)
    if step < w:
        return (step + 1) / w
    return 0.5 * (1.0 + math.cos(math.pi * (step - w) / max(1, steps - w)))
