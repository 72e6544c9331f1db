"""examples/common.train pins torch threads for the run and restores the caller's setting."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from common import Recipe, train  # noqa: E402


def test_train_pins_threads_and_restores():
    outer = torch.get_num_threads()
    torch.set_num_threads(2)  # the caller's setting, different from the pin
    seen: list[int] = []
    model = nn.Linear(4, 2)

    def loss_fn(m, batch):
        seen.append(torch.get_num_threads())
        return m(batch).square().mean()

    batches = iter([torch.randn(3, 4)] * 8)
    stats = train(model, Recipe(steps=6, batch_size=3, head_lr=1e-3), 1e-3, head=[], batches=batches, loss_fn=loss_fn, threads=1)
    assert seen == [1] * 6 and stats.threads == 1
    assert torch.get_num_threads() == 2
    torch.set_num_threads(outer)
