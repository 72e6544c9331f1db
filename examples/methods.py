"""The PEFT methods the examples and ``benchmarks/accuracy.py`` compare — as data.

Each :class:`MethodSpec` says which library builds the adapter (``kind``), with which settings
(``config``: keyword arguments of ``peft.LoraConfig`` / ``OFTConfig`` / ``BOFTConfig`` or
``quicq.adapters.QuICConfig`` / ``QuantumPEFTConfig``), how they change per task (``by_task``),
which learning rates the accuracy harness sweeps (``grid``, per task), optional learning-rate
multipliers for parameter groups (``lr_groups``: name substring → factor of the swept lr) and how
its stored parameters map to degrees of freedom (``effective``). Adding a method is adding a row.

The QuIC {1,2} rows are generated from ``quicq.adapters.config.QUIC_PARAMETERIZATIONS``, so a new
parameterization appears here (and in the harness) automatically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quicq.adapters.config import QUIC_PARAMETERIZATIONS, QuantumPEFTConfig

KINDS = ("head", "full", "lora", "oft", "boft", "quic", "qpeft")


@dataclass(frozen=True)
class MethodSpec:
    """One method: its library, settings, lr grid per task and parameter accounting.

    ``effective``: ``"stored"`` — every stored number is a degree of freedom; ``"skew"`` — each
    stored trailing n×n matrix is turned into a skew-symmetric generator, so it has n(n−1)/2
    degrees of freedom (QuIC Cayley, peft BOFT).
    """

    name: str
    kind: str
    label: str
    config: dict[str, Any] = field(default_factory=dict)
    by_task: dict[str, dict[str, Any]] = field(default_factory=dict)
    grid: dict[str, tuple[float, ...]] = field(default_factory=dict)
    lr_groups: dict[str, float] = field(default_factory=dict)
    effective: str = "stored"
    #: task families the method applies to (one naming MiniLM's modules has no digits analogue)
    tasks: tuple[str, ...] = ("digits", "text")

    def settings(self, task: str) -> dict[str, Any]:
        """``config`` updated by the task's overrides (task family: the part before ``:``)."""
        return {**self.config, **self.by_task.get(task.split(":")[0], {})}

    def lrs(self, task: str) -> tuple[float, ...]:
        """The learning-rate grid for ``task`` (a CSV task uses the text grid)."""
        family = task.split(":")[0]
        return self.grid.get(family) or self.grid["text"]


# Grids: ≥ 3 values spanning ≥ 10×, geometric with step ≈ √10 so the harness can extend an edge.
# The CNN of the digits task learns from ~360 images and takes larger steps than MiniLM.
# (digits grids: moved up after a first full sweep put most optima at or above their top edge)
_ADAPTER_GRID = {"text": (3e-4, 1e-3, 3e-3), "digits": (1e-3, 3e-3, 1e-2)}
_ORTHO_GRID = {"text": (1e-3, 3e-3, 1e-2), "digits": (3e-3, 1e-2, 3e-2)}
_ANGLE_GRID = {"text": (1e-3, 3e-3, 1e-2, 3e-2), "digits": (1e-2, 3e-2, 1e-1)}
_HEAD_GRID = {"text": (1e-3, 3e-3, 1e-2), "digits": (3e-3, 1e-2, 3e-2)}
#: Quantum-PEFT: the swept lr is the angles' lr; λ gets the library's ratio (lr_hint: θ 5e-2, λ 2e-1,
#: chosen on validation in benchmarks/qpeft_study.py)
_QPEFT_GROUPS = {"qpeft_lambda": QuantumPEFTConfig.lr_hint["lambda"] / QuantumPEFTConfig.lr_hint["theta"],
                 "qpeft_theta": 1.0}
#: QuIC on the CNN rotates the input side of each layer (as OFT does): measured far better there
#: than the output side the QuIC paper uses for transformers.
_QUIC_DIGITS = {"rotate": "input"}


def _quic_rows() -> list[MethodSpec]:
    rows = [MethodSpec("quic-k1", "quic", "QuIC cayley K={1}, blocks of 32",
                       {"parameterization": "cayley", "orders": (1,), "block_size": 32},
                       by_task={"digits": {**_QUIC_DIGITS, "block_size": 16}}, grid=_ANGLE_GRID, effective="skew")]
    # the same first-order adapter on the side peft's OFT rotates (y = W·R·x), with OFT's block
    # size and a Cayley map as OFT's: it separates "first order vs OFT" from "which side"
    rows.append(MethodSpec("quic-k1-in", "quic", "QuIC cayley K={1}, blocks of 32, input side",
                           {"parameterization": "cayley", "orders": (1,), "block_size": 32, "rotate": "input"},
                           grid=_ANGLE_GRID, effective="skew", tasks=("text",)))
    for p in QUIC_PARAMETERIZATIONS:
        rows.append(MethodSpec(f"quic-{p}", "quic", f"QuIC {p} K={{1,2}}, 1 block",
                               {"parameterization": p, "orders": (1, 2), "n_blocks": 1},
                               by_task={"digits": _QUIC_DIGITS}, grid=_ANGLE_GRID,
                               effective="skew" if p == "cayley" else "stored"))
    # The side peft's OFT rotates (y = W·R·x): the QuIC paper rotates the output; which side a
    # compound adapter should act on is an empirical question per task.
    rows.append(MethodSpec("quic-pyramid-in", "quic", "QuIC pyramid K={1,2}, 1 block, input side",
                           {"parameterization": "pyramid", "orders": (1, 2), "n_blocks": 1, "rotate": "input"},
                           grid=_ANGLE_GRID, tasks=("text",)))  # on digits every QuIC row rotates the input
    rows.append(MethodSpec("quic-pyramid-both", "quic", "QuIC pyramid K={1,2}, 1 block, both sides",
                           {"parameterization": "pyramid", "orders": (1, 2), "n_blocks": 1, "rotate": "both"},
                           grid=_ANGLE_GRID))
    # the attention block's four projections (q, k, v, o) at 8.75× fewer parameters than LoRA q/v
    rows.append(MethodSpec("quic-pyramid-qkvo", "quic", "QuIC pyramid K={1,2}, 1 block, q/k/v/o",
                           {"parameterization": "pyramid", "orders": (1, 2), "n_blocks": 1,
                            "targets": ("query", "key", "value", "attention.output.dense")},
                           grid=_ANGLE_GRID, tasks=("text",)))
    # Hamming weights 1–3 on one 13-qubit block (13 + 78 + 286 = 377 of 384 rows): 78 angles a
    # module, the QuIC paper's route to ≥ 40× fewer parameters than LoRA
    rows.append(MethodSpec("quic-k123", "quic", "QuIC pyramid K={1,2,3}, 1 block",
                           {"parameterization": "pyramid", "orders": (1, 2, 3), "n_blocks": 1},
                           by_task={"digits": _QUIC_DIGITS}, grid=_ANGLE_GRID))
    # both sides at ≥ 40× fewer parameters than LoRA: a 12-qubit K={1,2,3} block (12 + 66 + 220 =
    # 298 rows) per side, 66 angles each — 1,584 on MiniLM q/v (46.5×); n = 13 would be 1,872 (39.4×)
    rows.append(MethodSpec("quic-k123-both", "quic", "QuIC pyramid K={1,2,3}, n=12, both sides",
                           {"parameterization": "pyramid", "orders": (1, 2, 3), "block_size": 298, "rotate": "both"},
                           grid=_ANGLE_GRID, tasks=("text",)))
    # ≥ 40× fewer parameters than LoRA r=8 (MiniLM q/v: 1,092 vs 73,728): one pyramid block
    # shared by the 4 blocks of each layer.
    rows.append(MethodSpec("quic-share", "quic", "QuIC pyramid K={1,2}, 4 shared blocks",
                           {"parameterization": "pyramid", "orders": (1, 2), "n_blocks": 4, "block_share": True},
                           by_task={"digits": _QUIC_DIGITS}, grid=_ANGLE_GRID))
    return rows


METHOD_SPECS: dict[str, MethodSpec] = {m.name: m for m in [
    MethodSpec("head", "head", "head only (frozen body)", grid=_HEAD_GRID),
    MethodSpec("full", "full", "full fine-tune", grid={"text": (1e-5, 3e-5, 1e-4), "digits": (3e-4, 1e-3, 3e-3)}),
    MethodSpec("lora", "lora", "LoRA r=8", {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}, grid=_ADAPTER_GRID),
    MethodSpec("oft", "oft", "peft OFT, blocks of 32", {"r": 0, "oft_block_size": 32},
               by_task={"digits": {"oft_block_size": 16}}, grid=_ORTHO_GRID),
    MethodSpec("boft", "boft", "peft BOFT, blocks of 8, 2 factors",
               {"boft_block_size": 8, "boft_n_butterfly_factor": 2}, grid=_ORTHO_GRID, effective="skew"),
    *_quic_rows(),
    MethodSpec("qpeft", "qpeft", "Quantum-PEFT rank 8, 1 layer", {"rank": 8, "n_layers": 1},
               grid={"text": (1e-2, 3e-2, 1e-1), "digits": (3e-2, 1e-1, 3e-1)},
               lr_groups=_QPEFT_GROUPS),
    MethodSpec("qpeft-l3", "qpeft", "Quantum-PEFT rank 8, 3 layers", {"rank": 8, "n_layers": 3},
               grid={"text": (1e-2, 3e-2, 1e-1), "digits": (3e-2, 1e-1, 3e-1)},
               lr_groups=_QPEFT_GROUPS),
    # one layer on all four attention projections (1,344 parameters on MiniLM, 55× fewer than
    # LoRA q/v): breadth instead of depth at about the same budget as qpeft-l3 (measured: no
    # better, 0.735 ± 0.018 against 0.738 ± 0.007 test accuracy, 3 seeds)
    MethodSpec("qpeft-qkvo", "qpeft", "Quantum-PEFT rank 8, 1 layer, q/k/v/o",
               {"rank": 8, "n_layers": 1, "targets": ("query", "key", "value", "attention.output.dense")},
               grid={"text": (1e-2, 3e-2, 1e-1)}, tasks=("text",),
               lr_groups=_QPEFT_GROUPS),
    # rank instead of depth or breadth: each extra column costs one λ (the circuit's angles do not
    # grow with K), so rank 32 / 64 on q/v is 960 / 1,344 parameters (77× / 55× fewer than LoRA)
    *[MethodSpec(f"qpeft-r{k}", "qpeft", f"Quantum-PEFT rank {k}, 1 layer", {"rank": k, "n_layers": 1},
                 grid={"text": (1e-2, 3e-2, 1e-1)}, tasks=("text",),
                 lr_groups=_QPEFT_GROUPS) for k in (32, 64)],
    # the λ/θ lr ratio (4×, chosen at rank 8) re-examined at rank 64: λ at the angles' lr, and 16×
    *[MethodSpec(f"qpeft-r64-lam{r:g}", "qpeft", f"Quantum-PEFT rank 64, 1 layer, λ lr {r:g}× θ lr",
                 {"rank": 64, "n_layers": 1}, grid={"text": (1e-2, 3e-2, 1e-1)}, tasks=("text",),
                 lr_groups={"qpeft_lambda": r, "qpeft_theta": 1.0}) for r in (1.0, 16.0)],
]}

#: What the harness runs by default: every method but full fine-tuning.
HARNESS_METHODS: tuple[str, ...] = tuple(m for m in METHOD_SPECS if m != "full")
#: The baselines (independent of quicq's adapters).
BASELINE_METHODS: tuple[str, ...] = ("head", "lora", "oft", "boft")
ALL_METHODS: tuple[str, ...] = tuple(METHOD_SPECS)
