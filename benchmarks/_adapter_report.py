"""Markdown report and goal checks of ``benchmarks/adapters.py`` (from its JSON result alone)."""

from __future__ import annotations

from typing import Any

#: (metric, who, workload groups, limit). who: "quic-circuit-k12" = every circuit
#: parameterization of QuIC with orders {1,2}; "qpeft" = Quantum-PEFT.
GOALS: list[tuple[str, str, tuple[str, ...], float]] = [
    ("time", "quic-circuit-k12", ("qv",), 1.10),
    ("time", "quic-circuit-k12", ("minilm",), 1.05),
    ("time", "quic-circuit-k12", ("all-linear",), 1.5),
    ("time", "qpeft", ("minilm", "qv", "all-linear", "digits"), 1.2),
    ("memory", "quic-circuit-k12", ("minilm", "qv"), 1.10),
    ("memory", "quic-circuit-k12", ("all-linear",), 1.15),
    ("memory", "qpeft", ("minilm", "qv"), 1.10),
    ("memory", "qpeft", ("all-linear",), 1.15),
]


def _who(row: dict[str, Any], who: str) -> bool:
    if who == "qpeft":
        return row["family"] == "qpeft"
    return row["family"] == "quic" and row["circuit"] and row["method"].endswith("-k12")


def _verdict(value: float, limit: float) -> str:
    return "met" if value <= limit else "**not met**"


def _x(s: dict[str, Any]) -> str:
    return f"{s['median']:.2f}×"


def goal_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal instance: what, where, measured, limit, met."""
    out = []
    for wl in result.get("workloads", []):
        for metric, who, groups, limit in GOALS:
            if wl["group"] not in groups:
                continue
            for r in wl["rows"]:
                if _who(r, who):
                    v = r["time_over_lora"]["median"] if metric == "time" else r["peak_over_lora"]
                    out.append({"goal": f"{metric} ≤ {limit:.2f}× LoRA", "where": wl["workload"],
                                "method": r["method"], "value": v, "limit": limit, "met": v <= limit})
    micro = result.get("micro", {})
    for blk in micro.get("blocks_vs_frozen", []) if isinstance(micro.get("blocks_vs_frozen"), list) else []:
        if blk["width"] != 768:
            continue
        for r in blk["rows"]:
            if r["parameterization"] != "cayley":
                v = r["adapter_over_frozen"]["median"]
                out.append({"goal": "blocks + apply ≤ 1× frozen layer", "where": f"n={r['n']}, {blk['tokens']} tokens",
                            "method": f"quic-{r['parameterization']}-k12", "value": v, "limit": 1.0, "met": v <= 1.0})
    pc = micro.get("pauli_columns", {})
    if "ms" in pc:
        v = pc["ms"]["median"]
        out.append({"goal": "pauli_columns fwd+bwd ≤ 1.5 ms", "where": f"N={pc['N']}, K={pc['K']}, L={pc['L']}",
                    "method": "engine", "value": v, "limit": 1.5, "met": v <= 1.5, "unit": "ms"})
    for r in micro.get("orthogonal", []) if isinstance(micro.get("orthogonal"), list) else []:
        for m in ("cayley", "matrix_exp"):
            v = r[f"engine_over_{m}"]["median"]
            out.append({"goal": f"unary fwd+bwd ≤ 1× orthogonal({m})", "where": f"n={r['n']}",
                        "method": "engine pyramid", "value": v, "limit": 1.0, "met": v <= 1.0})
    for r in micro.get("ffsim", {}).get("rows", []):
        v = r["engine_over_ffsim_block"]["median"]
        out.append({"goal": "weight-2 block ≤ 1× ffsim", "where": f"n={r['n']}", "method": "engine pyramid",
                    "value": v, "limit": 1.0, "met": v <= 1.0})
    return out


def _workload_table(wl: dict[str, Any]) -> list[str]:
    if not wl["rows"]:
        return [f"### {wl['workload']}: did not run: {wl.get('error', 'no method ran')}", ""]
    lines = [f"### {wl['workload']}: {wl['description']}", "",
             "| method | adapter params | n | step ms (median) | min | IQR | time × LoRA (median, min, IQR) "
             "| wall × LoRA | peak MiB | peak × LoRA | incl. frozen × LoRA |",
             "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in wl["rows"]:
        s, t = r["step_ms"], r["time_over_lora"]
        n = ",".join(map(str, r.get("qubits", []))) or "–"
        lines.append(f"| {r['label']} | {r['adapter_params']:,} | {n} | {s['median']:.1f} | {s['min']:.1f} | "
                     f"{s['iqr']:.1f} | {t['median']:.2f}× ({t['min']:.2f}, {t['iqr']:.2f}) | "
                     f"{_x(r['time_over_lora_wall'])} | {r['peak_mib']:.1f} | "
                     f"{r['peak_over_lora']:.2f}× | {r['peak_with_frozen_over_lora']:.2f}× |")
    frozen = wl["rows"][0]["frozen_mib"]
    lines += ["", f"Frozen model (shared by every method, not in *peak*): {frozen:.0f} MiB. "
              f"Steps per round: {wl['rows'][0]['steps_per_round']}; workload took {wl['time_s']} s."]
    for name, err in wl.get("errors", {}).items():
        lines.append(f"- {name}: {err[:300]}")
    return lines + [""]


def _summary_table(result: dict[str, Any]) -> list[str]:
    wls = [wl for wl in result.get("workloads", []) if wl["rows"]]
    if not wls:
        return []
    names: list[tuple[str, str]] = []
    for wl in wls:
        for r in wl["rows"]:
            if (r["method"], r["label"]) not in names:
                names.append((r["method"], r["label"]))
    lines = ["## Ratios to LoRA r=8 (time × / peak memory ×)", "",
             "| method | " + " | ".join(wl["workload"] for wl in wls) + " |",
             "|---|" + "---|" * len(wls)]
    for name, label in names:
        cells = []
        for wl in wls:
            r = next((r for r in wl["rows"] if r["method"] == name), None)
            cells.append(f"{_x(r['time_over_lora'])} / {r['peak_over_lora']:.2f}×" if r else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + [""]


def _micro_tables(micro: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    bvf = micro.get("blocks_vs_frozen")
    if isinstance(bvf, list):
        for blk in bvf:
            lines += [f"### QuIC {{1,2}} block computation vs the frozen Linear({blk['width']}, {blk['width']}), "
                      f"{blk['tokens']} tokens, forward + backward", "",
                      "| parameterization | n | frozen ms | adapted ms | blocks ms | blocks + apply ms "
                      "| blocks + apply × frozen | blocks × frozen |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
            for r in blk["rows"]:
                lines.append(f"| {r['parameterization']} | {r['n']} | {r['frozen_ms']['median']:.2f} | "
                             f"{r['adapted_ms']['median']:.2f} | {r['blocks_ms']['median']:.2f} | "
                             f"{r['adapter_ms']['median']:.2f} | {_x(r['adapter_over_frozen'])} | "
                             f"{_x(r['blocks_over_frozen'])} |")
            lines.append("")
    pc = micro.get("pauli_columns", {})
    if "ms" in pc:
        lines += [f"### pauli_columns N={pc['N']}, K={pc['K']}, L={pc['L']} ({pc['n_params']} angles), forward + "
                  f"backward: median {pc['ms']['median']:.2f} ms (min {pc['ms']['min']:.2f}, IQR "
                  f"{pc['ms']['iqr']:.2f})", ""]
    orth = micro.get("orthogonal")
    if isinstance(orth, list):
        lines += ["### n×n orthogonal matrix, forward + backward: engine pyramid vs torch parametrizations.orthogonal",
                  "", "| n | engine ms | cayley ms | matrix_exp ms | engine × cayley | engine × matrix_exp |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for r in orth:
            lines.append(f"| {r['n']} | {r['engine_ms']['median']:.2f} | {r['cayley_ms']['median']:.2f} | "
                         f"{r['matrix_exp_ms']['median']:.2f} | {_x(r['engine_over_cayley'])} | "
                         f"{_x(r['engine_over_matrix_exp'])} |")
        lines.append("")
    ff = micro.get("ffsim", {})
    if ff.get("rows"):
        lines += ["### Weight-2 block of a pyramid Givens network: engine vs ffsim (fixed particle number)", "",
                  "| n | C(n,2) | engine fwd ms | engine fwd+bwd ms | ffsim block ms | ffsim 1 state ms "
                  "| ffsim orbital-rotation 1 state ms | engine × ffsim block | max abs diff |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in ff["rows"]:
            lines.append(f"| {r['n']} | {r['dim']} | {r['engine_ms']['median']:.2f} | {r['engine_fb_ms']['median']:.2f} | "
                         f"{r['ffsim_block_ms']['median']:.1f} | {r['ffsim_state_ms']['median']:.2f} | "
                         f"{r['ffsim_orbital_state_ms']['median']:.3f} | {_x(r['engine_over_ffsim_block'])} | "
                         f"{r['max_abs_diff']:.1e} |")
        lines.append("")
    for key, val in micro.items():
        if isinstance(val, dict) and ("error" in val or "skipped" in val):
            lines.append(f"- {key}: {val.get('error') or val.get('skipped')}")
    return lines


def _profile_lines(result: dict[str, Any]) -> list[str]:
    for wl in result.get("workloads", []):
        prof = wl.get("profile")
        if not prof or "top" not in prof:
            continue
        lines = [f"## Where the time goes: {prof['method']} on {prof['workload']} "
                 f"(torch.profiler, {prof['total_ms_per_step']:.0f} ms self CPU per step)", "",
                 "| operator | input shapes | calls/step | self ms/step | share |", "|---|---|---:|---:|---:|"]
        for t in prof["top"][:15]:
            lines.append(f"| {t['op']} | `{t['shapes']}` | {t['calls']} | {t['self_ms_per_step']:.1f} | "
                         f"{100 * t['share']:.1f}% |")
        return lines + [""]
    return []


def render(result: dict[str, Any]) -> str:
    """The whole report: header, goal table, ratio summary, per-workload tables, components."""
    s = result["settings"]
    jobs = s.get("jobs", 0)
    parallel = f" ({jobs} worker processes side by side)" if jobs > 1 and not s.get("smoke") else ""
    parts = [(wl["workload"], wl) for wl in result.get("workloads", [])] + [("micro", result.get("micro") or {})]
    moved = [f"{name} at `{p['commit'][:12]}`" for name, p in parts if p.get("commit", result["commit"]) != result["commit"]]
    other = f" Tasks run by workers at a later commit: {', '.join(moved)}." if moved else ""
    lines = ["# Adapter benchmark: step time and peak memory vs LoRA r=8", "",
             f"Commit `{result['commit'][:12]}`{' (dirty)' if result['dirty'] else ''}, {result['date']}, "
             f"`{result['command']}`.  ",
             f"{result['cpu_count']} cores ({result['cpu_model']}), {result['torch_threads']} torch thread(s), "
             f"load average {result['load_average_start'][0]:.2f} at start, {result['load_average_end'][0]:.2f} at end; "
             f"torch {result['versions']['torch']}, peft {result['versions']['peft']}.  ",
             f"Median of {s['repeats']} interleaved rounds after {s['warmup']} warm-up steps, AdamW lr {s['lr']}; "
             f"times are {'process CPU time (one thread: what a core of its own would take; other jobs on the shared machine do not count)' if s['clock'] == 'cpu' else 'wall time'}, "
             "wall-time ratios are in the per-workload tables; "
             "ratios are per round (paired) then the median. Peak = trainable parameters + optimizer state + the "
             "CPU allocator's peak during one step (profiler memory events); the frozen model is the same for "
             "every method and is left out of *peak*.", "",
             f"Tasks finished: {', '.join(result.get('done', [])) or 'none'}{parallel}.{other}", ""]
    goals = goal_rows(result)
    if goals:
        met = sum(g["met"] for g in goals)
        lines += [f"## Goals ({met} of {len(goals)} met)", "", "| goal | where | method | measured | verdict |",
                  "|---|---|---|---:|---|"]
        for g in goals:
            val = f"{g['value']:.2f} ms" if g.get("unit") == "ms" else f"{g['value']:.2f}×"
            lines.append(f"| {g['goal']} | {g['where']} | {g['method']} | {val} | {_verdict(g['value'], g['limit'])} |")
        lines.append("")
    lines += _summary_table(result)
    lines += _profile_lines(result)
    if result.get("workloads"):
        lines += ["## Per workload", ""]
        for wl in result["workloads"]:
            lines += _workload_table(wl)
    if result.get("micro"):
        lines += ["## Components", ""] + _micro_tables(result["micro"])
    return "\n".join(lines) + "\n"
