"""Rewrite "DESIGN §n" citations (a file outside the repository) into pointers to docs/ pages.

    python tools/fix_design_refs.py            # rewrite quicq/ and tests/ in place
    python tools/fix_design_refs.py --check    # change nothing; exit 1 listing what would change
    python tools/fix_design_refs.py benchmarks examples Makefile   # other paths

"DESIGN §2" becomes "docs/conventions.md", "DESIGN §4b" "docs/design.md#numerics", and so on
(:data:`SECTIONS`); lists and ranges ("DESIGN §2–§3", "DESIGN §5, §8") become comma-separated
pointers. The output contains no "DESIGN §", so a second run changes nothing (idempotent).
Every target is checked to exist — the page, and an ``{#anchor}`` on it — before anything is
written, so the mapping cannot point at a missing section.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATHS = ("quicq", "tests")
SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".yml", ".yaml"}

# DESIGN.md section → the docs page (and anchor) that now holds it.
SECTIONS: dict[str, str] = {
    "1": "docs/design.md#data-path",
    "2": "docs/conventions.md",
    "3": "docs/design.md#layouts",
    "4": "docs/design.md#adapters",
    "4b": "docs/design.md#numerics",
    "5": "docs/design.md#tomography",
    "5b": "docs/design.md#mitigation",
    "6": "docs/design.md#gradients",
    "7": "docs/design.md#offline-data",
    "8": "docs/design.md#environment",
}
ORDER = list(SECTIONS)

_SEC = r"§\s*(?:\d+[a-z]?)"
CITATION = re.compile(
    r"(?:\.\./shared/)?DESIGN(?:\.md)?\s*"
    rf"(?P<secs>{_SEC}(?:\s*(?:,|–|—|-|and|&)\s*{_SEC})*)"
)


class DesignRefError(Exception):
    """A citation names a section with no docs target, or a target does not exist."""


def _expand(secs: str, where: str) -> list[str]:
    """'§2–§3' → ['2', '3']; '§3, §4' → ['3', '4'] (ranges follow DESIGN's order, 4b after 4)."""
    tokens = re.findall(r"§\s*(\d+[a-z]?)|(–|—|-)", secs)
    out: list[str] = []
    pending_range = False
    for sec, dash in tokens:
        if dash:
            pending_range = True
            continue
        if sec not in SECTIONS:
            raise DesignRefError(f"{where}: DESIGN §{sec} has no docs page (add it to SECTIONS)")
        if pending_range and out:
            lo, hi = ORDER.index(out[-1]), ORDER.index(sec)
            out += ORDER[lo + 1:hi + 1]
        else:
            out.append(sec)
        pending_range = False
    return list(dict.fromkeys(out))


def _pointers(secs: list[str]) -> str:
    return ", ".join(dict.fromkeys(SECTIONS[s] for s in secs))


def rewrite(text: str, where: str = "<text>") -> str:
    """``text`` with every DESIGN citation replaced by its docs pointer(s)."""
    return CITATION.sub(lambda m: _pointers(_expand(m.group("secs"), where)), text)


def check_targets(root: Path = ROOT) -> None:
    """Every page and ``{#anchor}`` in :data:`SECTIONS` exists under ``root``."""
    for sec, target in SECTIONS.items():
        page, _, anchor = target.partition("#")
        path = root / page
        if not path.is_file():
            raise DesignRefError(f"DESIGN §{sec} → {target}: {page} does not exist")
        if anchor and not re.search(r"\{[^}]*#" + re.escape(anchor) + r"[\s}]", path.read_text()):
            raise DesignRefError(f"DESIGN §{sec} → {target}: no {{#{anchor}}} heading in {page}")


def files(paths: Iterable[str], root: Path = ROOT) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        path = (root / p) if not Path(p).is_absolute() else Path(p)
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            out += sorted(f for f in path.rglob("*") if f.is_file() and f.suffix in SUFFIXES
                          and "__pycache__" not in f.parts)
        else:
            raise DesignRefError(f"{p}: no such file or directory")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", default=list(DEFAULT_PATHS), help="files or folders (default: quicq tests)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a citation is left")
    args = ap.parse_args(argv)
    try:
        check_targets()
        targets = files(args.paths)
        changed = []
        for path in targets:
            text = path.read_text()
            new = rewrite(text, str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path))
            if new != text:
                changed.append((path, len(CITATION.findall(text)), new))
    except DesignRefError as exc:
        print(f"fix_design_refs: {exc}", file=sys.stderr)
        return 2
    for path, n, new in changed:
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        if args.check:
            print(f"{rel}: {n} DESIGN citation{'s' if n != 1 else ''} to rewrite")
        else:
            path.write_text(new)
            print(f"{rel}: rewrote {n} citation{'s' if n != 1 else ''}")
    if args.check:
        return 1 if changed else 0
    print(f"fix_design_refs: {len(changed)} of {len(targets)} files changed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
