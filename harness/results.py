"""Results: rows streamed to results.jsonl as each cell completes, and the flat CSV.

The JSONL file is the source of truth. Each row is written with one write()
and flushed to disk, so a killed run leaves every finished row readable; a
torn last line (killed mid-write) is skipped when reading and cut off before
appending again.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"

# The DESIGN.md row contract, in display order; other columns follow.
LEADING_COLUMNS = [
    "case", "kind", "suite", "device", "precision", "backend", "status", "reason", "batch",
    "latency_ms_median", "latency_ms_iqr", "latency_ms_p90", "iterations", "throughput_items_s",
    "prepare_s", "max_abs_err", "max_rel_err", "max_ulp", "cosine", "mismatch_frac",
    "atol", "rtol", "eager_max_abs_diff", "output_digest", "os", "torch", "onnxruntime", "host",
]  # fmt: skip


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _clean(value: Any) -> Any:
    # JSON has no inf/nan; keep them readable and round-trippable as strings.
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _restore(value: Any) -> Any:
    if value in ("nan", "inf", "-inf"):
        return float(value)
    if isinstance(value, dict):
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def repair_torn_tail(path: Path) -> int:
    """Cut a partial last line (a write interrupted by a kill). Returns bytes removed."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as fh:
        fh.truncate(keep)
    return len(data) - keep


class ResultsWriter:
    """Appends rows to results.jsonl, one flushed line per row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(path)
        self._fh = open(path, "a", encoding="utf-8", newline="\n")

    def append(self, row: dict[str, Any]) -> None:
        line = json.dumps(_clean(row), default=_json_default, ensure_ascii=False)
        self._fh.write(line + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a results.jsonl; unreadable (torn) lines are skipped. When a
    cell appears twice, the later row wins."""
    rows: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                row = _restore(json.loads(line))
            except json.JSONDecodeError:
                continue
            if not isinstance(row, dict):
                continue
            key = row.get("cell_id") or f"#{len(order)}"
            if key not in rows:
                order.append(key)
            rows[key] = row
    return [rows[k] for k in order]


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Flat columns only (lists and dicts stay in the JSONL), contract columns first."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=LEADING_COLUMNS)
    nested = [
        c for c in frame.columns if frame[c].map(lambda v: isinstance(v, list | dict)).any()
    ]
    frame = frame.drop(columns=nested + [c for c in ("traceback",) if c in frame.columns])
    for col in LEADING_COLUMNS:
        if col not in frame.columns:
            frame[col] = None
    rest = [c for c in frame.columns if c not in LEADING_COLUMNS]
    return frame[LEADING_COLUMNS + rest]


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    rows_frame(rows).to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return path
