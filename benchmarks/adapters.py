"""Train-step time and peak memory of each PEFT method on MiniLM (CPU), as ratios to LoRA r=8.

Every method is measured in a fresh subprocess (``--worker``), so each one starts from the same
empty process and the peak memory of one cannot hide in another's high-water mark:

* **time**: median wall time of a training step (forward, backward, AdamW step) over
  ``--steps`` steps after ``--warmup`` steps, batch ``--batch-size`` × ``--seq-len`` tokens
  (random token ids, every position attended: the cost does not depend on the text).
  With ``--repeats R`` the methods are run R times, interleaved, and the fastest median is kept,
  which damps noise from other load on the machine.
* **memory**: ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the process's peak resident set
  size. Reported as *peak RSS* (whole process: interpreter, torch, the 90 MB model, training)
  and as *train Δ*: peak RSS minus the resident size right after the model and adapter were set
  up, i.e. what the training steps added (activations kept for backward, gradients, optimizer
  state, the adapters' temporaries). CPU torch has no allocator peak counter, and the RSS high
  water mark is what the OS actually had to provide.

    python benchmarks/adapters.py                   # full run, a few minutes
    python benchmarks/adapters.py --quick           # CI smoke test: tiny model, in-process, seconds

The ``head`` method (frozen model, only the classifier trains) gives the cost of the base model
itself; *overhead* = a method's step time minus that: what the adapter adds, plus the backward
pass through frozen layers that any adapter needs and head-only training skips.

Goals (printed as ok / MISS): QuIC step time ≤ 1.10× LoRA and ≤ 0.5× OFT and BOFT; QuIC peak
memory ≤ LoRA + 5%.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

DEFAULT_METHODS = ("head", "lora", "oft", "boft", "quic-pyramid", "quic-butterfly", "quic-cayley", "qpeft")


def _rss_now_kib() -> int:
    """Current resident set size in KiB (Linux /proc; falls back to the high-water mark)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def build_model(tiny: bool, seed: int) -> Any:
    """MiniLM-L6 with a fresh 2-way classifier, or (``tiny``) a random 2-layer BERT of width 64."""
    import torch

    if tiny:
        from transformers import BertConfig, BertForSequenceClassification

        torch.manual_seed(seed)
        cfg = BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=128, num_labels=2)
        return BertForSequenceClassification(cfg)
    from quicq.tasks import load_minilm_classifier

    return load_minilm_classifier(seed=seed)[1]


def measure(method: str, args: argparse.Namespace) -> dict[str, Any]:
    """Set up ``method`` and time ``args.steps`` training steps; returns times and memory."""
    import torch
    from common import apply_method, learning_rates, param_counts

    torch.manual_seed(args.seed)
    model = apply_method(build_model(args.tiny, args.seed), method, args)
    model.train()
    trainable, head_n = param_counts(model, ["classifier"])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=learning_rates(args)[method] or 1e-3)
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(1000 if vocab > 2000 else 1, vocab, (args.batch_size, args.seq_len), generator=gen)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (args.batch_size,), generator=gen)
    rss_setup = _rss_now_kib()
    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"method": method, "step_ms": 1000 * statistics.median(times), "step_ms_all": [1000 * t for t in times],
            "peak_rss_mib": peak / 1024, "train_delta_mib": max(peak - rss_setup, 0) / 1024,
            "adapter_params": trainable - head_n, "threads": torch.get_num_threads()}


def run_worker(method: str, argv: list[str]) -> dict[str, Any]:
    """Measure ``method`` in a fresh interpreter and parse its JSON line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker for {method} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def report(results: list[dict[str, Any]], note: str) -> str:
    """Markdown table of absolute numbers and ratios to LoRA, plus the goal checks."""
    by = {r["method"]: r for r in results}
    lora = by.get("lora")
    head = by.get("head")
    lines = [f"MiniLM train step, {note}", "",
             "| method | adapter params | step ms | overhead ms | peak RSS MiB | train Δ MiB | time / LoRA "
             "| overhead / LoRA | peak / LoRA | Δ / LoRA |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def overhead(r: dict[str, Any]) -> float | None:
        return r["step_ms"] - head["step_ms"] if head else None

    for r in results:
        ov = overhead(r)
        ov_s = f"{ov:.1f}" if ov is not None else "–"
        if lora and lora["train_delta_mib"]:
            lov = overhead(lora)
            ov_ratio = f"{ov / lov:.2f}×" if ov is not None and lov and lov > 0 else "–"
            ratios = (f"{r['step_ms'] / lora['step_ms']:.2f}× | {ov_ratio} | "
                      f"{r['peak_rss_mib'] / lora['peak_rss_mib']:.3f}× | {r['train_delta_mib'] / lora['train_delta_mib']:.2f}×")
        else:
            ratios = "– | – | – | –"
        lines.append(f"| {r['method']} | {r['adapter_params']:,} | {r['step_ms']:.1f} | {ov_s} | {r['peak_rss_mib']:.0f} | "
                     f"{r['train_delta_mib']:.0f} | {ratios} |")
    if head:
        lines += ["", "overhead = step time − the `head` step (frozen MiniLM, only the classifier trains). It includes "
                  "the backward pass through the frozen layers that every adapter needs (head-only skips it), "
                  "so it is an upper bound on the adapter's own cost, and a difference of two noisy timings: "
                  "read it with the spread of `step_ms_all` in the JSON."]
    if lora:
        lines += ["", "| goal | method | measured | verdict |", "|---|---|---:|---|"]
        for r in results:
            if not r["method"].startswith("quic-"):
                continue
            checks = [("time ≤ 1.10× LoRA", r["step_ms"] / lora["step_ms"], 1.10),
                      ("peak RSS ≤ LoRA + 5%", r["peak_rss_mib"] / lora["peak_rss_mib"], 1.05)]
            for other in ("oft", "boft"):
                if other in by:
                    checks.append((f"time ≤ 0.5× {other.upper()}", r["step_ms"] / by[other]["step_ms"], 0.5))
                    ov, ov_other = overhead(r), overhead(by[other])
                    if ov is not None and ov_other is not None and ov_other > 0:
                        checks.append((f"overhead ≤ 0.5× {other.upper()}'s", max(ov, 0.0) / ov_other, 0.5))
            for goal, value, limit in checks:
                lines.append(f"| {goal} | {r['method']} | {value:.2f}× | {'ok' if value <= limit else 'MISS'} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from common import add_method_args

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="timed steps per method (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the fastest median is kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="smoke test: tiny random BERT, 2 steps, batch 4 × 16 tokens, all methods in this process")
    p.add_argument("--in-process", action="store_true", help="no subprocesses (memory numbers then overlap)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--json", help="also write the results as JSON to this path")
    add_method_args(p, default_methods=DEFAULT_METHODS, targets=("query", "value"), head=("classifier",))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = build_parser()
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.batch_size, args.seq_len, args.repeats = 2, 1, 4, 16, 1
        args.tiny = args.in_process = True
        args.oft_block_size, args.boft_block_size = 16, 4
    if min(args.steps, args.batch_size, args.seq_len, args.repeats) < 1 or args.warmup < 0:
        raise SystemExit("--steps, --batch-size, --seq-len, --repeats must be ≥ 1 and --warmup ≥ 0")
    if args.worker:
        print(json.dumps(measure(args.worker, args)))
        return 0
    from common import parse_methods

    methods = parse_methods(args.methods)
    if "lora" not in methods:
        methods.insert(0, "lora")  # the reference
    fwd = [a for a in argv if a != "--json" and not a.startswith("--json=")]
    if "--json" in argv:  # the parent writes the JSON, not the workers
        i = argv.index("--json")
        fwd = argv[:i] + argv[i + 2:]
    best: dict[str, dict[str, Any]] = {}
    for rnd in range(args.repeats):
        for m in methods:
            r = measure(m, args) if args.in_process else run_worker(m, fwd)
            print(f"round {rnd + 1}/{args.repeats} {m:>15}: {r['step_ms']:8.1f} ms/step, peak {r['peak_rss_mib']:.0f} MiB, "
                  f"train Δ {r['train_delta_mib']:.0f} MiB", flush=True)
            if m not in best or r["step_ms"] < best[m]["step_ms"]:
                keep = dict(r)
                if m in best:  # memory: the smallest peak seen (same work, less noise)
                    keep["peak_rss_mib"] = min(r["peak_rss_mib"], best[m]["peak_rss_mib"])
                    keep["train_delta_mib"] = min(r["train_delta_mib"], best[m]["train_delta_mib"])
                best[m] = keep
    results = [best[m] for m in methods]
    model = "tiny random BERT (--quick)" if args.tiny else "all-MiniLM-L6-v2"
    note = (f"{model}, batch {args.batch_size} × {args.seq_len} tokens, targets {args.targets}, "
            f"{results[0]['threads']} threads, median of {args.steps} steps, best of {args.repeats}"
            f"{', in one process' if args.in_process else ', one fresh process per method'}")
    print()
    print(report(results, note))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"note": note, "results": results}, indent=2) + "\n")
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
