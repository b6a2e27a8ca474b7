"""Markdown tables for summary.md, compare.md and docs/zoo.md: one escaping rule."""

from __future__ import annotations

import html
import re
from typing import Any

import pandas as pd

__all__ = ["markdown_table", "md_text"]


def md_text(value: object) -> str:
    """Text from a run (a case name, a reason, an env value) as inert Markdown on
    one line, in a table cell or a paragraph alike: markup in a reason must show
    as text in a rendered job summary too, so no HTML (``<img>``, an unclosed
    ``<!--``), no link or image syntax, and no ``|`` that would split a cell."""
    text = html.escape(" ".join(str(value).split()), quote=False)
    return re.sub(r"([\\`\[\]|])", r"\\\1", text)


def markdown_table(frame: pd.DataFrame, index: bool = False, floatfmt: str = ".3g") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    if index:
        frame = frame.reset_index()

    def text(v: Any) -> str:
        if isinstance(v, float):
            return "" if pd.isna(v) else format(v, floatfmt)
        return md_text(v)

    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(text(v) for v in r) + " |" for r in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])
