"""Regenerate every table of numbers in README.md from the committed results in results/*.json.

README holds generated sections between marker comments::

    <!-- results:engine -->
    (generated: never edit by hand)
    <!-- /results:engine -->

``results:NAME`` renders ``results/NAME.json`` with the renderer registered for NAME (or the
generic one); ``results:NAME:ARG`` passes ARG to it (e.g. ``results:accuracy:digits`` renders one
task of ``accuracy.json``). Every section ends with a provenance line (file, commit, date, cores,
threads, the command that regenerates the file), taken from the JSON itself.

    python tools/readme_tables.py            # rewrite README.md's sections in place (make readme)
    python tools/readme_tables.py --check    # exit 1 and say what differs (the test does this too)

Renderers are tolerant: a missing field prints "–", an unknown layout falls back to the generic
renderer (a list of records → one column per scalar key); only a file that is not a JSON object,
or a marker whose file does not exist, is an error.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DASH = "–"
MARKER = re.compile(r"<!-- results:(?P<key>[A-Za-z0-9_.-]+(?::[A-Za-z0-9_.=,-]+)?) -->\n"
                    r"(?P<body>.*?)"
                    r"<!-- /results:(?P=key) -->", re.S)
OPENING = re.compile(r"<!-- (/?)results:([A-Za-z0-9_.:=,-]+) -->")


class ReadmeTablesError(Exception):
    """README's markers or a results file cannot be rendered; the message names which and why."""


# ---------------------------------------------------------------------------------------------
# Formatting


def num(v: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (integers with thousands separators)."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return DASH if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if abs(v) >= 10 ** digits:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}" if abs(v) >= 1e-3 else f"{v:.2e}"


def fixed(v: Any, places: int = 3) -> str:
    return DASH if not isinstance(v, (int, float)) or isinstance(v, bool) else f"{v:.{places}f}"


def seconds(v: Any) -> str:
    """A duration with a readable unit: 0.00042 → '0.42 ms', 1.46 → '1.46 s'."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return DASH
    if v < 1e-3:
        return f"{v * 1e6:.3g} µs"
    if v < 1:
        return f"{v * 1e3:.3g} ms"
    return f"{v:.3g} s"


def ratio(v: Any) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return DASH
    return f"{v:,.0f}×" if v >= 100 else f"{v:.2g}×" if v >= 10 else f"{v:.2f}×"


def percent(v: Any, places: int = 1) -> str:
    return DASH if not isinstance(v, (int, float)) or isinstance(v, bool) else f"{100 * v:.{places}f}%"


def cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` holds one of 'l'/'r' per column (default: first left)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Provenance: every result file records where it came from; the names vary a little by script.

_META_KEYS = ("meta", "metadata", "machine", "provenance", "run", "environment")


_PROVENANCE_KEYS = frozenset({"commit", "git_commit", "date", "timestamp", "when", "cpu_count", "cores", "torch_threads",
                              "threads", "num_threads", "command", "cmd", "loadavg", "load_average"})


def _meta_sources(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out = [data] + [data[k] for k in _META_KEYS if isinstance(data.get(k), Mapping)]
    inv = data.get("invocations")
    if isinstance(inv, list) and inv and isinstance(inv[-1], Mapping):
        out.append(inv[-1])
    return out


def _first(sources: Sequence[Mapping[str, Any]], *keys: str) -> Any:
    for src in sources:
        for k in keys:
            if src.get(k) not in (None, ""):
                return src[k]
    return None


def provenance(data: Mapping[str, Any], file: str, first: Mapping[str, Any] | None = None) -> str:
    """One line: file, commit, date, cores, threads, command (``first`` wins over the file's own)."""
    src = ([first] if first else []) + _meta_sources(data)
    commit, date = _first(src, "commit", "git_commit"), _first(src, "date", "timestamp", "when")
    cores = _first(src, "cpu_count", "cores")
    threads = _first(src, "torch_threads", "threads", "num_threads")
    command = _first(src, "command", "cmd")
    parts = [f"`{file}`"]
    if commit:
        parts.append(f"commit {str(commit)[:7]}")
    if date:
        parts.append(str(date)[:10])
    if cores is not None or threads is not None:
        parts.append(", ".join(p for p in (f"{cores} cores" if cores is not None else "",
                                           f"{threads} torch thread{'s' if threads != 1 else ''}"
                                           if threads is not None else "") if p))
    if command:
        parts.append(f"regenerate: `{' '.join(command) if isinstance(command, list) else command}`")
    return "<sub>" + " · ".join(parts) + "</sub>"


# ---------------------------------------------------------------------------------------------
# Renderers: (data, arg) → markdown. Registered by result name below.


def _records(data: Mapping[str, Any], keys: Sequence[str] = ("rows", "results", "table", "cases", "runs")
             ) -> list[Mapping[str, Any]]:
    for k in keys:
        v = data.get(k)
        if isinstance(v, list) and all(isinstance(r, Mapping) for r in v):
            return list(v)
        if isinstance(v, Mapping) and v and all(isinstance(r, Mapping) for r in v.values()):
            return [{"name": name, **r} for name, r in v.items()]
    return []


def render_generic(data: Mapping[str, Any], arg: str | None = None) -> str:
    """Any result: its list of records as a table (scalar fields only), else its scalar fields."""
    rows = _records(data)
    if rows:
        cols: list[str] = []
        for r in rows:
            cols += [k for k, v in r.items() if k not in cols and (v is None or isinstance(v, (str, int, float, bool)))]
        # a column equal to an earlier one in every row (e.g. a run's name and its key) once
        cols = [c for i, c in enumerate(cols) if not any(all(r.get(c) == r.get(e) for r in rows) for e in cols[:i])]
        return table(cols, [[num(r.get(c)) if not isinstance(r.get(c), str) else r[c] for c in cols] for r in rows])
    scalars = [(k, v) for k, v in data.items() if isinstance(v, (int, float, str)) and k not in _PROVENANCE_KEYS]
    if not scalars:
        raise ReadmeTablesError("no list of records and no scalar fields to tabulate")
    return table(["quantity", "value"], [[k, v if isinstance(v, str) else num(v)] for k, v in scalars])


def render_engine(data: Mapping[str, Any], arg: str | None = None) -> str:
    """benchmarks/engine.py: rows of (benchmark, quicq_s, baseline, baseline_s, speedup, goal)."""
    rows = _records(data)
    if not rows or "quicq_s" not in rows[0]:
        return render_generic(data, arg)
    body = []
    for r in rows:
        base = r.get("baseline") or ""
        base_t = seconds(r.get("baseline_s")) if r.get("baseline_s") else ""
        body.append([r.get("benchmark", DASH), seconds(r.get("quicq_s")),
                     f"{base} {base_t}".strip() or DASH, ratio(r.get("speedup")) if r.get("speedup") else DASH,
                     r.get("goal") or ""])
    return table(["benchmark", "quicq", "baseline", "ratio", "goal"], body, "lrlrl")


def _render_adapter_workloads(data: Mapping[str, Any], names: str | None = None) -> str:
    """benchmarks/adapters.py's per-workload layout: one row per method, per workload the median
    step-time ratio to LoRA (round by round) and the peak-memory ratio. ``names``: a comma list
    of workloads to show, in that order (default: all)."""
    workloads = [w for w in data["workloads"] if w.get("rows")]
    if names:
        have = {w["workload"]: w for w in workloads}
        missing = [n for n in names.split(",") if n not in have]
        if missing:
            raise ReadmeTablesError(f"no workload {', '.join(map(repr, missing))} with results (have: {', '.join(have)})")
        workloads = [have[n] for n in names.split(",")]
    labels: dict[str, str] = {}
    cells: dict[tuple[str, str], str] = {}
    for w in workloads:
        for r in w["rows"]:
            m = r.get("method", DASH)
            labels.setdefault(m, r.get("label") or m)
            tr = r.get("time_over_lora")
            t = tr.get("median") if isinstance(tr, Mapping) else tr
            iqr = tr.get("iqr") if isinstance(tr, Mapping) and m != "lora" else None
            spread = f" ({iqr:.2f})" if isinstance(iqr, (int, float)) else ""
            mem = r.get("peak_over_lora")
            cells[(w["workload"], m)] = (f"{ratio(t)}{spread} / {ratio(mem)}" if isinstance(t, (int, float))
                                         and isinstance(mem, (int, float)) else DASH)
    body = [[labels[m]] + [cells.get((w["workload"], m), DASH) for w in workloads] for m in labels]
    head = ["method"] + [f"{w['workload']}: time (IQR) / memory vs LoRA" for w in workloads]
    return table(head, body)


def _speedup(engine_over_other: Any) -> str:
    """1 / (engine / other) as "N×": how many times faster the engine is (ratios ≪ 1 stay legible)."""
    if not isinstance(engine_over_other, (int, float)) or engine_over_other <= 0:
        return DASH
    x = 1.0 / engine_over_other
    return f"{x:,.0f}×" if x >= 10 else f"{x:.2f}×"


def _median(v: Any) -> Any:
    return v.get("median") if isinstance(v, Mapping) else v


def _render_adapter_micro(data: Mapping[str, Any]) -> str:
    """benchmarks/adapters.py's component timings: blocks + apply vs the frozen layer, the k = 1
    engine vs torch's orthogonal parametrization, pauli_columns."""
    micro = data.get("micro") or {}
    parts = []
    body = []
    for bf in micro.get("blocks_vs_frozen") or []:
        for r in bf.get("rows") or []:
            body.append([f"{r.get('parameterization', DASH)} (n = {r.get('n', '?')})",
                         fixed(_median(r.get("frozen_ms")), 2), fixed(_median(r.get("blocks_ms")), 2),
                         ratio(_median(r.get("adapter_over_frozen")))])
    if body:
        width = (micro["blocks_vs_frozen"][0] or {})
        parts.append(f"QuIC {{1,2}}, one block, on Linear({width.get('width', '?')}) × {width.get('tokens', '?')} "
                     "tokens, forward + backward:\n\n"
                     + table(["parameterization", "frozen layer ms", "blocks ms", "blocks + apply / frozen"], body))
    body = [[r.get("n"), fixed(_median(r.get("engine_ms")), 3), fixed(_median(r.get("cayley_ms")), 3),
             ratio(_median(r.get("engine_over_cayley"))), fixed(_median(r.get("matrix_exp_ms")), 3),
             ratio(_median(r.get("engine_over_matrix_exp")))] for r in micro.get("orthogonal") or []]
    if body:
        parts.append("k = 1 engine (pyramid) vs `torch.nn.utils.parametrizations.orthogonal`, forward + backward:\n\n"
                     + table(["n", "engine ms", "cayley ms", "engine / cayley", "matrix_exp ms",
                              "engine / matrix_exp"], body))
    ff = micro.get("ffsim")
    if isinstance(ff, Mapping) and ff.get("rows"):
        body = [[r.get("n"), r.get("dim"), fixed(_median(r.get("engine_ms")), 3), fixed(_median(r.get("engine_fb_ms")), 3),
                 fixed(_median(r.get("ffsim_block_ms")), 3), _speedup(_median(r.get("engine_over_ffsim_block"))),
                 fixed(_median(r.get("ffsim_state_ms")), 3), fixed(_median(r.get("ffsim_orbital_state_ms")), 3),
                 f"{r['max_abs_diff']:.1e}" if isinstance(r.get("max_abs_diff"), float) else DASH]
                for r in ff["rows"]]
        parts.append("Weight-2 block of a pyramid of RBS gates vs ffsim's simulation of the same Givens network "
                     "(float64; ffsim has no gradients, so *engine fwd+bwd* has no ffsim counterpart):\n\n"
                     + table(["n", "C(n,2)", "engine ms", "engine fwd+bwd ms", "ffsim block ms", "ffsim block / engine",
                              "ffsim one state ms", "ffsim orbital rotation, one state ms", "max |Δ|"], body))
    elif isinstance(ff, Mapping) and ff.get("skipped"):
        parts.append(f"ffsim comparison skipped: {ff['skipped']}.")
    pc = micro.get("pauli_columns")
    if isinstance(pc, Mapping) and _median(pc.get("ms")) is not None:
        parts.append(f"`pauli_columns` N = {pc.get('N')}, K = {pc.get('K')}, L = {pc.get('L')}, forward + backward: "
                     f"{fixed(_median(pc.get('ms')), 2)} ms.")
    return "\n\n".join(parts) if parts else render_generic(data, "micro")


def render_adapters(data: Mapping[str, Any], arg: str | None = None) -> str:
    """benchmarks/adapters.py: per-method step time and memory, with ratios to LoRA
    (``results:adapters:micro``: the component timings; ``results:adapters:a,b``: workloads a and b)."""
    if arg == "micro":
        return _render_adapter_micro(data)
    if isinstance(data.get("workloads"), list) and data["workloads"] and isinstance(data["workloads"][0], Mapping):
        return _render_adapter_workloads(data, arg)
    rows = _records(data, ("results", "rows", "methods"))
    if not rows or "step_ms" not in rows[0]:
        return render_generic(data, arg)
    lora = next((r for r in rows if r.get("method") == "lora"), None)

    def rel(r: Mapping[str, Any], key: str) -> str:
        a, b = r.get(key), (lora or {}).get(key)
        return ratio(a / b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else DASH

    body = [[r.get("label") or r.get("method", DASH), num(r.get("adapter_params")), fixed(r.get("step_ms"), 1),
             rel(r, "step_ms"), num(r.get("peak_rss_mib"), 4), rel(r, "peak_rss_mib")] for r in rows]
    out = table(["method", "adapter params", "step ms", "time / LoRA", "peak RSS MiB", "peak / LoRA"], body)
    return (f"{data['note']}\n\n" if isinstance(data.get("note"), str) else "") + out


def render_hardware(data: Mapping[str, Any], arg: str | None = None) -> str:
    """benchmarks/hardware.py: circuit counts, shot error and hybrid-step overhead per n."""
    rows = _records(data)
    if not rows or "n" not in rows[0]:
        return render_generic(data, arg)
    body = [[r.get("n"), num(r.get("order1_signed_magnitude")), num(r.get("order1_signed_only")),
             num(r.get("orders12_derived")), num(r.get("orders12_direct")), fixed(r.get("max_err_sqrt_shots"), 2),
             seconds(r.get("step_s")), seconds(r.get("primitive_s")), percent(r.get("overhead"))] for r in rows]
    head = ["n", "circuits, order 1", "signed only", "orders {1,2} derived", "orders {1,2} direct",
            "max |ΔB|·√shots", "hybrid step", "Aer time", "overhead"]
    shots = f"{data['shots']:,} shots per circuit.\n\n" if isinstance(data.get("shots"), int) else ""
    return shots + table(head, body)


def render_demo(data: Mapping[str, Any], arg: str | None = None) -> str:
    """quicq demo's summary.json (committed as results/demo.json): accuracy per condition."""
    f = data.get("finetune") or {}
    rows: list[list[str]] = []
    if "accuracy_head_only" in f:
        rows.append(["head only (exact training)", fixed(f["accuracy_head_only"], 4)])
    if "accuracy_quic_exact" in f:
        angles = f" ({f['adapter_angles']:,} angles)" if isinstance(f.get("adapter_angles"), int) else ""
        rows.append([f"QuIC + head, exact blocks{angles}", fixed(f["accuracy_quic_exact"], 4)])
    for e in data.get("estimates") or []:
        notes = [f"max |ΔB| {e['max_abs_error']:.3f}"] if isinstance(e.get("max_abs_error"), (int, float)) else []
        if isinstance(e.get("kept_fraction"), (int, float)):
            notes.append(f"keeps {100 * e['kept_fraction']:.0f}% of Z shots")
        label = f"blocks from {e.get('condition', '?')}" + (f" ({'; '.join(notes)})" if notes else "")
        rows.append([label, fixed(e.get("test_accuracy"), 4)])
    if not rows:
        return render_generic(data, arg)
    out = table(["condition", "test accuracy"], rows)
    extra = []
    mit = data.get("mitigated") or {}
    if isinstance(mit.get("fraction_of_exact_accuracy"), (int, float)):
        ratio = mit.get("mean_error_ratio_vs_raw")
        extra.append(f"mitigated blocks keep {100 * mit['fraction_of_exact_accuracy']:.1f}% of the exact-block "
                     f"accuracy (goal ≥ {100 * mit.get('goal', 0.99):.0f}%)"
                     + (f", mean |ΔB| {ratio:.2f}× lower than raw" if isinstance(ratio, (int, float)) else ""))
    hyb = data.get("hybrid") or {}
    for label, r in (hyb.get("runs") or {}).items():
        losses = r.get("losses") or []
        if losses:
            jobs = f" ({r['jobs_per_step']:g} jobs per step)" if isinstance(r.get("jobs_per_step"), (int, float)) else ""
            extra.append(f"{label}: loss {losses[0]:.3f} → {losses[-1]:.3f} in {hyb.get('steps', len(losses) - 1)} "
                         f"steps{jobs}")
    plan = data.get("plan") or {}
    if isinstance(plan.get("qpu_seconds_per_step"), (int, float)):
        circ = f" ({plan['circuits_per_step']:,} circuit executions)" if isinstance(plan.get("circuits_per_step"), int) else ""
        extra.append(f"planned QPU time per training step on {plan.get('backend', '?')}: "
                     f"{plan['qpu_seconds_per_step'] / 60:.1f} min{circ}")
    if isinstance(data.get("total_seconds"), (int, float)):
        extra.append(f"total wall time {data['total_seconds']:.0f} s")
    return out + ("\n\n" + "; ".join(extra) + "." if extra else "")


def render_train(data: Mapping[str, Any], arg: str | None = None) -> str:
    """quicq train's summary.json: validation / test accuracy with exact blocks, with blocks
    estimated on the backend raw and mitigated, and the run's recipe and hardware cost."""
    ev = data.get("evaluation")
    if not isinstance(ev, Mapping) or not ev:
        return render_generic(data, arg)
    exact = (ev.get("exact_blocks") or {}).get("accuracy")
    rows: list[list[str]] = []
    labels = (("validation_exact_blocks", "validation, exact blocks"), ("exact_blocks", "test, exact blocks"),
              ("estimated_blocks_raw", "test, blocks estimated on {backend}, raw"),
              ("estimated_blocks", "test, blocks estimated on {backend}, {options}"))
    for key, label in labels:
        rec = ev.get(key)
        if not isinstance(rec, Mapping):
            continue
        opts = ", ".join(rec.get("options") or []) or "no mitigation options"
        if key == "estimated_blocks" and rec.get("options"):
            opts = "mitigated: " + opts
        share = DASH
        if key.startswith("estimated") and isinstance(exact, (int, float)) and exact:
            share = percent(rec.get("accuracy") / exact) if isinstance(rec.get("accuracy"), (int, float)) else DASH
        rows.append([label.format(backend=rec.get("backend", "?"), options=opts), fixed(rec.get("accuracy"), 4),
                     share])
    out = table(["blocks", "accuracy", "of exact"], rows)
    extra = []
    rec = data.get("recipe") or {}
    if rec:
        extra.append(f"{data.get('steps', '?')} steps, {rec.get('optimizer', '?')}, lr {rec.get('lr')} "
                     f"(head {rec.get('head_lr')}), {rec.get('schedule', '?')} schedule")
    if isinstance(data.get("trainable_parameters"), int):
        extra.append(f"{data['trainable_parameters']:,} trainable parameters (adapter + head)")
    hw = data.get("hardware") or {}
    steps = data.get("steps") or 0
    if isinstance(hw.get("jobs"), int) and steps:
        extra.append(f"{data.get('gradient', '?')} gradients: {hw['jobs'] / steps:.1f} jobs and "
                     f"{hw.get('executions', 0) / steps:,.0f} circuit executions per step on {data.get('backend', '?')}")
    if isinstance(data.get("seconds"), (int, float)):
        extra.append(f"training {data['seconds'] / 60:.1f} min")
    return out + ("\n\n" + "; ".join(extra) + "." if extra else "")


def render_accuracy(data: Mapping[str, Any], arg: str | None = None) -> str:
    """benchmarks/accuracy.py: per task, lr chosen on validation, test mean ± std over seeds."""
    summaries = data.get("summaries")
    if not isinstance(summaries, Mapping) or not summaries:
        return render_generic(data, arg)
    if arg is not None and arg not in summaries:
        raise ReadmeTablesError(f"no task {arg!r} in the summaries (have: {', '.join(summaries)})")
    parts = []
    for task, s in summaries.items():
        if arg is not None and task != arg:
            continue
        body = []
        for r in s.get("methods") or []:
            p = r.get("params") or {}
            mean, std = r.get("test_mean"), r.get("test_std")
            test = f"{mean:.4f} ± {std:.4f}" if isinstance(mean, float) and isinstance(std, float) else fixed(mean, 4)
            fewer = r.get("fewer_params_than_lora")
            body.append([r.get("label") or r.get("method", DASH), num(p.get("adapter_stored")),
                         num(p.get("adapter_effective")), f"{fewer:.1f}×" if isinstance(fewer, float) else DASH,
                         num(r.get("lr_chosen")) + (" ⚠" if r.get("lr_at_edge") else "")
                         + (f" ({r.get('lrs_swept')}/{len(r.get('lr_grid') or [])} lrs)" if r.get("lr_incomplete") else ""),
                         test,
                         len(r.get("seeds") or []), fixed(r.get("ratio_to_lora"), 3), fixed(r.get("gain_fraction"), 2),
                         fixed(r.get("step_ms"), 1)])
        head = ["method", "params", "effective", "fewer than LoRA", "lr (val)", "test acc", "seeds", "/ LoRA", "gain",
                "step ms"]
        text = table(head, body)
        if arg is None:
            text = f"**{task}**" + (f" ({s['recipe']})" if s.get("recipe") else "") + "\n\n" + text
        parts.append(text)
    return "\n\n".join(parts)


@dataclass(frozen=True)
class Source:
    """One kind of result file and how it becomes markdown."""

    render: Callable[[Mapping[str, Any], str | None], str]
    file: str | None = None  # default: results/<name>.json
    # (data, arg) → provenance fields that override the file's top-level ones (e.g. one task's command)
    meta: Callable[[Mapping[str, Any], str | None], Mapping[str, Any]] | None = None


def _accuracy_meta(data: Mapping[str, Any], arg: str | None) -> Mapping[str, Any]:
    """A task's summary settings, with the commit and date of the last invocation that ran that
    task (not of the file's last invocation, which may have been another task's)."""
    s = (data.get("summaries") or {}).get(arg) if arg else None
    if not isinstance(s, Mapping):
        return {}
    meta = {k: s[k] for k in ("command", "threads", "cpu_count") if k in s}
    inv = [i for i in data.get("invocations") or [] if isinstance(i, Mapping) and arg in (i.get("tasks") or [])]
    if inv:
        meta.update({k: inv[-1][k] for k in ("commit", "date") if k in inv[-1]})
    return meta


# result name → renderer. Names without an entry use render_generic on results/<name>.json.
REGISTRY: dict[str, Source] = {
    "engine": Source(render_engine),
    "engine_pauli": Source(render_engine),
    "adapters": Source(render_adapters),
    "hardware": Source(render_hardware),
    "demo": Source(render_demo),
    "accuracy": Source(render_accuracy, meta=_accuracy_meta),
    "mitigation": Source(render_generic),
    "hybrid_minilm": Source(render_train),
    "fuzz": Source(render_generic),
}


# ---------------------------------------------------------------------------------------------
# README rewriting


def _source(name: str) -> Source:
    return REGISTRY.get(name, Source(render_generic))


def result_path(name: str, results: Path) -> Path:
    return results / (_source(name).file or f"{name}.json")


def render_section(key: str, results: Path) -> str:
    """The generated markdown for marker ``results:KEY`` (KEY = NAME or NAME:ARG)."""
    name, _, arg = key.partition(":")
    path = result_path(name, results)
    rel = f"results/{path.relative_to(results).as_posix()}"
    if not path.is_file():
        raise ReadmeTablesError(f"README has a results:{key} section but {rel} does not exist "
                                "(commit the run, or remove the markers)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReadmeTablesError(f"{rel}: not readable JSON ({exc})") from None
    if not isinstance(data, Mapping):
        raise ReadmeTablesError(f"{rel}: expected a JSON object, got {type(data).__name__}")
    source = _source(name)
    try:
        body = source.render(data, arg or None)
        first = source.meta(data, arg or None) if source.meta else None
    except ReadmeTablesError as exc:
        raise ReadmeTablesError(f"{rel} ({key}): {exc}") from None
    return f"{body}\n\n{provenance(data, rel, first)}\n"


def _check_markers(text: str) -> None:
    """Every opening marker has its closing one, in order, with nothing nested."""
    stack: list[str] = []
    for m in OPENING.finditer(text):
        closing, key = m.group(1) == "/", m.group(2)
        if not closing:
            if stack:
                raise ReadmeTablesError(f"results:{key} opens inside results:{stack[-1]} (close it first)")
            stack.append(key)
        elif not stack or stack.pop() != key:
            raise ReadmeTablesError(f"<!-- /results:{key} --> has no matching opening marker")
    if stack:
        raise ReadmeTablesError(f"<!-- results:{stack[-1]} --> is never closed (add <!-- /results:{stack[-1]} -->)")


def sections(text: str) -> list[tuple[str, str]]:
    """(key, current body) of every generated section, in order."""
    _check_markers(text)
    return [(m.group("key"), m.group("body")) for m in MARKER.finditer(text)]


def regenerate(text: str, results: Path) -> str:
    """README text with every generated section rewritten from the results."""
    _check_markers(text)

    def sub(m: re.Match[str]) -> str:
        key = m.group("key")
        return f"<!-- results:{key} -->\n{render_section(key, results)}<!-- /results:{key} -->"

    return MARKER.sub(sub, text)


_NUMBER_CELL = re.compile(r"^[~≈<>≤≥]?\s*[-+]?\d[\d,]*(\.\d+)?\s*(×|%|ms|s|µs|min|MiB|GB)?$")


def hand_tables(text: str) -> list[int]:
    """Line numbers (1-based) of markdown tables outside generated sections that hold numbers."""
    spans = [(m.start(), m.end()) for m in MARKER.finditer(text)]
    found, offset, in_table = [], 0, False
    for i, line in enumerate(text.splitlines(keepends=True), 1):
        inside = any(a <= offset < b for a, b in spans)
        offset += len(line)
        row = line.strip()
        if not row.startswith("|") or inside:
            in_table = False
            continue
        cells = [c.strip() for c in row.strip("|").split("|")]
        if not in_table and any(_NUMBER_CELL.match(c) for c in cells if c):
            found.append(i)
            in_table = True
    return found


def quoted_files(text: str) -> set[str]:
    """Names of result files README mentions (``results/NAME.json``)."""
    return set(re.findall(r"results/([A-Za-z0-9_.-]+)\.json", text))


def problems(text: str, results: Path) -> list[str]:
    """Everything that makes README disagree with the committed results (empty: in sync)."""
    out: list[str] = []
    try:
        found = sections(text)
    except ReadmeTablesError as exc:
        return [str(exc)]
    names = {key.partition(":")[0] for key, _ in found}
    for key, body in found:
        try:
            want = render_section(key, results)
        except ReadmeTablesError as exc:
            out.append(str(exc))
            continue
        if body != want:
            out.append(f"results:{key} differs from {result_path(key.partition(':')[0], results).name} "
                       "(run `make readme`)")
    for name in sorted(quoted_files(text) - names):
        if not result_path(name, results).is_file():
            out.append(f"README quotes results/{name}.json, which does not exist")
    if found:  # once README uses generated sections, every table of numbers must be one
        out += [f"README.md:{line}: a table of numbers outside any results section (generate it)"
                for line in hand_tables(text)]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if README is out of date")
    args = ap.parse_args(argv)
    text = args.readme.read_text()
    if args.check:
        found = problems(text, args.results)
        for p in found:
            print(f"readme_tables: {p}", file=sys.stderr)
        return 1 if found else 0
    try:
        new = regenerate(text, args.results)
    except ReadmeTablesError as exc:
        print(f"readme_tables: {exc}", file=sys.stderr)
        return 1
    if new != text:
        args.readme.write_text(new)
    n = len(sections(new))
    print(f"readme_tables: {n} section{'s' if n != 1 else ''} in {args.readme.name} "
          f"{'rewritten' if new != text else 'already up to date'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
