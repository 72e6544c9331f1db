"""Adapter files on disk: permissions, recorded layer geometry, and the two formats quicq reads."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from adapters_helpers import convnet, mlp, one_thread, same_state, snapshot  # noqa: F401
from torch import nn

from quicq.adapters import AdapterLoadError, QuantumPEFTConfig, QuICConfig, QuicqModel, get_quicq_model
from quicq.adapters.io import CONFIG_NAME, WEIGHTS_NAME


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_adapter_files_get_the_mode_open_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        get_quicq_model(mlp(), QuICConfig(target_modules=["0"], n_blocks=2)).save_pretrained(tmp_path)
    finally:
        os.umask(old)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME])  # no temp files left


def _conv_with_kernel(kernel: int) -> nn.Sequential:
    """convnet() with module "0" a kernel×kernel conv of the same channel counts (3 → 8)."""
    net = convnet()
    net[0] = nn.Conv2d(3, 8, kernel, padding=kernel // 2)
    return net


@pytest.mark.parametrize("config", [QuICConfig(target_modules=["0"], n_blocks=1, orders=(1,), rotate="input"),
                                    QuantumPEFTConfig(target_modules=["0"], rank=2)], ids=["quic", "qpeft"])
def test_conv_kernel_size_is_recorded_and_checked(tmp_path, config):
    get_quicq_model(convnet(), config).save_pretrained(tmp_path)
    rec = json.loads((tmp_path / CONFIG_NAME).read_text())["modules"]["0"]
    assert rec == {"kind": "conv2d", "out_features": 8, "in_features": 3, "kernel_size": [3, 3]}
    other = _conv_with_kernel(1)
    before, types = snapshot(other), [type(m) for m in other.modules()]
    with pytest.raises(AdapterLoadError, match=r"module '0' was conv2d out_features=8 in_features=3 "
                                               r"kernel_size=\(3, 3\) when saved, this model's is .*kernel_size=\(1, 1\)"):
        QuicqModel.from_pretrained(other, tmp_path)
    assert same_state(other, before) and [type(m) for m in other.modules()] == types
    QuicqModel.from_pretrained(_conv_with_kernel(3), tmp_path)  # same kernel: loads


def test_records_without_kernel_size_still_load(tmp_path):
    """Files written before the kernel size was recorded are not rejected for lacking it."""
    get_quicq_model(convnet(), QuantumPEFTConfig(target_modules=["0"], rank=2)).save_pretrained(tmp_path)
    meta = json.loads((tmp_path / CONFIG_NAME).read_text())
    del meta["modules"]["0"]["kernel_size"]
    (tmp_path / CONFIG_NAME).write_text(json.dumps(meta))
    QuicqModel.from_pretrained(convnet(), tmp_path)
