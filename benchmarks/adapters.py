"""Training-step time and peak memory of PEFT methods, as ratios to LoRA r=8 measured in the same run.

Workloads: all-MiniLM-L6-v2 (q/v), random-weight 2-layer BERT encoders at width 768 and 1024
(batch 8 × 128 tokens; q/v and all-linear) and the digits CNN. Methods: LoRA r=8 (the
reference), peft OFT and BOFT, QuIC for every parameterization in
``quicq.adapters.config.QUIC_PARAMETERIZATIONS`` with orders {1,2} (one block) and first order
(blocks of 32), Quantum-PEFT (K = 8, L = 1). Plus component timings (``_adapter_micro``): the
QuIC block computation against the frozen layer (n = 38, 1024 tokens), ``pauli_columns``
(N = 768, K = 8), the engine against ``torch.nn.utils.parametrizations.orthogonal`` and ffsim.

How (see ``_bench`` for why):

* one process per run, torch and BLAS pinned to ``--threads`` (1); flush-to-zero left alone;
* per workload every method gets its own copy of the model sharing the frozen tensors, warms up
  (``--warmup`` steps, AdamW at ``--lr``, so parameters have moved off the start point as in
  training), then ``--repeats`` round-robin rounds, order rotated each round; a round times
  enough back-to-back steps to last ~``--round-ms``;
* step = zero_grad, forward, backward, AdamW step. Ratios to LoRA are per round (paired), then
  the median, with min and IQR;
* peak memory = trainable parameters + optimizer state + the peak of the CPU allocator during one
  step above its start (from profiler memory events). The frozen model, shared by all methods,
  is reported separately; goals use the peak without it (the stricter ratio).

    python benchmarks/adapters.py                 # full run (~15 min on one core); results/adapters.{json,md}
    python benchmarks/adapters.py --smoke --out out/bench   # tiny sizes, 1 repeat, < 60 s
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT / "examples"), str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

MIB = 2**20


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch / BLAS threads (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds per method (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per method first (default: %(default)s)")
    p.add_argument("--round-ms", type=float, default=300.0, help="target length of one method's round")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate of every method")
    p.add_argument("--clock", choices=("auto", "cpu", "wall"), default="auto",
                   help="process CPU time or wall time; auto = cpu with one thread (a shared machine's "
                        "other jobs then do not count), wall otherwise (both are recorded)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workloads", help="comma-separated subset of the workload names")
    p.add_argument("--methods", help="comma-separated subset of the method names (lora is always added)")
    p.add_argument("--orthogonal-sizes", default="64,128,256,512,1024",
                   help="n of the engine vs parametrizations.orthogonal comparison (default: %(default)s)")
    p.add_argument("--ffsim-sizes", default="8,16,24",
                   help="n of the engine vs ffsim comparison (ffsim builds the block one state at a time: "
                        "n = 38 costs ~2 CPU-minutes) (default: %(default)s)")
    p.add_argument("--skip-micro", action="store_true", help="only the model workloads")
    p.add_argument("--skip-models", action="store_true", help="only the component timings")
    p.add_argument("--profile", default="quic-pyramid-k12@bert1024-qv",
                   help="METHOD@WORKLOAD to profile with torch.profiler after timing ('' for none)")
    p.add_argument("--max-step-x", type=float, default=6.0,
                   help="a method whose warm-up step is slower than this × LoRA's is reported with that one "
                        "step and not timed further (keeps a full run within ~30 min on a shared machine)")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes, each running whole tasks (a workload, or the component timings); "
                        "0 = everything in this process (default with --smoke)")
    p.add_argument("--task", help=argparse.SUPPRESS)  # worker mode: run this one task
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat: a < 60 s end-to-end check")
    p.add_argument("--out", default=str(ROOT / "results"), help="folder for adapters.json / adapters.md")
    p.add_argument("--trace-dir", default=str(ROOT / "out"),
                   help="folder for the profile's operator table and chrome trace (git-ignored scratch)")
    return p


def run_workload(w: Any, methods: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    """Set up every method on ``w``, time them round-robin, measure peak memory."""
    import torch

    import _adapter_methods as am
    from _bench import calls_for, interleaved, paired_ratio, peak_cpu_bytes, summary

    t_setup = time.perf_counter()
    base = am.build_model(w, args.seed)
    batch = am.make_batch(w, args.seed)
    shared = {id(t) for t in [*base.parameters(), *base.buffers()]}
    live: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for m in methods:
        if m.groups is not None and w.group not in m.groups:
            continue  # not defined there (e.g. rank 64 on a 32-channel conv)
        try:
            torch.manual_seed(args.seed)
            model = am.apply_method(m, am.clone_sharing(base, w.head), w)
            model.train()
            params = [q for q in model.parameters() if q.requires_grad]
            if any(id(q) in shared for q in params):
                raise RuntimeError("the method made a shared frozen base tensor trainable")
            opt = torch.optim.AdamW(params, lr=args.lr)
            live[m.name] = {"method": m, "model": model, "opt": opt, "step": am.train_step(w, model, opt, batch),
                            "info": am.adapter_info(model, w.head)}
        except Exception as exc:  # recorded, the other methods still run
            errors[m.name] = f"setup: {type(exc).__name__}: {exc}"
    first: dict[str, float] = {}
    for name in list(live):  # warm-up; the last warm-up step sizes the rounds
        try:
            for _ in range(max(1, args.warmup)):
                t0 = time.process_time()
                live[name]["step"]()
            first[name] = 1000 * (time.process_time() - t0)
            print(f"    {name:>20}: warm step {first[name]:8.1f} ms CPU", flush=True)
        except Exception as exc:
            errors[name] = f"step: {type(exc).__name__}: {exc}"
            del live[name]
    if "lora" not in live:
        raise SystemExit(f"{w.name}: the LoRA reference failed: {errors.get('lora')}")
    for name in [k for k in live if first[k] > args.max_step_x * first["lora"]]:
        errors[name] = (f"not timed: its warm-up step took {first[name]:.0f} ms CPU, "
                        f"{first[name] / first['lora']:.1f}× LoRA's (> --max-step-x {args.max_step_x:g})")
        del live[name]
    setup_s = time.perf_counter() - t_setup
    calls = {k: calls_for(first["lora"], args.round_ms) for k in live}  # the same step count for all
    samples = interleaved({k: v["step"] for k, v in live.items()}, repeats=args.repeats, warmup=0, calls=calls,
                          clock=args.clock)
    for v in live.values():
        v["opt"].zero_grad(set_to_none=True)
    excursions = peak_cpu_bytes({k: v["step"] for k, v in live.items()})
    rows = []
    for name, v in live.items():
        persistent, frozen = am.state_bytes(v["model"], v["opt"])
        excursion = excursions[name]
        rows.append({"method": name, "label": v["method"].label, "family": v["method"].family,
                     "circuit": v["method"].circuit, **v["info"], "steps_per_round": calls[name],
                     "step_ms": summary(samples[name]), "time_over_lora": paired_ratio(samples, name, "lora"),
                     "step_wall_ms": summary(samples[f"{name}@wall"]),
                     "time_over_lora_wall": paired_ratio(samples, f"{name}@wall", "lora@wall"),
                     "peak_mib": (persistent + excursion) / MIB, "persistent_mib": persistent / MIB,
                     "frozen_mib": frozen / MIB})
    lora = next(r for r in rows if r["method"] == "lora")
    for r in rows:
        r["peak_over_lora"] = r["peak_mib"] / lora["peak_mib"]
        r["peak_with_frozen_over_lora"] = (r["peak_mib"] + r["frozen_mib"]) / (lora["peak_mib"] + lora["frozen_mib"])
    prof = _profile(live, args, w) if args.profile and args.profile.split("@")[-1] == w.name else None
    return {"workload": w.name, "group": w.group, "description": w.describe(), "setup_s": round(setup_s, 1),
            "time_s": round(time.perf_counter() - t_setup, 1), "rows": rows, "errors": errors,
            **({"profile": prof} if prof else {})}


def _profile(live: dict[str, dict[str, Any]], args: argparse.Namespace, w: Any) -> dict[str, Any] | None:
    """torch.profiler over 2 steps of one method: the top operators by self CPU time, by shape."""
    from torch.profiler import ProfilerActivity, profile

    name = args.profile.split("@")[0]
    if name not in live:
        return {"error": f"{name} did not run on {w.name}"}
    step = live[name]["step"]
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(2):
            step()
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    top = []
    for e in sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)[:25]:
        top.append({"op": e.key, "shapes": str(e.input_shapes)[:160], "calls": e.count // 2,
                    "self_ms_per_step": e.self_cpu_time_total / 2000, "share": e.self_cpu_time_total / total})
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30)
    out = Path(args.trace_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "adapters_profile.txt").write_text(table + "\n")
    prof.export_chrome_trace(str(out / "adapters_profile.trace.json"))
    return {"method": name, "workload": w.name, "total_ms_per_step": total / 2000, "top": top,
            "trace": str(out / "adapters_profile.trace.json")}


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def run_micro(args: argparse.Namespace) -> dict[str, Any]:
    """The component timings, at issue sizes (or tiny ones with ``--smoke``)."""
    import _adapter_micro as mi
    from quicq.adapters.config import QUIC_PARAMETERIZATIONS

    tiny = args.smoke
    kw = {"repeats": args.repeats, "warmup": max(1, min(args.warmup, 2)), "target_ms": args.round_ms / 3,
          "clock": args.clock}
    out: dict[str, Any] = {}
    steps = [
        ("blocks_vs_frozen", lambda: [mi.blocks_vs_frozen(wd, tok, list(QUIC_PARAMETERIZATIONS), lr=args.lr, **kw)
                                      for wd, tok in ([(32, 32)] if tiny else [(768, 1024)])]),
        ("pauli_columns", lambda: mi.pauli_columns_time(16 if tiny else 768, 8, 1, **kw)),
        ("orthogonal", lambda: mi.unary_vs_orthogonal([16] if tiny else _ints(args.orthogonal_sizes),
                                                      scale=1e-2, **kw)),
        ("ffsim", lambda: mi.weight2_vs_ffsim([6] if tiny else _ints(args.ffsim_sizes), **kw)),
    ]
    for key, fn in steps:
        t0 = time.perf_counter()
        try:
            out[key] = fn()
        except Exception as exc:
            out[key] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"  {key}: {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0 or args.round_ms <= 0:
        raise SystemExit("--threads and --repeats must be ≥ 1, --warmup ≥ 0, --round-ms > 0")
    if args.smoke:
        args.repeats, args.warmup, args.round_ms, args.max_step_x = 1, 1, 20.0, float("inf")
        if args.profile == build_parser().get_default("profile"):
            args.profile = "quic-pyramid-k12@bert64-qv"
    from _bench import pin_threads, run_metadata

    pin_threads(args.threads)  # BLAS variables first, then torch.set_num_threads (see _bench.py)
    import torch

    assert torch.get_num_threads() == args.threads, "threads must be pinned before timing"
    if args.clock == "auto":
        args.clock = "cpu" if args.threads == 1 else "wall"
    import _adapter_methods as am
    from _adapter_report import render

    if args.smoke and args.trace_dir == build_parser().get_default("trace_dir"):
        args.trace_dir = args.out
    meta = run_metadata("benchmarks/adapters.py", argv)
    wls = am.workloads(args.smoke)
    if args.workloads:
        want = [s.strip() for s in args.workloads.split(",") if s.strip()]
        bad = sorted(set(want) - {w.name for w in wls})
        if bad:
            raise SystemExit(f"unknown workload(s) {bad}; choose from {[w.name for w in wls]}")
        wls = [w for w in wls if w.name in want]
    methods = am.all_methods()
    if args.methods:
        want = {s.strip() for s in args.methods.split(",") if s.strip()} | {"lora"}
        bad = sorted(want - {m.name for m in methods})
        if bad:
            raise SystemExit(f"unknown method(s) {bad}; choose from {[m.name for m in methods]}")
        methods = [m for m in methods if m.name in want]
    tasks = [] if args.skip_models else [w.name for w in wls]
    if not args.skip_micro:  # the component timings come after the three q/v workloads
        tasks.insert(min(3, len(tasks)), "micro")
    if args.task:  # worker: one task, its result as JSON on the last stdout line
        part = run_micro(args) if args.task == "micro" else \
            run_workload(next(w for w in wls if w.name == args.task), methods, args)
        part.update(commit=meta["commit"], dirty=meta["dirty"])
        print("RESULT " + json.dumps(part))
        return 0
    t0 = time.perf_counter()
    result: dict[str, Any] = {**meta, "settings": vars(args), "workloads": [], "micro": {}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    order = {name: i for i, name in enumerate(tasks)}

    def record(task: str, part: dict[str, Any]) -> None:
        """Merge one task's result and rewrite both files (a long run leaves partial results)."""
        if task == "micro":
            result["micro"] = part
        else:
            result["workloads"] = sorted([*result["workloads"], part], key=lambda r: order[r["workload"]])
        result["load_average_end"] = list(os.getloadavg())
        result["wall_s"] = round(time.perf_counter() - t0, 1)
        result["done"] = sorted(set(result.get("done", [])) | {task}, key=order.get)
        (out / "adapters.json").write_text(json.dumps(result, indent=1) + "\n")
        (out / "adapters.md").write_text(render(result))
        print(f"[{result['wall_s']:7.1f} s] {task} done", flush=True)

    jobs = 0 if args.smoke and "--jobs" not in argv else args.jobs
    if jobs <= 0:
        for task in tasks:
            print(f"{task} …", flush=True)
            record(task, run_micro(args) if task == "micro" else
                   run_workload(next(w for w in wls if w.name == task), methods, args))
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {t: pool.submit(_run_task, t, argv, Path(args.trace_dir)) for t in tasks}
            for t in tasks:  # record in priority order as they finish
                record(t, futures[t].result())
    md = render(result)
    print(md)
    print(f"wrote {out / 'adapters.json'} and {out / 'adapters.md'} in {result['wall_s']} s")
    return 0


def _run_task(task: str, argv: list[str], log_dir: Path) -> dict[str, Any]:
    """Run one task in a fresh worker process (its log in ``log_dir``) and parse its result."""
    import subprocess

    log_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--task", task]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    (log_dir / f"adapters_{task}.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-5:]
        how = f"stopped by signal {-proc.returncode}" if proc.returncode < 0 else f"exited {proc.returncode}"
        err = f"worker {how}: {' | '.join(tail)}"
        return {"error": err} if task == "micro" else {"workload": task, "error": err, "rows": [], "errors": {},
                                                       "group": "", "description": "", "time_s": 0}
    return json.loads(lines[-1][len("RESULT "):])


if __name__ == "__main__":
    raise SystemExit(main())
