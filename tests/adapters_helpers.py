"""Shared builders and independent references for the tests/test_adapters_*.py files.

The dense references here rebuild each rotation from the definitions (docs/conventions.md, docs/design.md#adapters) with
determinants and ``torch.block_diag``, independently of quicq.adapters.layer.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from quicq.engine import unary_block


@pytest.fixture(autouse=True)
def one_thread():
    """Run each test on one intra-op thread: these tensors are tiny, and on a busy 2-core box
    two spinning threads per process make every op ~20× slower. Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


BERT_KW = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
           "vocab_size": 100}


def mlp(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """A tiny MLP with modules "0" (16→32), "2" (32→24), "4" (24→4, the head)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 4)).to(dtype)


def convnet(seed: int = 0) -> nn.Sequential:
    """A tiny conv net: "0" 3×3 conv 3→8, "2" 1×1 conv 8→12, "4" strided 3×3 conv 12→6."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 1), nn.ReLU(),
                         nn.Conv2d(12, 6, 3, stride=2))


def bert_cls(seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(**BERT_KW, num_labels=2)).eval()


def bert(seed: int = 0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    return BertModel(BertConfig(**BERT_KW)).eval()


def randomize_adapters(model: nn.Module, std: float = 0.3, seed: int = 1) -> None:
    """Give every trainable parameter random values (adapters away from the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)


def compound_ref(A: torch.Tensor, k: int) -> torch.Tensor:
    """C_k(A)[S, T] = det A[S, T] over lexicographic k-subsets, by brute force."""
    n = A.shape[-1]
    subs = list(itertools.combinations(range(n), k))
    out = torch.empty(len(subs), len(subs), dtype=A.dtype)
    for i, S in enumerate(subs):
        for j, T in enumerate(subs):
            out[i, j] = torch.linalg.det(A[list(S)][:, list(T)])
    return out


def block_matrices(layer, adapter: str = "default") -> list[torch.Tensor]:
    """The n×n matrices A_i a QuIC adapter applies, from the unary block or the Cayley formula."""
    spec = layer.quic_spec[adapter]
    p = layer.quic_params[adapter].detach().double()
    if spec.parameterization == "cayley":
        S = (p - p.transpose(-1, -2)) / 2
        eye = torch.eye(spec.n, dtype=p.dtype)
        A = torch.stack([(eye - s) @ torch.linalg.inv(eye + s) for s in S])
    else:
        # circuit charts apply A(θ)·A(θ₀)ᵀ, θ₀ the start (a signed permutation point)
        A0 = unary_block(spec.circuit, spec.param.start_params()).round()
        A = unary_block(spec.circuit, p) @ A0.T
    if spec.block_share:
        A = A.expand(spec.n_blocks, spec.n, spec.n)
    return list(A)


def dense_rotation(layer, adapter: str = "default") -> torch.Tensor:
    """blockdiag over blocks of ⊕_k C_k(A_i) ⊕ I, plus identity on leftover rows: d×d, float64."""
    spec = layer.quic_spec[adapter]
    blocks = []
    for A in block_matrices(layer, adapter):
        parts = [compound_ref(A, k) for k in spec.orders]
        tail = spec.block_size - sum(P.shape[0] for P in parts)
        blocks.append(torch.block_diag(*parts, torch.eye(tail, dtype=A.dtype)))
    leftover = spec.d - spec.n_blocks * spec.block_size
    return torch.block_diag(*blocks, torch.eye(leftover, dtype=torch.float64))


def trainable_names(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, cloned: compare before/after to prove a model is unchanged."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(model: nn.Module, snap: dict[str, torch.Tensor]) -> bool:
    now = model.state_dict()
    return set(now) == set(snap) and all(torch.equal(now[k], snap[k]) for k in snap)
