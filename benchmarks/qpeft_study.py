"""Quantum-PEFT study on MiniLM / Rotten Tomatoes: what makes it learn (start, lrs, capacity).

One recipe for every run: torch pinned to one thread, AdamW (no weight decay), cosine schedule
with 6% linear warmup, 250 steps of batch 16, sequences ≤ 64 tokens, classifier head trained
at 2e-3. Adapters on the query/value projections of all 6 layers, the classifier trained too
(``modules_to_save=["classifier"]``). A validation split of 1,000 snippets is carved from the
training data; every choice (start rule, lrs, rank, layers, register) is made on validation
accuracy by the code below, stage after stage. Test accuracy is evaluated only for the chosen
settings and the head-only / LoRA r=8 references, from the trainable state saved at the end of
each run (``out/qpeft_study/``, scratch). One seed: differences under ~2 points are noise. The
study is deliberately small (15 runs): on the shared 2-core machine one run took 7–15 min.

    python benchmarks/qpeft_study.py                  # the full study (15 runs, 2 workers)
    python benchmarks/qpeft_study.py --smoke          # 3 tiny runs, seconds

Resumes from ``--json`` (default results/qpeft_study.json): finished runs are not repeated.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT))

from quicq.tasks.text import load_minilm_classifier, rotten_tomatoes  # noqa: E402

import quicq.adapters.quantum_peft as qlayer  # noqa: E402  (the study swaps its circuit builder)
from quicq.adapters import QuantumPEFTConfig, get_quicq_model  # noqa: E402
from quicq.circuits.pauli import pauli  # noqa: E402
from quicq.engine.pauli_init import participation_ratio, pauli_start_angles  # noqa: E402

LORA_R8_PARAMS = 73_728  # 12 modules × 8 × (384 + 384)


@dataclass(frozen=True)
class Run:
    """One training run's settings (method "head", "lora" or "qpeft")."""

    method: str
    lr: float = 0.0  # lora lr
    lr_theta: float = 0.0
    lr_lambda: float = 0.0
    init: str = "zero"
    rank: int = 8
    n_layers: int = 1
    scale: float = 1.0
    register: str = "chain"
    seed: int = 0

    @property
    def key(self) -> str:
        if self.method == "head":
            return f"head/s{self.seed}"
        if self.method == "lora":
            return f"lora/lr{self.lr:g}/s{self.seed}"
        return (f"qpeft/{self.init}/th{self.lr_theta:g}/la{self.lr_lambda:g}/K{self.rank}/L{self.n_layers}"
                f"/sc{self.scale:g}/{self.register}/s{self.seed}")


def cosine_warmup(steps: int, warmup: float = 0.06):
    w = max(1, round(steps * warmup))

    def f(i: int) -> float:
        if i < w:
            return (i + 1) / w
        return 0.5 * (1 + math.cos(math.pi * (i - w) / max(1, steps - w)))

    return f


class Task:
    """Tokenised RT splits (train / val carved from train / test) and the MiniLM tokenizer."""

    def __init__(self, n_val: int, n_test: int, seq_len: int, train_size: int | None = None) -> None:
        data = rotten_tomatoes(seed=0, test_size=n_test)
        tr_x, tr_y = data.train_texts, data.train_labels
        self.val_x, self.val_y = tr_x[-n_val:], tr_y[-n_val:]
        self.train_x, self.train_y = tr_x[:-n_val], tr_y[:-n_val]
        if train_size:
            self.train_x, self.train_y = self.train_x[:train_size], self.train_y[:train_size]
        self.test_x, self.test_y = data.test_texts, data.test_labels
        self.tokenizer, _ = load_minilm_classifier(seed=0)
        self.seq_len = seq_len
        self.train_tok = self.tokenizer(self.train_x, truncation=True, max_length=seq_len)["input_ids"]
        self.val_batches = self._eval_batches(self.val_x, self.val_y)
        self.test_batches = self._eval_batches(self.test_x, self.test_y)

    def _pad(self, ids: list[list[int]]) -> dict[str, torch.Tensor]:
        n = max(len(t) for t in ids)
        x = torch.zeros(len(ids), n, dtype=torch.long)
        mask = torch.zeros(len(ids), n, dtype=torch.long)
        for i, t in enumerate(ids):
            x[i, : len(t)] = torch.tensor(t)
            mask[i, : len(t)] = 1
        return {"input_ids": x, "attention_mask": mask, "token_type_ids": torch.zeros_like(x)}

    def _eval_batches(self, texts, labels, bs: int = 128):
        ids = self.tokenizer(texts, truncation=True, max_length=self.seq_len)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # length-sorted: little padding
        return [(self._pad([ids[i] for i in order[j:j + bs]]), torch.tensor([labels[i] for i in order[j:j + bs]]))
                for j in range(0, len(order), bs)]

    def batch(self, idx: torch.Tensor):
        return self._pad([self.train_tok[i] for i in idx.tolist()]), torch.tensor([self.train_y[i] for i in idx.tolist()])

    @staticmethod
    def accuracy(model: nn.Module, batches) -> float:
        model.eval()
        with torch.no_grad():
            hits = sum(int((model(**b).logits.argmax(-1) == y).sum()) for b, y in batches)
        return hits / sum(len(y) for _, y in batches)


@functools.lru_cache(maxsize=None)
def _circuit(N: int, n_layers: int, register: str):
    return pauli(N, n_layers, register)


def build(run: Run):
    """(model, param groups, adapter param count) for ``run``; seeds fix the head and the angles."""
    _, model = load_minilm_classifier(seed=run.seed)
    targets, head = ["query", "value"], ["classifier"]
    if run.method == "head":
        for n, p in model.named_parameters():
            p.requires_grad_("classifier" in n)
        groups = []
    elif run.method == "lora":
        import peft
        cfg = peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets, modules_to_save=head)
        model = peft.get_peft_model(model, cfg)
        groups = [{"params": [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n],
                   "lr": run.lr, "name": "lora"}]
    else:
        # the register variant is a circuit choice; the layer builds pauli(N, L) through this hook
        qlayer._pauli_circuit = functools.partial(_circuit, register=run.register)
        cfg = QuantumPEFTConfig(target_modules=targets, modules_to_save=head, rank=run.rank,
                                n_layers=run.n_layers, scale=run.scale)
        model = get_quicq_model(model, cfg)
        gen = torch.Generator().manual_seed(1000 + run.seed)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "qpeft_theta" in n:
                    circ = _circuit(_dim_of(n, model), run.n_layers, run.register)
                    p.copy_(pauli_start_angles(circ, run.init, gen, p.dtype))
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad and "qpeft_" in n]
        groups = [{"params": [p for n, p in named if "qpeft_theta" in n], "lr": run.lr_theta, "name": "theta"},
                  {"params": [p for n, p in named if "qpeft_lambda" in n], "lr": run.lr_lambda, "name": "lambda"}]
    head_params = [p for n, p in model.named_parameters() if p.requires_grad and "classifier" in n]
    n_adapter = sum(p.numel() for g in groups for p in g["params"])
    return model, [{"params": head_params, "lr": 2e-3, "name": "head"}] + groups, n_adapter


def _dim_of(param_name: str, model: nn.Module) -> int:
    """N of the Pauli circuit behind a θ parameter (q/v of MiniLM: 384 both sides)."""
    layer = model.get_submodule(param_name.rsplit(".qpeft_theta", 1)[0])
    spec = next(iter(layer.qpeft_spec.values()))
    return spec.d_out if ".qpeft_theta_u." in param_name else spec.d_in


def start_participation(model: nn.Module, rank: int) -> float:
    """Mean participation ratio of the U/V columns at the start (diagnostic)."""
    from quicq.engine import pauli_columns
    prs = []
    for mod in model.modules():
        if hasattr(mod, "qpeft_spec") and mod.qpeft_spec:
            for which in ("u", "v"):
                prs.append(participation_ratio(pauli_columns(mod.circuit(which=which), mod.angles(which=which), rank)).mean())
    return float(torch.stack(prs).mean()) if prs else float("nan")


def train(run: Run, task: Task, steps: int, batch: int, state_dir: Path) -> dict:
    model, groups, n_adapter = build(run)
    pr = start_participation(model, run.rank) if run.method == "qpeft" else None
    opt = torch.optim.AdamW([{k: v for k, v in g.items() if k != "name"} for g in groups], weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_warmup(steps))
    gen = torch.Generator().manual_seed(run.seed)
    n = len(task.train_tok)
    perm, pos = torch.randperm(n, generator=gen), 0
    model.train()
    losses, times = [], []
    t_start = time.perf_counter()
    for _ in range(steps):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        x, y = task.batch(perm[pos:pos + batch])
        pos += batch
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(model(**x).logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            break
    train_s = time.perf_counter() - t_start
    val = Task.accuracy(model, task.val_batches) if math.isfinite(losses[-1]) else 0.0
    state_dir.mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in model.state_dict().items() if "classifier" in k or "lora_" in k or "qpeft_" in k}
    torch.save(keep, state_dir / (run.key.replace("/", "_") + ".pt"))
    times.sort()
    return {"run": asdict(run), "key": run.key, "val": val, "adapter_params": n_adapter,
            "fewer_than_lora": LORA_R8_PARAMS / n_adapter if n_adapter else None,
            "start_participation": pr, "final_loss": sum(losses[-20:]) / len(losses[-20:]),
            "step_ms": 1000 * times[len(times) // 2], "train_s": train_s}


def test_accuracy(run: Run, task: Task, state_dir: Path) -> float:
    model, _, _ = build(run)
    state = torch.load(state_dir / (run.key.replace("/", "_") + ".pt"), weights_only=True)  # tensors only, no pickle
    missing = set(state) - set(model.state_dict())
    assert not missing, missing
    model.load_state_dict(state, strict=False)
    return Task.accuracy(model, task.test_batches)


def best(results: dict, runs: list[Run]) -> Run:
    """The run with the highest validation accuracy (ties: the earlier one)."""
    return max(runs, key=lambda r: results[r.key]["val"])


_TASK: Task | None = None


def _worker_init(args_dict: dict) -> None:
    global _TASK
    torch.set_num_threads(1)
    _TASK = Task(args_dict["n_val"], args_dict["n_test"], args_dict["seq_len"])


def _worker_train(run: Run, args_dict: dict) -> dict:
    return train(run, _TASK, args_dict["steps"], args_dict["batch"], Path(args_dict["state_dir"]))


def study(args, task: Task, results: dict, save) -> dict:
    """Stage by stage; each stage's choice is made on validation accuracy only.

    A stage's runs are independent: they go to ``--workers`` processes (one torch thread each).
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    shared = {"n_val": args.n_val, "n_test": args.n_test, "seq_len": args.seq_len, "steps": args.steps,
              "batch": args.batch, "state_dir": str(args.state_dir)}
    pool = cf.ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn"),
                                  initializer=_worker_init, initargs=(shared,))

    def do(runs: list[Run]) -> list[Run]:
        todo = [r for r in dict.fromkeys(runs) if r.key not in results]
        futures = {pool.submit(_worker_train, r, shared): r for r in todo}
        for fut in cf.as_completed(futures):
            r = futures[fut]
            results[r.key] = fut.result()
            print(f"{r.key}: val {results[r.key]['val']:.4f} ({results[r.key]['train_s']:.0f} s)", flush=True)
            save()
        return runs

    choices: dict = {}
    base = Run("qpeft", lr_theta=5e-2, lr_lambda=5e-2)
    # 0 + 1. references, and the start rule at one shared lr (the best: 6e-2 for θ and λ)
    head, *loras = do([Run("head"), Run("lora", lr=1e-3), Run("lora", lr=3e-3)])
    lora = best(results, loras)
    choices["lora_lr"] = lora.lr
    inits = do([replace(base, init=i) for i in ("zero", "random", "spread")])
    cur = best(results, inits)
    choices["init"] = cur.init
    # 2. separate lrs: λ faster, θ slower (one factor at a time)
    cur = best(results, [cur] + do([replace(cur, lr_lambda=2e-1), replace(cur, lr_theta=1e-2)]))
    choices["lr_lambda"], choices["lr_theta"] = cur.lr_lambda, cur.lr_theta
    if args.stop_after == "lrs":
        return _finish(args, task, results, save, choices, {"head": head, "lora": lora, "qpeft": cur}, pool)
    # 3. capacity within ≥ 50× fewer parameters than LoRA r=8: more columns, or more layers
    cap = [replace(cur, rank=64), replace(cur, n_layers=3)]
    cur = best(results, [cur] + do([r for r in cap if _qpeft_params(r.rank, r.n_layers, r.register) * 50
                                     <= LORA_R8_PARAMS]))
    choices["rank"], choices["n_layers"] = cur.rank, cur.n_layers
    # 4. the register (full SO(3) vs the 2-angle chain), and the runner-up start at the final settings
    other = "zero" if cur.init != "zero" else "spread"
    reg, alt = do([replace(cur, register="full"), replace(cur, init=other)])
    cur = best(results, [cur, reg])
    choices["register"] = cur.register
    choices["other_start_at_final"] = {"init": other, "val": results[alt.key]["val"]}
    return _finish(args, task, results, save, choices, {"head": head, "lora": lora, "qpeft": cur}, pool)


def _finish(args, task: Task, results: dict, save, choices: dict, chosen: dict, pool) -> dict:
    """Test accuracy for the chosen settings and the references only."""
    pool.shutdown()
    tests = {}
    for name, r in chosen.items():
        if "test" not in results[r.key]:
            results[r.key]["test"] = test_accuracy(r, task, args.state_dir)
            save()
        tests[name] = {"key": r.key, "val": results[r.key]["val"], "test": results[r.key]["test"],
                       "adapter_params": results[r.key]["adapter_params"]}
    h, lo, q = (tests[k]["test"] for k in ("head", "lora", "qpeft"))
    return {"choices": choices, "chosen": {k: asdict(v) for k, v in chosen.items()}, "tests": tests,
            "qpeft_vs_lora_ratio": q / lo, "qpeft_gain_fraction": (q - h) / (lo - h) if lo != h else None,
            "qpeft_fewer_params_than_lora": LORA_R8_PARAMS / tests["qpeft"]["adapter_params"]}


def _qpeft_params(rank: int, n_layers: int, register: str) -> int:
    return 12 * (2 * _circuit(384, n_layers, register).n_params + rank)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--n-val", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--json", default=str(ROOT / "results" / "qpeft_study.json"))
    p.add_argument("--state-dir", type=Path, default=ROOT / "out" / "qpeft_study")
    p.add_argument("--workers", type=int, default=2, help="parallel training processes (default: %(default)s)")
    p.add_argument("--stop-after", choices=("lrs", "all"), default="all",
                   help="lrs: go to the test evaluation after the lr stage (a short study)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, a handful of steps (CI)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    train_size = None
    if args.smoke:
        args.steps, args.n_val, args.n_test, train_size = 3, 32, 32, 64
        if args.json == p.get_default("json"):
            args.json = str(ROOT / "out" / "qpeft_study_smoke.json")
        args.state_dir = args.state_dir.with_name("qpeft_study_smoke")
    path = Path(args.json)
    doc = json.loads(path.read_text()) if path.exists() else {}
    results = doc.get("runs", {})
    task = Task(args.n_val, args.n_test, args.seq_len, train_size)

    def save(summary=None) -> None:
        import peft
        import transformers
        meta = {"commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                         text=True).stdout.strip(),
                "command": " ".join([Path(sys.executable).name] + sys.argv),
                "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                "loadavg": os.getloadavg(), "torch": torch.__version__, "transformers": transformers.__version__,
                "peft": peft.__version__,
                "recipe": {"steps": args.steps, "batch": args.batch, "seq_len": args.seq_len, "n_val": args.n_val,
                           "n_test": args.n_test, "optimizer": "AdamW(weight_decay=0)", "schedule":
                           "cosine, 6% linear warmup", "head_lr": 2e-3, "targets": ["query", "value"],
                           "n_train": len(task.train_tok)}}
        out = {"meta": meta, "runs": results}
        if summary is not None or "summary" in doc:
            out["summary"] = summary if summary is not None else doc["summary"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1) + "\n")

    if args.smoke:
        for r in (Run("head"), Run("qpeft", lr_theta=5e-2, lr_lambda=5e-2, init="spread")):
            results[r.key] = train(r, task, args.steps, args.batch, args.state_dir)
            results[r.key]["test"] = test_accuracy(r, task, args.state_dir)
        save()
        print(json.dumps({k: (v["val"], v["test"]) for k, v in results.items()}))
        return 0
    summary = study(args, task, results, save)
    doc["summary"] = summary
    save(summary)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
