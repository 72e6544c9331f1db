"""Accuracy vs trainable parameters of every PEFT method, with a validation-chosen lr.

Protocol (the same for every method; the recipe is ``examples/common.py``'s):

1. A validation split is carved from the training data (:mod:`quicq.tasks`); the test split is
   never used to choose anything.
2. One schedule: AdamW, linear warmup over 6% of the steps, cosine decay to 0; the task head at
   the task's fixed head lr (for ``head`` itself the swept lr *is* the head lr).
3. Per method an lr sweep over its grid (``examples/methods.py``; ≥ 3 values over ≥ 10×; plus
   the library's ``config.lr_hint`` when quicq defines one) with seed 0, chosen on validation
   accuracy. While the best lr is at an edge of the lrs swept, the sweep is extended one grid
   step beyond it (up to ``--extend`` = 2 steps per side) before seeds are added.
4. ``--seeds`` − 1 more seeds at the chosen lr; test accuracy = mean ± std over those seeds.

Every run is appended to ``<out>/accuracy.json`` as soon as it finishes, keyed by task (+ a
fingerprint of its data/recipe settings), method (+ a fingerprint of its configuration), lr,
seed and steps; rerunning the same command skips what is already there, so an interrupted or
partial sweep (e.g. only ``--methods head,lora,oft,boft``) is resumed or extended later. Runs are
spread over ``--jobs`` worker processes (0: as many as idle cores), each pinned to ``--threads``
torch threads, methods interleaved. Writes ``accuracy.json``, ``accuracy.md`` and ``accuracy.png``.

    python benchmarks/accuracy.py --task digits                      # full digits sweep, minutes
    python benchmarks/accuracy.py --task text --methods head,lora,oft,boft
    python benchmarks/accuracy.py --task text                        # every method (hours on 2 cores)
    python benchmarks/accuracy.py --task csv:reviews.csv --csv-text-column review --csv-label-column stars
    python benchmarks/accuracy.py --smoke --out /tmp/acc              # CI: < 1 minute
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import hashlib
import json
import math
import multiprocessing as mp
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from collections.abc import Iterable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "benchmarks", ROOT / "examples", ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from accuracy_report import add_relative, choose_lr, markdown, plot, summarize_method  # noqa: E402
from methods import HARNESS_METHODS, METHOD_SPECS  # noqa: E402

SMOKE_METHODS = ("head", "lora", "quic-butterfly", "qpeft")
SMOKE_SETTINGS = {"digits": {"steps": 4, "train_size": 64}, "text": {"steps": 3, "train_size": 32, "val_size": 24,
                                                                     "test_size": 24, "seq_len": 16, "batch_size": 8}}


# ----------------------------------------------------------------------------- worker side

_WORKLOADS: dict[str, Any] = {}


def _die_with_parent() -> None:
    """Linux: have the kernel SIGTERM this worker when the sweep's process dies, however it dies
    (a killed sweep otherwise leaves its workers training runs nobody will record)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _init_worker(threads: int, worker: bool = False) -> None:
    if worker:
        _die_with_parent()
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set in this process
        pass


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one (task, method, lr, seed) with the shared recipe; evaluate on validation and test."""
    import torch

    from workloads import TaskSettings, Workload, run_method

    torch.set_num_threads(job["threads"])
    fp = job["task_fp"]
    if fp not in _WORKLOADS:
        _WORKLOADS[fp] = Workload(TaskSettings(**job["task_settings"]))
    load = os.getloadavg()[0]
    rec = run_method(_WORKLOADS[fp], job["method"], job["settings"], job["lr"], job["seed"])
    rec.update({k: job[k] for k in ("key", "task", "task_fp", "method_fp", "settings", "lr_hint", "commit")},
               lr_groups=METHOD_SPECS[job["method"]].lr_groups, load_at_start=load,
               date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    return rec


# ----------------------------------------------------------------------------- planning


def _fp(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=list).encode()).hexdigest()[:12]


def run_key(task: str, task_fp: str, method: str, method_fp: str, lr: float, seed: int, steps: int) -> str:
    return f"{task}#{task_fp}|{method}#{method_fp}|lr={lr:.6g}|seed={seed}|steps={steps}"


class Plan:
    """Which runs a task still needs, given the runs done so far."""

    def __init__(self, args: argparse.Namespace, task: str, settings: Any, methods: list[str], commit: str) -> None:
        from common import lr_hint, method_settings
        from workloads import TARGETS, HEADS, family

        self.task, self.settings, self.task_fp = task, settings, settings.fingerprint()
        fam = family(task)
        skipped = [m for m in methods if fam not in METHOD_SPECS[m].tasks]
        if skipped:
            print(f"{task}: skipping {', '.join(skipped)} (not defined for {fam} tasks)", flush=True)
        self.requested = [m for m in methods if m not in skipped]
        self.entries: dict[str, dict[str, Any]] = {}  # every method: the summary shows all that have runs
        for m in METHOD_SPECS:
            spec = METHOD_SPECS[m]
            ms = method_settings(m, fam)
            hint = lr_hint(spec, ms, targets=TARGETS[fam], head=HEADS[fam])
            grid = sorted(set(spec.lrs(fam)) | ({hint} if hint else set()))
            if args.smoke:
                grid = [grid[len(grid) // 2]]
            mfp = _fp({"kind": spec.kind, "settings": ms, "lr_groups": spec.lr_groups, "effective": spec.effective,
                       "targets": TARGETS[fam], "head": HEADS[fam]})
            self.entries[m] = {"settings": ms, "grid": grid, "method_fp": mfp, "hint": hint}
        self.args, self.commit = args, commit

    def _job(self, m: str, lr: float, seed: int) -> dict[str, Any]:
        e = self.entries[m]
        return {"key": run_key(self.task, self.task_fp, m, e["method_fp"], lr, seed, self.settings.steps),
                "task": self.task, "task_fp": self.task_fp, "task_settings": asdict(self.settings), "method": m,
                "method_fp": e["method_fp"], "settings": e["settings"], "lr": lr, "seed": seed, "lr_hint": e["hint"],
                "threads": self.args.threads, "commit": self.commit}

    def runs_of(self, m: str, runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        fp = self.entries[m]["method_fp"]
        return [r for r in runs.values() if r["task_fp"] == self.task_fp and r["method"] == m
                and r["method_fp"] == fp and r["steps"] == self.settings.steps]

    def pending(self, runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """The next runs (all independent of each other), methods interleaved."""
        per_method: list[list[dict[str, Any]]] = []
        for m in self.requested:
            e = self.entries[m]
            mine = self.runs_of(m, runs)
            sweep = [r for r in mine if r["seed"] == 0]
            done = sorted(r["lr"] for r in sweep)
            todo = [lr for lr in e["grid"] if lr not in done]
            if not todo:
                best = choose_lr(sweep)
                ext = self._extension(best, done, e["grid"])
                if ext is not None:
                    todo = [ext]
                else:
                    have = {r["seed"] for r in mine if r["lr"] == best}
                    per_method.append([self._job(m, best, s) for s in range(1, self.args.seeds) if s not in have])
                    continue
            per_method.append([self._job(m, lr, 0) for lr in todo])
        return [job for group in _interleave(per_method) for job in group]

    def _extension(self, best: float, done: list[float], grid: list[float]) -> float | None:
        """One more lr beyond the edge the best sits at, up to ``--extend`` per side."""
        if self.args.extend <= 0 or len(done) < 2 or best not in (done[0], done[-1]):
            return None
        step = grid[1] / grid[0] if len(grid) > 1 else math.sqrt(10)
        low = best == done[0]
        beyond = [lr for lr in done if (lr < grid[0] if low else lr > grid[-1])]
        if len(beyond) >= self.args.extend:
            return None
        return float(f"{(best / step if low else best * step):.3g}")

    def summary(self, runs: dict[str, dict[str, Any]], command: str) -> dict[str, Any]:
        rows = []
        for m, e in self.entries.items():
            mine = self.runs_of(m, runs)
            if mine:
                rows.append(summarize_method(mine, e["grid"]))
        add_relative(rows)
        sizes = next((r.get("sizes") for rows_ in [self.runs_of(m, runs) for m in self.entries] for r in rows_
                      if r.get("sizes")), None)
        s = self.settings
        recipe = (f"{s.steps} steps of batch {s.batch_size}, AdamW, warmup 6% + cosine, head lr {s.head_lr:g}"
                  + (f", ≤ {s.seq_len} tokens" if self.task != "digits" else ""))
        return {"task_fp": self.task_fp, "task_settings": asdict(s), "command": command, "recipe": recipe,
                "sizes": " / ".join(str(sizes[k]) for k in ("train", "val", "test")) if sizes else "?",
                "threads": self.args.threads, "cpu_count": os.cpu_count(), "methods": rows}


def _interleave(groups: list[list[Any]]) -> list[list[Any]]:
    """Round-robin across methods: [[a1], [b1], [a2], [b2], ...] flattened by the caller."""
    out: list[list[Any]] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.append([g[i] for g in groups if i < len(g)])
    return out


# ----------------------------------------------------------------------------- results file


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "peft", "numpy", "scikit-learn", "quicq"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def load_results(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"format": "quicq-accuracy", "version": 1, "invocations": [], "runs": {}, "summaries": {}}
    data = json.loads(path.read_text())
    if data.get("format") != "quicq-accuracy" or data.get("version") != 1:
        raise SystemExit(f"{path} is not a quicq accuracy result file (version 1); move it away or use --out")
    return data


def save_results(path: Path, data: dict[str, Any], own_summaries: Iterable[str] = ()) -> None:
    """Merge ``data`` into the file on disk and write it atomically, under a lock.

    Runs and invocations are unioned with what is on disk (another invocation, e.g. of another
    task, may have added some since this one started); only the summaries in ``own_summaries``
    are replaced. ``data`` is updated to the merged state. A crash mid-write loses nothing.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        disk = load_results(path)
        data["runs"] = {**disk["runs"], **data["runs"]}
        seen = {json.dumps(i, sort_keys=True) for i in data["invocations"]}
        data["invocations"] = [i for i in disk["invocations"] if json.dumps(i, sort_keys=True) not in seen] + \
            data["invocations"]
        data["invocations"].sort(key=lambda i: i.get("date", ""))
        own = set(own_summaries)
        data["summaries"] = {**disk["summaries"], **{t: v for t, v in data["summaries"].items() if t in own}}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
            fh.write("\n")
        os.replace(tmp, path)


# ----------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", action="append", default=[], help="digits | text | csv:PATH (repeatable; default: both "
                   "digits and text)")
    p.add_argument("--methods", default=",".join(HARNESS_METHODS), help="comma-separated (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=3, help="seeds at the chosen lr, sweep seed included (default: 3)")
    p.add_argument("--extend", type=int, default=2,
                   help="grid steps added, one at a time, beyond an edge lr, per side (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=0, help="worker processes (0: idle cores by load average)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default: %(default)s)")
    for name in ("steps", "batch-size", "train-size", "val-size", "test-size", "seq-len", "pretrain-epochs"):
        p.add_argument(f"--{name}", type=int, help="override the task default")
    p.add_argument("--head-lr", type=float, help="override the task's head lr")
    p.add_argument("--csv-text-column", default="text")
    p.add_argument("--csv-label-column", default="label")
    p.add_argument("--out", default=str(ROOT / "results"), help="directory of accuracy.json/.md/.png")
    p.add_argument("--smoke", action="store_true", help="tiny data and steps, 1 lr, 1 seed, 4 methods (CI)")
    p.add_argument("--dry-run", action="store_true", help="print the next round of runs and exit")
    p.add_argument("--report-only", action="store_true",
                   help="recompute the summaries, accuracy.md and accuracy.png from accuracy.json; train nothing")
    return p


def task_settings(task: str, args: argparse.Namespace) -> Any:
    from workloads import DEFAULTS, TaskSettings, family

    fam = family(task)
    if task.startswith("csv:") and not Path(task[4:]).is_file():
        raise SystemExit(f"--task {task}: file {task[4:]!r} does not exist")
    kw: dict[str, Any] = dict(DEFAULTS[fam])
    if args.smoke:
        kw.update(SMOKE_SETTINGS[fam])
    for name in ("steps", "batch_size", "train_size", "val_size", "test_size", "seq_len", "pretrain_epochs", "head_lr"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    if task.startswith("csv:"):
        kw.update(text_column=args.csv_text_column, label_column=args.csv_label_column)
    return TaskSettings(task=task, **kw)


def _jobs(requested: int) -> int:
    if requested > 0:
        return requested
    cores = os.cpu_count() or 1
    return max(1, min(cores, int(cores - os.getloadavg()[0])))


def report_only(args: argparse.Namespace, out: Path, data: dict[str, Any]) -> int:
    """Rebuild every stored task summary (same task settings and command) and the md/png."""
    from workloads import TaskSettings

    for task, old in list(data["summaries"].items()):
        plan = Plan(args, task, TaskSettings(**old["task_settings"]), [], "")
        data["summaries"][task] = plan.summary(data["runs"], old["command"])
    save_results(out / "accuracy.json", data, list(data["summaries"]))
    (out / "accuracy.md").write_text(markdown(data["summaries"]) + "\n")
    plot(data["summaries"], out / "accuracy.png")
    print(markdown(data["summaries"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.smoke and args.methods == ",".join(HARNESS_METHODS):
        args.methods = ",".join(SMOKE_METHODS)
    if args.smoke:
        args.seeds, args.extend = 1, 0
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHOD_SPECS]
    if bad or not methods:
        raise SystemExit(f"unknown method(s) {bad}; choose from {', '.join(METHOD_SPECS)}")
    if args.seeds < 1 or args.threads < 1:
        raise SystemExit("--seeds and --threads must be ≥ 1")
    tasks = args.task or (["digits"] if args.smoke else ["digits", "text"])
    out = Path(args.out)
    jpath = out / "accuracy.json"
    data = load_results(jpath)
    if args.report_only:
        return report_only(args, out, data)
    commit = _git("rev-parse", "HEAD") + ("-dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")
    command = "python benchmarks/accuracy.py " + " ".join(shlex.quote(a) for a in argv)
    plans = [Plan(args, t, task_settings(t, args), methods, commit) for t in tasks]
    jobs = _jobs(args.jobs)
    if not args.dry_run:
        data["invocations"].append({"command": command, "commit": commit, "tasks": tasks, "methods": methods,
                                    "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                    "cpu_count": os.cpu_count(), "jobs": jobs, "threads": args.threads,
                                    "loadavg": list(os.getloadavg()), "versions": _versions()})
    _init_worker(args.threads)
    pool = None
    if jobs > 1 and not args.dry_run:
        pool = cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                      initargs=(args.threads, True))
    t0 = time.perf_counter()
    done_tasks: list[str] = []
    # SIGTERM (kill, a CI timeout) ends the sweep like Ctrl-C: finished runs are already saved and
    # the pool below is shut down instead of left running
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        for plan in plans:
            while todo := plan.pending(data["runs"]):
                if args.dry_run:
                    for j in todo:
                        print(j["key"])
                    return 0
                if pool:
                    results: Any = (f.result() for f in cf.as_completed([pool.submit(run_one, j) for j in todo]))
                else:
                    results = map(run_one, todo)
                for rec in results:
                    data["runs"][rec["key"]] = rec
                    save_results(jpath, data, done_tasks)
                    acc = "diverged" if rec.get("error") else f"val {rec['val_acc']:.4f} test {rec['test_acc']:.4f}"
                    print(f"[{time.perf_counter() - t0:7.0f}s] {plan.task} {rec['method']:>15} lr={rec['lr']:<8g} "
                          f"seed={rec['seed']}: {acc}, {rec['step_ms']:.1f} ms/step, {rec['train_s']:.0f} s", flush=True)
            if args.dry_run:  # nothing pending here: a dry run writes nothing, not even a summary
                continue
            data["summaries"][plan.task] = plan.summary(data["runs"], command)
            done_tasks.append(plan.task)
            save_results(jpath, data, done_tasks)
    except KeyboardInterrupt:
        if pool:  # the running trainings are lost either way; do not wait minutes for them
            procs = getattr(pool, "_processes", None) or {}  # private, but the only handle on them
            for proc in list(procs.values()):
                proc.terminate()
        raise
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    if args.dry_run:
        print("nothing to run")
        return 0
    (out / "accuracy.md").write_text(markdown(data["summaries"]) + "\n")
    png = plot(data["summaries"], out / "accuracy.png")
    print(markdown({t: data["summaries"][t] for t in tasks}))
    print(f"\nwrote {jpath}, {out / 'accuracy.md'}" + (f", {png}" if png else ""))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted: the finished runs are saved; rerun the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None
