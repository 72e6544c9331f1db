"""Griffe extension for the docs build: render quicq's Sphinx-flavoured docstrings as Markdown.

quicq's docstrings use reST roles (:func:`~quicq.engine.unary_block`) and ``::`` literal-block
markers. mkdocstrings renders Markdown, so this turns each role into inline code of the target's
name (the short name with ``~``, as Sphinx would) and ``text::`` into ``text:``; the indented
block after it is already a Markdown code block. Only the docs build uses this; the source stays
as written.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension

_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")
_LITERAL = re.compile(r"(?<=\S)::[ \t]*$", re.M)


def _role(m: re.Match[str]) -> str:
    target = m.group(2).strip()
    if m.group(1):
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def markdownify(text: str) -> str:
    """reST roles → inline code; a trailing ``::`` → ``:``."""
    return _LITERAL.sub(":", _ROLE.sub(_role, text))


class SphinxRoles(Extension):
    """Rewrite every docstring griffe loads (see the module docstring)."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdownify(obj.docstring.value)
