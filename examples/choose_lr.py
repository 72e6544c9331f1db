"""Choose a ``quicq train`` config's learning rates on its validation split, never on test.

Each (lr, head_lr) pair trains the config's adapter with exact engine gradients (no backend: a
hybrid config's shots would only add noise to the choice and cost a QPU budget) for the config's
steps and schedule, and is scored on the validation split that ``[task]`` carves from the
training data. The pair with the best validation accuracy is reported; test accuracy is not even
computed. Writes a JSON with every run, the choice, and the command and machine that made it.

    python examples/choose_lr.py examples/hybrid_minilm.toml --lr 0.01,0.03,0.1 --head-lr 0.03 \\
        --out results/hybrid_minilm_lr.json
    python examples/choose_lr.py examples/hybrid_minilm.toml --lr 0.03 --head-lr 0.002 \\
        --out results/hybrid_minilm_lr.json        # appends to the same file; the choice is redone
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

from quicq.errors import QuicqError
from quicq.training.atomic import atomic_write_text
from quicq.training.config import load_config
from quicq.training.run import environment, run_config


def _floats(text: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals or any(not v > 0 for v in vals):
        raise argparse.ArgumentTypeError(f"learning rates must be > 0, got {text!r}")
    return vals


def validation_run(cfg: dict[str, Any], lr: float, head_lr: float, out: Path) -> dict[str, Any]:
    """Train ``cfg`` with exact gradients at (lr, head_lr) into ``out``; return validation accuracy."""
    c = copy.deepcopy(cfg)
    c["backend"]["name"] = "exact"
    c["mitigation"] = {}
    c["train"].update(gradient="exact", lr=lr, head_lr=head_lr, out=str(out), plot=False,
                      checkpoint_every=max(1, c["train"]["steps"]))
    c["eval"] = {"validation": True, "exact": False, "estimated": False, "raw": False}
    s = run_config(c)
    return {"lr": lr, "head_lr": head_lr, "val_acc": s["validation_accuracy_exact_blocks"],
            "final_loss": s["final_loss"], "steps": s["steps"], "seconds": round(s["seconds"], 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path)
    p.add_argument("--lr", type=_floats, required=True, help="adapter learning rates (comma-separated)")
    p.add_argument("--head-lr", type=_floats, required=True, help="head learning rates (comma-separated)")
    p.add_argument("--out", type=Path, required=True, help="result JSON (runs already in it are kept)")
    p.add_argument("--work", type=Path, default=Path("out/choose_lr"), help="checkpoints of the runs")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config)
        old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    except (QuicqError, json.JSONDecodeError, OSError) as exc:  # a bad config or result file: say which
        p.error(f"{exc}" if isinstance(exc, QuicqError) else f"cannot read {args.out}: {exc}")
    runs = [r for r in old.get("runs", []) if old.get("config") == str(args.config)]
    done = {(r["lr"], r["head_lr"]) for r in runs}
    for head_lr in args.head_lr:
        for lr in args.lr:
            if (lr, head_lr) in done:
                continue
            rec = validation_run(cfg, lr, head_lr, args.work / f"lr{lr:g}_head{head_lr:g}")
            print(json.dumps(rec), flush=True)
            runs.append(rec | {"environment": environment()})
            best = max(runs, key=lambda r: r["val_acc"])
            doc = {"config": str(args.config), "protocol": "exact gradients, the config's steps and schedule; "
                   "chosen on validation accuracy (the test split is not evaluated)",
                   "runs": runs, "chosen": {"lr": best["lr"], "head_lr": best["head_lr"], "val_acc": best["val_acc"]},
                   **environment()}
            args.out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
    best = max(runs, key=lambda r: r["val_acc"])
    print(f"chosen on validation: lr {best['lr']:g}, head_lr {best['head_lr']:g} (val {best['val_acc']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
