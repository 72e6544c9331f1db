"""The hardware package's module split keeps every old import path pointing at the one definition."""

from __future__ import annotations

import importlib

import pytest

MOVED = [  # (old module, name, new home)
    ("quicq.hardware.tomography", "Tomography", "quicq.hardware.tomography_base"),
    ("quicq.hardware.tomography", "TomographyResult", "quicq.hardware.tomography_base"),
    ("quicq.hardware.tomography", "polar", "quicq.hardware.estimators"),
    ("quicq.hardware.tomography", "combine", "quicq.hardware.estimators"),
    ("quicq.hardware.tomography", "magnitudes", "quicq.hardware.estimators"),
    ("quicq.hardware.tomography", "shot_variance", "quicq.hardware.estimators"),
    ("quicq.hardware.tomography", "compound_with_errors", "quicq.hardware.estimators"),
    ("quicq.hardware.tomography", "pair_prep", "quicq.hardware.preparations"),
    ("quicq.hardware.tomography", "basis_prep", "quicq.hardware.preparations"),
    ("quicq.hardware.tomography", "x_readout", "quicq.hardware.preparations"),
    ("quicq.hardware.planner", "CostPlan", "quicq.hardware.cost_plan"),
    ("quicq.hardware.planner", "PlanUnit", "quicq.hardware.cost_plan"),
    ("quicq.hardware.planner", "CircuitCost", "quicq.hardware.cost_plan"),
    ("quicq.hardware.planner", "PlanError", "quicq.hardware.cost_plan"),
    ("quicq.hardware.planner", "DEFAULT_REP_DELAY_S", "quicq.hardware.plan_device"),
    ("quicq.hardware", "TomographyResult", "quicq.hardware.tomography_base"),
    ("quicq.hardware", "polar", "quicq.hardware.estimators"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_old_import_paths_are_the_new_objects(old: str, name: str, new: str) -> None:
    assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name)


def test_block_tomography_stays_in_tomography() -> None:
    from quicq.hardware.tomography import BlockTomography

    assert BlockTomography.__module__ == "quicq.hardware.tomography"
