"""Tasks as the recipe sees them: a fresh model per run, training batches, a loss, evaluation.

A :class:`Workload` wraps one :mod:`quicq.tasks` data set and model with the recipe defaults
of that task (steps, batch size, head lr, adapter targets). ``benchmarks/accuracy.py`` and the
examples build their runs from these, so they share data, model and recipe.

* ``digits`` — the :class:`quicq.tasks.DigitsCNN` pretrained on digits 0–4 (seed 0, fixed for
  every run), adapted to 5–9; adapters on ``conv2``, ``fc1``, ``fc2``.
* ``text`` — MiniLM-L6 on the Rotten Tomatoes snippets; adapters on the attention ``query`` and
  ``value`` projections, trained classifier.
* ``csv:PATH`` — MiniLM on a user CSV (``text`` / ``label`` columns unless told otherwise).

``evaluate(model, "val" | "test")`` returns (accuracy, mean cross-entropy).
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from common import Recipe, cycle_batches


@dataclass(frozen=True)
class TaskSettings:
    """Everything that defines a task's data and recipe; part of every result key."""

    task: str
    steps: int
    batch_size: int
    head_lr: float
    train_size: int = 0  # 0: all
    val_size: int = 0  # 0: the task's default
    test_size: int = 0  # 0: all
    seq_len: int = 64
    pretrain_epochs: int = 8
    text_column: str = "text"
    label_column: str = "label"

    def fingerprint(self) -> str:
        data = asdict(self)
        if self.task.startswith("csv:"):
            data["csv_sha256"] = hashlib.sha256(Path(self.task[4:]).read_bytes()).hexdigest()
        return hashlib.sha256(repr(sorted(data.items())).encode()).hexdigest()[:12]

    @property
    def recipe(self) -> Recipe:
        return Recipe(self.steps, self.batch_size, self.head_lr)


#: Recipe defaults per task family (the issue's MiniLM recipe: 250 steps of batch 16). The text
#: head lr 3e-2 was chosen on validation (results/head_lr_pilot: every method gained over 2e-3,
#: LoRA 0.799 vs 0.793 val, the QuIC pyramid 0.778 vs 0.774).
DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"steps": 300, "batch_size": 32, "head_lr": 1e-2},
    "text": {"steps": 250, "batch_size": 16, "head_lr": 3e-2},
}
TARGETS = {"digits": ("conv2", "fc1", "fc2"), "text": ("query", "value")}
HEADS = {"digits": ("head",), "text": ("classifier",)}


def family(task: str) -> str:
    """``digits`` or ``text`` (a CSV task is a text task)."""
    if task == "digits":
        return "digits"
    if task == "text" or task.startswith("csv:"):
        return "text"
    raise SystemExit(f"unknown task {task!r}: use digits, text or csv:PATH")


class Workload:
    """One task's data and base model, loaded once per process and reused by every run."""

    def __init__(self, settings: TaskSettings) -> None:
        self.settings = settings
        self.family = family(settings.task)
        self.targets = TARGETS[self.family]
        self.head = HEADS[self.family]
        if self.family == "digits":
            self._init_digits()
        else:
            self._init_text()

    # -- digits
    def _init_digits(self) -> None:
        from quicq.tasks import digits_split, pretrain_digits_cnn

        s = self.settings
        split = digits_split(seed=0)
        if s.train_size:
            split = split.subset_train(s.train_size)
        self.split = split
        self.n_train = len(split.x_train)
        self.sizes = {"train": len(split.x_train), "val": len(split.x_val), "test": len(split.x_test)}
        self._base = pretrain_digits_cnn(seed=0, epochs=s.pretrain_epochs)

    # -- text
    def _init_text(self) -> None:
        from quicq.tasks import csv_texts, load_minilm_classifier, rotten_tomatoes

        s = self.settings
        kw: dict[str, Any] = {"seed": 0, "train_size": s.train_size or None, "test_size": s.test_size or None}
        if s.val_size:
            kw["val_size"] = s.val_size
        if s.task == "text":
            self.data = rotten_tomatoes(**kw)
        else:
            self.data = csv_texts(s.task[4:], s.text_column, s.label_column, **kw)
        self.tokenizer, _ = load_minilm_classifier(num_labels=self.data.num_labels)
        self.n_train = len(self.data.train_texts)
        self.sizes = {"train": self.n_train, "val": len(self.data.val_texts), "test": len(self.data.test_texts)}
        self._train_y = torch.tensor(self.data.train_labels)
        self._eval = {part: self._encode_all(getattr(self.data, f"{part}_texts"), getattr(self.data, f"{part}_labels"))
                      for part in ("val", "test")}

    def _encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return dict(self.tokenizer(texts, padding="longest", truncation=True, max_length=self.settings.seq_len,
                                   return_tensors="pt"))

    def _encode_all(self, texts: list[str], labels: list[int], bs: int = 128) -> list[tuple[dict, torch.Tensor]]:
        # sorted by length so padding is small; accuracy does not depend on the order
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        return [(self._encode([texts[i] for i in order[j:j + bs]]), torch.tensor([labels[i] for i in order[j:j + bs]]))
                for j in range(0, len(order), bs)]

    # -- the interface the recipe uses
    def fresh_model(self, seed: int) -> nn.Module:
        """The base model with a fresh head seeded by ``seed`` (the body is the same for every run)."""
        if self.family == "digits":
            model = copy.deepcopy(self._base)
            torch.manual_seed(seed)
            model.head.reset_parameters()
            return model
        from quicq.tasks import load_minilm_classifier

        return load_minilm_classifier(num_labels=self.data.num_labels, seed=seed)[1]

    def batches(self, seed: int) -> Iterator[Any]:
        """Seeded training batches, prepared outside the timed step."""
        for idx in cycle_batches(self.n_train, self.settings.batch_size, seed):
            if self.family == "digits":
                yield self.split.x_train[idx], self.split.y_train[idx]
            else:
                yield self._encode([self.data.train_texts[i] for i in idx.tolist()]), self._train_y[idx]

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        out = model(x) if self.family == "digits" else model(**x).logits
        return nn.functional.cross_entropy(out, y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, part: str) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) on ``part`` ("val" or "test"), in eval mode."""
        if part not in ("val", "test"):
            raise ValueError(f"part must be 'val' or 'test', got {part!r}")
        model.eval()
        if self.family == "digits":
            x, y = getattr(self.split, f"x_{part}"), getattr(self.split, f"y_{part}")
            if len(y) == 0:
                return float("nan"), float("nan")
            logits = model(x)
            return float((logits.argmax(-1) == y).float().mean()), float(nn.functional.cross_entropy(logits, y))
        correct, loss, n = 0, 0.0, 0
        for enc, y in self._eval[part]:
            logits = model(**enc).logits
            correct += int((logits.argmax(-1) == y).sum())
            loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            n += len(y)
        return (correct / n, loss / n) if n else (float("nan"), float("nan"))


def run_method(wl: Workload, method: str, settings: dict[str, Any], lr: float, seed: int, *,
               recipe: Recipe | None = None, progress: bool = False) -> dict[str, Any]:
    """Set up ``method`` on a fresh model, train it with the recipe at ``lr``, evaluate val and test.

    For ``head`` the lr is the head's own. A diverged run returns ``error`` and no accuracies.
    """
    from common import ExampleError, build_method, param_summary, train
    from methods import METHOD_SPECS

    spec = METHOD_SPECS[method]
    recipe = recipe or wl.settings.recipe
    if spec.kind == "head":
        recipe = replace(recipe, head_lr=lr)
    torch.manual_seed(seed)
    model = build_method(wl.fresh_model(seed), spec, settings, targets=wl.targets, head=wl.head)
    out: dict[str, Any] = {"method": method, "label": spec.label, "kind": spec.kind, "lr": lr, "seed": seed,
                           "steps": recipe.steps, "params": param_summary(model, wl.head, spec.effective),
                           "threads": torch.get_num_threads(), "sizes": wl.sizes}
    try:
        stats = train(model, recipe, lr, head=wl.head, batches=wl.batches(seed), loss_fn=wl.loss,
                      lr_groups=spec.lr_groups, desc=f"{method} lr={lr:g} seed={seed}", progress=progress,
                      threads=torch.get_num_threads())  # the entry point's --threads pin
    except ExampleError as exc:  # this lr is too large: a result, not a crash
        out.update(error=str(exc), val_acc=None, val_loss=None, test_acc=None, test_loss=None, step_ms=math.nan,
                   train_s=math.nan, final_train_loss=None)
        return out
    val_acc, val_loss = wl.evaluate(model, "val")
    test_acc, test_loss = wl.evaluate(model, "test")
    out.update(val_acc=val_acc, val_loss=val_loss, test_acc=test_acc, test_loss=test_loss, step_ms=stats.step_ms,
               train_s=stats.train_s, final_train_loss=stats.final_loss)
    return out


# ----------------------------------------------------------------------------- the examples' driver


def _harness_lrs(path: Path, task: str, settings: TaskSettings, per_method: dict[str, dict[str, Any]]) -> dict[str, float]:
    """lrs the accuracy harness chose on validation, where its task and method settings equal ours."""
    import json

    if not path.is_file():
        return {}
    summary = json.loads(path.read_text()).get("summaries", {}).get(task)
    if not summary or summary.get("task_fp") != settings.fingerprint():
        return {}
    out = {}
    for row in summary["methods"]:
        m = row["method"]
        if m in per_method and row.get("lr_chosen") and _jsonable(row.get("settings")) == _jsonable(per_method[m]):
            out[m] = float(row["lr_chosen"])
    return out


def _jsonable(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj, default=list))


def example_main(task: str, doc: str, default_methods: tuple[str, ...], argv: list[str] | None = None) -> int:
    """Command line of ``finetune_digits.py`` / ``finetune_text.py``: run methods with the recipe,
    report validation and test accuracy; nothing is chosen on test."""
    import argparse
    import datetime as dt
    import json
    import os
    import platform
    import subprocess

    from common import add_method_args, learning_rates, method_settings, parse_methods, split_list

    fam = family(task)
    root = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = DEFAULTS[fam]
    p.add_argument("--steps", type=int, default=d["steps"], help="training steps per method (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--train-size", type=int, default=0, help="use at most this many training examples (0: all)")
    p.add_argument("--val-size", type=int, default=0, help="validation examples (text; 0: 1,000)")
    p.add_argument("--test-size", type=int, default=0, help="test examples (text; 0: all)")
    p.add_argument("--seq-len", type=int, default=64, help="max tokens per text (default: %(default)s)")
    p.add_argument("--pretrain-epochs", type=int, default=8, help="digits: CNN pretraining epochs on 0–4")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", default=str(root / "results" / "accuracy.json"),
                   help="harness results whose validation-chosen lrs are used ('' for none; default: %(default)s)")
    p.add_argument("--out", default="out", help="output directory (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_method_args(p, default_methods=default_methods, targets=TARGETS[fam], head=HEADS[fam])
    args = p.parse_args(argv)
    methods = parse_methods(args.methods)
    if args.threads < 1:
        raise SystemExit("--threads must be ≥ 1")
    torch.set_num_threads(args.threads)
    from quicq.tasks import DataUnavailable, TaskError

    settings = TaskSettings(task, args.steps, args.batch_size, args.head_lr or d["head_lr"], args.train_size,
                            args.val_size, args.test_size, args.seq_len, args.pretrain_epochs)
    try:
        recipe = settings.recipe
        wl = Workload(settings)
    except (DataUnavailable, TaskError) as exc:
        raise SystemExit(str(exc)) from exc
    if split_list(args.targets) != list(wl.targets) or split_list(args.head_modules) != list(wl.head):
        wl.targets, wl.head = tuple(split_list(args.targets)), tuple(split_list(args.head_modules))
    per_method = {m: method_settings(m, fam, args) for m in methods}
    chosen = _harness_lrs(Path(args.results), task, settings, per_method) if args.results else {}
    lrs = learning_rates(args, fam, chosen)
    print(f"{task}: {wl.sizes['train']} train / {wl.sizes['val']} val / {wl.sizes['test']} test; {recipe.steps} steps "
          f"of batch {recipe.batch_size}, warmup {recipe.warmup_steps} + cosine; {torch.get_num_threads()} thread(s)")
    rows = []
    for m in methods:
        source = "--lr" if any(i.startswith(f"{m}=") for i in args.lr) else ("harness (val)" if m in chosen else "grid middle")
        r = run_method(wl, m, per_method[m], lrs[m], args.seed, recipe=recipe,
                       progress=not args.no_progress and os.isatty(2))
        r.update(lr_source=source, settings=per_method[m])
        rows.append(r)
        acc = "diverged" if r.get("error") else f"val {r['val_acc']:.4f}, test {r['test_acc']:.4f}"
        print(f"{m:>15}: {acc}, lr {r['lr']:g} ({source}), {r['params']['adapter_stored']:,} adapter params, "
              f"{r['step_ms']:.1f} ms/step", flush=True)
    lines = ["| method | lr | val acc | test acc | adapter params | step ms |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['lr']:g} | {r['val_acc'] if r['val_acc'] is None else round(r['val_acc'], 4)} "
                     f"| {r['test_acc'] if r['test_acc'] is None else round(r['test_acc'], 4)} | "
                     f"{r['params']['adapter_stored']:,} | {r['step_ms']:.1f} |")
    table = "\n".join(lines)
    print("\n" + table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    meta = {"command": " ".join(["python", f"examples/finetune_{fam}.py", *(argv if argv is not None else
                                                                         __import__("sys").argv[1:])]),
            "commit": commit, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "loadavg": list(os.getloadavg()),
            "python": platform.python_version(), "torch": torch.__version__}
    name = "digits" if fam == "digits" else "text"
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "settings": asdict(settings), "results": rows},
                                                 indent=1, default=list) + "\n")
    (out / f"{name}.md").write_text(f"# {name}\n\n`{meta['command']}`\n\n{table}\n")
    print(f"\nwrote {out / (name + '.json')} and {out / (name + '.md')}")
    return 0
