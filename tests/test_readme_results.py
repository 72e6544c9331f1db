"""README's tables of numbers are generated from results/*.json and never drift from them.

The real check (first test) runs ``tools/readme_tables.py``'s comparison on the repository's own
README.md and results/. The rest pin the tool on small fixture results (tests/fixtures/results/,
one per known schema) so a renderer that breaks, or a check that stops noticing a stale number,
fails here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import readme_tables as rt  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "results"
KNOWN = ("engine", "adapters", "hardware", "demo", "accuracy", "fuzz")


def _readme(*keys: str, before: str = "# quicq\n\n", after: str = "") -> str:
    return before + "".join(f"<!-- results:{k} -->\nstale\n<!-- /results:{k} -->\n\n" for k in keys) + after


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    shutil.copytree(FIXTURES, out)
    return out


def test_repository_readme_agrees_with_committed_results() -> None:
    found = rt.problems((ROOT / "README.md").read_text(), ROOT / "results")
    assert not found, "README.md is out of date with results/ — run `make readme`:\n" + "\n".join(found)


def test_regenerate_fills_every_section_and_is_idempotent(results: Path) -> None:
    text = _readme(*KNOWN, "accuracy:digits")
    assert rt.problems(text, results)  # 'stale' bodies are noticed
    new = rt.regenerate(text, results)
    assert rt.problems(new, results) == []
    assert rt.regenerate(new, results) == new
    assert "stale" not in new and new.startswith("# quicq\n\n")


def test_engine_table_numbers(results: Path) -> None:
    body = rt.render_section("engine", results)
    assert "| n=22 orders{1,2} fwd+bwd | 4.9 ms | Givens product+det 73.7 ms | 15× | ≥10× |" in body
    assert "| n=16 order 1 block | 390 µs | Aer statevector 1.46 s | 3,744× | ≥1000× |" in body
    assert "commit 3965534 · 2026-12-01 · 2 cores, 1 torch thread" in body
    assert "regenerate: `python benchmarks/engine.py --json results/engine.json`" in body


def test_adapters_ratios_are_against_lora(results: Path) -> None:
    body = rt.render_section("adapters", results)
    assert "| quic-pyramid | 4,212 | 414.3 | 1.01× | 1442 | 0.96× |" in body
    assert "| head | 0 | 120.0 | 0.29× | 1300 | 0.87× |" in body
    assert "commit abcdef0" in body  # provenance nested under "meta"


def test_adapters_workload_columns_can_be_chosen() -> None:
    def wl(name: str, t: float) -> dict:
        return {"workload": name, "rows": [
            {"method": "lora", "label": "LoRA r=8", "time_over_lora": {"median": 1.0}, "peak_over_lora": 1.0},
            {"method": "q", "label": "QuIC", "time_over_lora": {"median": t, "iqr": 0.05}, "peak_over_lora": 1.1}]}
    data = {"workloads": [wl("a", 1.2), wl("b", 0.9)]}
    assert rt.render_adapters(data, "b,a").splitlines()[0] == (
        "| method | b: time (IQR) / memory vs LoRA | a: time (IQR) / memory vs LoRA |")
    assert "| QuIC | 0.90× (0.05) / 1.10× | 1.20× (0.05) / 1.10× |" in rt.render_adapters(data, "b,a")
    assert "| LoRA r=8 | 1.00× / 1.00× | 1.00× / 1.00× |" in rt.render_adapters(data, "b,a")
    assert "a: time" in rt.render_adapters(data) and "b: time" in rt.render_adapters(data)
    with pytest.raises(rt.ReadmeTablesError, match="no workload 'c' with results"):
        rt.render_adapters(data, "a,c")


def test_adapters_micro_shows_the_ffsim_comparison_or_why_not() -> None:
    row = {"n": 8, "dim": 28, "max_abs_diff": 2e-16, "engine_ms": {"median": 0.1}, "engine_fb_ms": {"median": 0.2},
           "ffsim_block_ms": {"median": 3.0}, "engine_over_ffsim_block": {"median": 0.0333},
           "ffsim_state_ms": {"median": 0.11}, "ffsim_orbital_state_ms": {"median": 0.05}}
    text = rt.render_adapters({"micro": {"ffsim": {"rows": [row]}}}, "micro")
    assert "| 8 | 28 | 0.100 | 0.200 | 3.000 | 30× | 0.110 | 0.050 | 2.0e-16 |" in text
    assert "max \\|Δ\\|" in text  # the pipe inside a cell is escaped
    skipped = rt.render_adapters({"micro": {"ffsim": {"skipped": "ffsim is not installed"}}}, "micro")
    assert skipped == "ffsim comparison skipped: ffsim is not installed."


def test_hardware_and_demo_tables(results: Path) -> None:
    hw = rt.render_section("hardware", results)
    assert "| 3 | 6 | 3 | 6 | 9 | 1.23 | 251 ms | 223 ms | 12.6% |" in hw
    assert "max \\|ΔB\\|·√shots" in hw  # the pipe inside a cell is escaped
    demo = rt.render_section("demo", results)
    assert "| QuIC + head, exact blocks (180 angles) | 0.9085 |" in demo
    assert "keeps 69% of Z shots" in demo and "| 0.8973 |" in demo
    assert "35.7 min (1,980 circuit executions)" in demo


def test_accuracy_per_task_argument(results: Path) -> None:
    one = rt.render_section("accuracy:digits", results)
    row = next(line for line in one.splitlines() if line.startswith("| LoRA r=8 |"))
    assert row.startswith("| LoRA r=8 | 8,576 | 8,576 | 1.0× |") and row.endswith("| 0.01 ⚠ | 0.9688 ± 0.0051 | 3 | 1.000 | 1.00 | 2.6 |")
    assert "text" not in one.split("<sub>")[0] and "`python benchmarks/accuracy.py --task digits`" in one
    both = rt.render_section("accuracy", results)
    assert "**digits**" in both and "**text**" in both
    with pytest.raises(rt.ReadmeTablesError, match="no task 'cifar'"):
        rt.render_section("accuracy:cifar", results)
    # a later invocation for another task does not become this task's provenance
    data = json.loads((results / "accuracy.json").read_text())
    data["invocations"].append({"command": "python benchmarks/accuracy.py --task text", "tasks": ["text"],
                                "commit": "feedfacefeedfacefeedfacefeedfacefeedface", "date": "2026-12-09T00:00:00+00:00"})
    data["invocations"][0]["tasks"] = ["digits"]
    (results / "accuracy.json").write_text(json.dumps(data))
    sub = rt.render_section("accuracy:digits", results).split("<sub>")[1]
    assert "commit 633b7f2" in sub and "2026-12-01" in sub and "feedfac" not in sub


def test_a_changed_result_makes_readme_stale(results: Path) -> None:
    text = rt.regenerate(_readme("engine", "hardware"), results)
    data = json.loads((results / "hardware.json").read_text())
    data["rows"][0]["overhead"] = 0.2
    (results / "hardware.json").write_text(json.dumps(data))
    assert rt.problems(text, results) == ["results:hardware differs from hardware.json (run `make readme`)"]
    hand_edit = rt.regenerate(text, results).replace("4.9 ms", "4.2 ms")
    assert rt.problems(hand_edit, results) == ["results:engine differs from engine.json (run `make readme`)"]


def test_missing_results_file(results: Path) -> None:
    (results / "fuzz.json").unlink()
    # markers for a missing file: an error naming it
    assert any("results/fuzz.json does not exist" in p for p in rt.problems(_readme("fuzz"), results))
    # no markers, but README quotes the file: an error too
    quoted = _readme("engine", after="The fuzz run (results/fuzz.json) found nothing.\n")
    assert rt.problems(rt.regenerate(quoted, results), results) == [
        "README quotes results/fuzz.json, which does not exist"]
    # no markers and no mention: fine
    assert rt.problems(rt.regenerate(_readme("engine"), results), results) == []


def test_hand_written_number_tables_are_refused_once_sections_exist(results: Path) -> None:
    hand = "| method | accuracy |\n|---|---:|\n| LoRA | 0.975 |\n"
    words = "| extra | installs |\n|---|---|\n| qiskit | Qiskit, Aer, IBM Runtime |\n"
    text = rt.regenerate(_readme("engine", after=hand + "\n" + words), results)
    assert [p for p in rt.problems(text, results) if "outside any results section" in p] == [
        f"README.md:{text.splitlines().index('| LoRA | 0.975 |') + 1}: a table of numbers outside any results "
        "section (generate it)"]


def test_marker_errors_are_named(results: Path) -> None:
    assert rt.problems("<!-- results:engine -->\nx\n", results) == [
        "<!-- results:engine --> is never closed (add <!-- /results:engine -->)"]
    assert "no matching opening" in rt.problems("<!-- /results:engine -->\n", results)[0]
    (results / "bad.json").write_text("[1, 2]")
    assert rt.problems(_readme("bad"), results) == ["results/bad.json: expected a JSON object, got list"]


def test_renderers_tolerate_missing_fields(results: Path) -> None:
    (results / "engine.json").write_text(json.dumps({"rows": [{"benchmark": "b", "quicq_s": 0.5}]}))
    assert "| b | 500 ms | – | – |  |" in rt.render_section("engine", results)
    (results / "demo.json").write_text(json.dumps({"finetune": {"accuracy_head_only": 0.5}}))
    assert "| head only (exact training) | 0.5000 |" in rt.render_section("demo", results)
    (results / "mitigation.json").write_text(json.dumps({"rows": [{"condition": "raw", "err": 0.1234, "extra": [1]}]}))
    assert "| condition | err |\n|---|---:|\n| raw | 0.123 |" in rt.render_section("mitigation", results)


def test_command_line_check_and_write(results: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(_readme("engine"))
    cmd = [sys.executable, str(ROOT / "tools" / "readme_tables.py"), "--readme", str(readme), "--results", str(results)]
    check = subprocess.run([*cmd, "--check"], capture_output=True, text=True)
    assert check.returncode == 1 and "results:engine differs" in check.stderr
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    assert subprocess.run([*cmd, "--check"], capture_output=True, text=True).returncode == 0
