"""Markdown tables for summary.md, compare.md and docs/zoo.md: one escaping rule."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

__all__ = ["markdown_table"]


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
        text = " ".join(str(v).split())
        # Markup in a reason must show as text in a rendered job summary too: no
        # HTML, and no link or image syntax (a case name is data, not markup).
        # Backslash escapes, not entities: a reader of the raw file sees `a \< b`.
        return re.sub(r"([\\`\[\]|<>&])" if escape else r"(\|)", r"\\\1", text)

    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(text(v) for v in r) + " |" for r in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])
