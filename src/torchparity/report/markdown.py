"""Markdown tables for summary.md, compare.md and docs/zoo.md: one escaping rule."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

__all__ = ["markdown_table", "md_text"]


def md_text(value: object, escape: bool = True) -> str:
    """Text from a run (a case name, a reason, an env value) as inert Markdown on
    one line, in a table cell or a paragraph alike: markup in a reason must show
    as text in a rendered job summary too, so no HTML (``<img>``, an unclosed
    ``<!--``), no link or image syntax, and no ``|`` that would split a cell.
    Backslash escapes, not entities: a reader of the raw file (or a terminal)
    sees ``a \\< b``, never ``&lt;``. ``escape=False``: for a terminal, only
    ``|`` is escaped."""
    text = " ".join(str(value).split())
    return re.sub(r"([\\`\[\]|<>&])" if escape else r"(\|)", r"\\\1", text)


def markdown_table(
    frame: pd.DataFrame, index: bool = False, floatfmt: str = ".3g", escape: bool = True
) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency); an empty value
    (None, NaN) is an empty cell. ``escape=False``: for a terminal, where text
    shows as it is (only ``|``, which would split a cell, is escaped)."""
    if index:
        frame = frame.reset_index()

    def text(v: Any) -> str:
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return ""
        if isinstance(v, float):
            return format(v, floatfmt)
        return md_text(v, escape)

    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(text(v) for v in r) + " |" for r in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])
