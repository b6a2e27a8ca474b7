"""The runtime language of each backend in the reports: rows carry
``runtime_language`` (Python, C++, JavaScript: the language a backend's runtime
is called from) and ``effective_precision`` (the precision that ran); the
report, the summary and the console table group backends by language.

Rows from runs written before these columns existed get them here, as far as
the row itself says: ``effective_precision`` from the backend's own note
(``backend_effective_precision``, in the runtime's words) or else the cell's
precision; ``runtime_language`` is ``unrecorded`` (which language a backend
had is not in such a row).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from torchparity._core.row import RUNTIME_LANGUAGES
from torchparity._core.status import STATUSES
from torchparity.report import frames as fr

LANGUAGE = "runtime_language"
UNRECORDED = "unrecorded"


def with_language_columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with ``runtime_language`` and ``effective_precision`` on each row of
    a cell (rows without a backend, DataLoader rows, are left as they are)."""
    out = []
    for row in rows:
        if row.get("backend") is not None and not (
            row.get(LANGUAGE) and row.get("effective_precision")
        ):
            row = dict(row)
            row[LANGUAGE] = row.get(LANGUAGE) or UNRECORDED
            row["effective_precision"] = (
                row.get("effective_precision")
                or row.get("backend_effective_precision")
                or row.get("precision")
            )
        out.append(row)
    return out


def language_order(languages: Iterable[Any]) -> list[str]:
    """The languages present, in report order: Python, C++, JavaScript, then
    any other (a plugin's) by name, ``unrecorded`` last."""
    present = {str(v) for v in languages if isinstance(v, str) and v}
    known = [lang for lang in RUNTIME_LANGUAGES if lang in present]
    others = sorted(present - set(RUNTIME_LANGUAGES) - {UNRECORDED})
    return known + others + ([UNRECORDED] if UNRECORDED in present else [])


def languages_of(frame: pd.DataFrame) -> pd.Series:
    """Each row's runtime language (``unrecorded`` where the row has none)."""
    if LANGUAGE not in frame.columns:
        return pd.Series(UNRECORDED, index=frame.index, dtype=object)
    return frame[LANGUAGE].where(frame[LANGUAGE].notna() & (frame[LANGUAGE] != ""), UNRECORDED)


def language_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per runtime language: its backends, cells and status counts."""
    if "backend" not in frame.columns:
        return pd.DataFrame()
    cells = fr.rows(frame, frame["backend"].notna())
    if cells.empty:
        return pd.DataFrame()
    cells = cells.assign(**{LANGUAGE: languages_of(cells)})
    statuses = [s for s in STATUSES if (cells["status"] == s).any()]
    records = []
    for language in language_order(cells[LANGUAGE]):
        group = fr.rows(cells, cells[LANGUAGE] == language)
        counts = group["status"].value_counts().to_dict()
        records.append(
            {
                LANGUAGE: language,
                "backends": ", ".join(sorted(group["backend"].astype(str).unique())),
                "cells": len(group),
                **{s: int(counts.get(s, 0)) for s in statuses},
            }
        )
    return pd.DataFrame(records)


def grouped_by_language(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``runtime_language`` as an ordered categorical (report order),
    so grouping and sorting by it put Python first, then C++, then JavaScript."""
    languages = languages_of(frame)
    order = language_order(languages)
    return frame.assign(**{LANGUAGE: pd.Categorical(languages, categories=order, ordered=True)})
