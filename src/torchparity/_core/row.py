"""The row: the typed record of one cell's result (DESIGN.md's columns).

Rows stay plain dicts at run time (pandas, JSON and plugins read them as such);
``Row`` types the known columns for producers and checkers, and any other
column is allowed (``extra_items``: backends and modes add their own). ``validate`` is the boundary check for rows read from disk, so a
results.jsonl of the wrong shape gives one clear error, never a traceback deep
inside a renderer. ``encode``/``decode`` are the JSON form (inf and NaN as
strings, since JSON has neither).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, get_type_hints

import pandas as pd
from typing_extensions import TypedDict

from torchparity._core.status import STATUSES


class Row(TypedDict, total=False, extra_items=Any):
    # the cell
    case: str
    kind: str
    suite: str
    device: str
    precision: str
    backend: str
    mode: str
    cell_id: str
    runtime_language: str  # the language the backend's runtime is called from
    effective_precision: str  # the precision that ran (the cell's unless the backend says)
    # the verdict
    status: str
    reason: str
    # timing
    batch: int
    latency_ms_median: float
    latency_ms_iqr: float
    latency_ms_p90: float
    iterations: int
    throughput_items_s: float
    prepare_s: float
    samples_ms: list
    # drift
    max_abs_err: float
    max_rel_err: float
    max_ulp: float
    cosine: float
    mismatch_frac: float
    atol: float
    rtol: float
    tolerance_used: float
    eager_max_abs_diff: float
    output_digest: str
    output_dtype: str  # what the path returned (verdicts/output_dtype.py)
    leaf_names: list
    # shape mode (docs/shapes.md): sizes as "batch=4,seq=16", the outcome
    shape_point: str
    export_shape: str
    run_shape: str
    shape_outcome: str  # match, loud-error, silent-mismatch, silent-static
    # environment, repeated so merged CSVs stay self-describing
    os: str
    torch: str
    onnxruntime: str
    host: str
    run_id: str | None
    finished_at: str
    seed: int  # the input and weight seed of the run


# The DESIGN.md row contract, in display order; other columns follow.
LEADING_COLUMNS: list[str] = [
    "case",
    "kind",
    "suite",
    "device",
    "precision",
    "backend",
    "mode",
    "runtime_language",
    "effective_precision",
    "status",
    "reason",
    "batch",
    "latency_ms_median",
    "latency_ms_iqr",
    "latency_ms_p90",
    "iterations",
    "throughput_items_s",
    "prepare_s",
    "max_abs_err",
    "max_rel_err",
    "max_ulp",
    "cosine",
    "mismatch_frac",
    "atol",
    "rtol",
    "eager_max_abs_diff",
    "output_digest",
    "os",
    "torch",
    "onnxruntime",
    "host",
]
CELL_COLUMNS: list[str] = ["case", "device", "precision", "backend"]
# The languages a backend's runtime is called from (``Backend.runtime_language``),
# in the order the reports group them; a plugin may name another.
RUNTIME_LANGUAGES: tuple[str, ...] = ("Python", "C++", "JavaScript")
TEXT_COLUMNS = frozenset(
    {
        "case",
        "kind",
        "suite",
        "device",
        "precision",
        "backend",
        "mode",
        "cell_id",
        "runtime_language",
        "effective_precision",
        "status",
        "reason",
        "output_digest",
        "output_dtype",
        "shape_point",
        "export_shape",
        "run_shape",
        "shape_outcome",
    }
)
NUMBER_COLUMNS = frozenset(
    name for name, kind in get_type_hints(Row).items() if kind in (float, int)
)
# Inf and NaN as JSON strings; only numeric columns turn them back into floats,
# so a case named "nan" stays a name.
_KEEP_TEXT = TEXT_COLUMNS | {"leaf_names", "leaf_names_reference"}
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def add_columns(row: Row, columns: Mapping[str, Any]) -> None:
    """Put ``columns`` (a backend's notes, a mode's own measurements) into ``row``."""
    for key, value in columns.items():
        row[key] = value


class RowError(ValueError):
    """A row read from disk that does not have the row's shape."""


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _restore(value: Any) -> Any:
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if isinstance(value, list):
        return [_restore(v) for v in value]
    if isinstance(value, dict):
        return {k: _restore(v) for k, v in value.items()}
    return value


def encode(row: dict[str, Any]) -> str:
    """One JSON line (no newline) for ``row``."""
    return json.dumps(_clean(row), default=_json_default, ensure_ascii=False)


def decode(obj: Any) -> Row:
    """A row from parsed JSON, "nan"/"inf" turned back into floats except in
    text columns (a case may be named "nan"); ``RowError`` when it is not a row."""
    row = validate(obj)
    return {k: v if k in _KEEP_TEXT else _restore(v) for k, v in row.items()}  # type: ignore[return-value]


def validate(obj: Any) -> Row:
    """``obj`` as a Row, after checking the types of the known columns."""
    if not isinstance(obj, dict):
        raise RowError(f"a row is a JSON object, not {type(obj).__name__}")
    for key in TEXT_COLUMNS & obj.keys():
        if obj[key] is not None and not isinstance(obj[key], str):
            raise RowError(f"column {key!r} must be text, not {type(obj[key]).__name__}")
    for key in NUMBER_COLUMNS & obj.keys():
        value = obj[key]
        ok = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
        if not ok and not (isinstance(value, str) and value in _NON_FINITE):
            raise RowError(f"column {key!r} must be a number, not {type(value).__name__}")
    if "status" in obj and obj["status"] not in STATUSES:
        raise RowError(f"unknown status {obj['status']!r} (valid: {', '.join(STATUSES)})")
    return dict(obj)  # type: ignore[return-value]


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Flat columns only (lists and dicts stay in the JSONL), contract columns first."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=LEADING_COLUMNS)
    nested = [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, list | dict)).any()]
    frame = frame.drop(columns=nested + [c for c in ("traceback",) if c in frame.columns])
    for col in LEADING_COLUMNS:
        if col not in frame.columns:
            frame[col] = None
    rest = [c for c in frame.columns if c not in LEADING_COLUMNS]
    return frame.reindex(columns=LEADING_COLUMNS + rest)  # every column exists: a reorder


# A row whose timing has rounds still to come: its verdict is final, its timing
# columns cover the rounds finished so far (an interrupted run; `--resume`
# finishes them and writes the cell's row again, which supersedes this one).
TIMING_PARTIAL = "timing_partial"
ROUNDS_PLANNED = "rounds_planned"


def timing_partial(row: Mapping[str, Any]) -> bool:
    return row.get(TIMING_PARTIAL) is True


def partial_timing_note(rows: Sequence[Mapping[str, Any]], limit: int = 10) -> str | None:
    """One line naming the cells whose timing is partial, or None when none is."""
    partial = [r for r in rows if timing_partial(r)]
    if not partial:
        return None
    names = ", ".join(
        f"{cell_key(r)} ({r.get('rounds', '?')} of {r.get(ROUNDS_PLANNED, '?')} rounds)"
        for r in partial[:limit]
    )
    more = f" and {len(partial) - limit} more" if len(partial) > limit else ""
    return (
        f"timing partial for {len(partial)} cell(s) of an interrupted run (verdicts final; "
        f"`torchparity run --resume` finishes them): {names}{more}"
    )


def cell_key(row: Mapping[str, Any]) -> str:
    """The row's cell identity (``cell_id`` when present)."""
    return str(row.get("cell_id") or "|".join(str(row.get(c)) for c in CELL_COLUMNS))


__all__ = [
    "Row",
    "add_columns",
    "RowError",
    "LEADING_COLUMNS",
    "CELL_COLUMNS",
    "RUNTIME_LANGUAGES",
    "encode",
    "decode",
    "validate",
    "rows_frame",
    "cell_key",
    "TIMING_PARTIAL",
    "ROUNDS_PLANNED",
    "timing_partial",
    "partial_timing_note",
]
