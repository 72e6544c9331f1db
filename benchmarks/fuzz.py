"""Long mutation-fuzzing run of quicq's OpenQASM readers; writes results/fuzz.json.

    python benchmarks/fuzz.py --cases 50000 --seed 1

Same mutations and contract as tests/test_fuzz_qasm.py (see tests/_qasm_fuzz.py): every
mutated program either reads back to a circuit that survives its own round trip or raises
QasmError. Each case runs under a SIGALRM watchdog (``--case-timeout`` seconds), so a hang is
recorded as a failure instead of stalling the run. Exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import _qasm_fuzz as fuzz  # noqa: E402


class _Hang(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001
    raise _Hang


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--case-timeout", type=int, default=20)
    ap.add_argument("--out", default=str(ROOT / "results" / "fuzz.json"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    rnd = random.Random(args.seed)
    seeds = fuzz.seed_texts()
    two = [t for t in seeds if t.startswith("OPENQASM 2")]
    three = [t for t in seeds if t.startswith("OPENQASM 3")]
    result = fuzz.FuzzResult()
    hangs: list[str] = []
    signal.signal(signal.SIGALRM, _alarm)
    durations = []
    t0 = time.perf_counter()
    for _ in range(args.cases):
        text = rnd.choice(three if rnd.random() < 0.25 else two)
        for _ in range(rnd.randint(1, 3)):
            text = fuzz.mutate(text, rnd)
        start = time.perf_counter()
        signal.alarm(args.case_timeout)
        try:
            fuzz.check_one(text, result)
        except _Hang:
            hangs.append(text)
        finally:
            signal.alarm(0)
        durations.append(time.perf_counter() - start)
    wall = time.perf_counter() - t0
    durations.sort()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    record = {
        "commit": commit,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "versions": {p: md.version(p) for p in ("qiskit", "qiskit-qasm3-import", "openqasm3", "numpy")},
        "cases": result.cases,
        "seed": args.seed,
        "accepted_and_round_tripped": result.accepted - len(result.bad_round_trips),
        "refused_with_qasm_error": result.refused,
        "foreign_exceptions": len(result.foreign),
        "bad_round_trips": len(result.bad_round_trips),
        "hangs": len(hangs),
        "case_timeout_s": args.case_timeout,
        "wall_s": round(wall, 1),
        "case_ms": {"median": round(1e3 * durations[len(durations) // 2], 2),
                    "p99": round(1e3 * durations[int(len(durations) * 0.99)], 2),
                    "max": round(1e3 * durations[-1], 2)},
        "refusals_by_message": dict(sorted(result.by_error.items(), key=lambda kv: -kv[1])[:25]),
        "failures": ([{"kind": "foreign", "error": e, "text": t[:2000]} for e, t in result.foreign[:20]]
                     + [{"kind": "round trip", "text": t[:2000]} for t in result.bad_round_trips[:20]]
                     + [{"kind": "hang", "text": t[:2000]} for t in hangs[:20]]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("cases", "accepted_and_round_tripped", "refused_with_qasm_error",
                                             "foreign_exceptions", "bad_round_trips", "hangs", "wall_s")}))
    return 1 if record["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
