"""Measurement helpers shared by the adapter benchmarks: pinned threads, interleaved timing,
robust statistics, CPU peak memory from the allocator's own events, and run metadata.

Why these choices:

* **Threads** are pinned before torch and numpy are imported (``pin_threads`` sets the OpenMP /
  BLAS variables, then ``torch.set_num_threads``): on a shared machine a second thread mostly
  measures the neighbours.
* **Interleaving**: :func:`interleaved` runs every candidate once per round, rotating the order
  each round, so slow drift of the machine (other jobs, thermal state) lands on all of them alike;
  ratios are then taken *per round* (paired) before the median, which cancels most of the drift.
* **Peak memory** (:func:`peak_cpu_bytes`): CPU torch keeps no allocator high-water mark and
  ``tracemalloc`` does not see torch's allocations. The profiler with ``profile_memory=True``
  records every allocation and free of the CPU allocator (kernel-internal temporaries included);
  their running sum over one call is the exact peak of bytes live *above the level at its start*.
  Peak RSS of a fresh process would also see the allocator's and the interpreter's own noise and
  the frozen model, which is the same for every method and would flatten every ratio towards 1.
  Not seen: numpy temporaries (the engine's layer loop runs in numpy on CPU; they are O(n²) for
  an n-qubit block, tiny next to activations).
"""

from __future__ import annotations

import gc
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "XLA_FLAGS")


def pin_threads(n: int) -> None:
    """Pin OpenMP/BLAS (environment, before their libraries load) and torch to ``n`` threads."""
    for var in THREAD_VARS[:-1]:
        os.environ[var] = str(n)
    # jax (pulled in by ffsim) would otherwise start one compute thread per core.
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (in-process callers such as tests)
        pass


def summary(samples: list[float]) -> dict[str, Any]:
    """Median, min, quartiles and IQR of ``samples`` (kept too, for anyone who wants more)."""
    s = sorted(samples)
    if len(s) >= 2:
        q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive")
    else:
        q1 = q3 = s[0]
    return {"median": statistics.median(s), "min": s[0], "q1": q1, "q3": q3, "iqr": q3 - q1,
            "n": len(s), "samples": list(samples)}


def interleaved(fns: Mapping[str, Callable[[], object]], *, repeats: int, warmup: int,
                calls: Mapping[str, int] | int = 1, clock: str = "cpu") -> dict[str, list[float]]:
    """Per-call time (ms) of each function, measured round-robin.

    Every function first runs ``warmup`` times (not timed). Then ``repeats`` rounds: in round r
    the functions run in the order rotated by r, each ``calls[name]`` times back to back; the
    round's sample is the mean time per call. Returns name → list of ``repeats`` samples, and
    under ``"<name>@wall"`` / ``"<name>@cpu"`` the samples of both clocks.

    ``clock="cpu"`` (the default) reports process CPU time: with one thread it is the wall time
    the step would take on a core of its own, and it does not count the time the scheduler gave
    to other jobs on a shared machine (wall time does). ``clock="wall"`` reports wall time.
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    out: dict[str, list[float]] = {}
    for k in names:
        out[k], out[f"{k}@wall"], out[f"{k}@cpu"] = [], [], []
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            k = calls if isinstance(calls, int) else calls.get(name, 1)
            gc.collect()
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(k):
                fns[name]()
            wall, cpu = 1000.0 * (time.perf_counter() - w0) / k, 1000.0 * (time.process_time() - c0) / k
            out[f"{name}@wall"].append(wall)
            out[f"{name}@cpu"].append(cpu)
            out[name].append(cpu if clock == "cpu" else wall)
    return out


def calls_for(ms_per_call: float, target_ms: float, cap: int = 50) -> int:
    """How many back-to-back calls make one round last about ``target_ms``."""
    return max(1, min(cap, round(target_ms / max(ms_per_call, 1e-3))))


def paired_ratio(samples: Mapping[str, list[float]], name: str, ref: str) -> dict[str, Any]:
    """Summary of round-by-round ratios samples[name][r] / samples[ref][r]."""
    return summary([a / b for a, b in zip(samples[name], samples[ref], strict=True)])


def peak_cpu_bytes(fns: Mapping[str, Callable[[], object]]) -> dict[str, int]:
    """Per function: peak bytes live in torch's CPU allocator during its call, above the level at
    its start. The calls run one after another inside one profiler session (starting one costs
    ~0.3 s), each inside a ``record_function`` range that attributes the allocator events."""
    import torch
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for name, fn in fns.items():
            with record_function(f"peak::{name}"):
                fn()
    try:
        events = list(prof.profiler.kineto_results.events())
    except AttributeError as exc:  # pragma: no cover - torch internals moved
        raise RuntimeError(f"this torch ({torch.__version__}) does not expose profiler memory events") from exc
    cpu = torch.autograd.DeviceType.CPU
    mem = sorted(((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]" and e.device_type() == cpu),
                 key=lambda t: t[0])
    out: dict[str, int] = {}
    for e in events:
        if e.name().startswith("peak::"):
            lo, hi = e.start_ns(), e.end_ns()
            live = peak = 0
            for t, nbytes in mem:
                if lo <= t <= hi:
                    live += nbytes
                    peak = max(peak, live)
            out[e.name().removeprefix("peak::")] = peak
    missing = sorted(set(fns) - set(out))
    if missing:  # pragma: no cover
        raise RuntimeError(f"the profiler lost the ranges of {missing}")
    return out


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_metadata(script: str, argv: list[str]) -> dict[str, Any]:
    """What a result file must say about how and where it was made."""
    import torch

    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "command": shlex.join(["python", script, *argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "flush_denormal": "not set (library defaults)",
        "load_average_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "versions": {d: _version(d) for d in ("torch", "numpy", "transformers", "peft", "ffsim", "jax", "quicq")},
        "argv": list(sys.argv),
    }
