"""The report's "shape generalisation" table: per case, backend, device and
precision, the outcome of each run shape of shape mode (docs/shapes.md), the
silent ones first."""

from __future__ import annotations

from typing import Any

import pandas as pd

# Worst first: what a reader must see before the rest.
SEVERITY = ("silent-mismatch", "silent-static", "loud-error", "match")
COLUMNS = [
    "case",
    "backend",
    "device",
    "precision",
    "export_shape",
    "worst",
    "outcomes",
    "reason",
    "culprit",
]


def _outcome(row: dict[str, Any]) -> str:
    """A row's outcome; a row that never reached one says its status."""
    return str(row.get("shape_outcome") or row.get("status") or "")


def _rank(outcome: str) -> int:
    return SEVERITY.index(outcome) if outcome in SEVERITY else len(SEVERITY)


def shape_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One line per (case, backend, device, precision) of the shape-mode rows:
    each run shape's outcome (``batch=9: silent-mismatch``), the worst of them,
    the first reason of a non-match and the localized culprit of each run
    shape that has one; silent-* lines first."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("mode") == "shape":
            key = tuple(str(row.get(k, "")) for k in ("case", "backend", "device", "precision"))
            groups.setdefault(key, []).append(row)
    records = []
    for (case, backend, device, precision), members in groups.items():
        outcomes = [_outcome(r) for r in members]
        worst = min(outcomes, key=_rank)
        records.append(
            {
                "case": case,
                "backend": backend,
                "device": device,
                "precision": precision,
                "export_shape": next(
                    (r["export_shape"] for r in members if r.get("export_shape")), ""
                ),
                "worst": worst,
                "outcomes": "; ".join(
                    f"{r.get('run_shape') or r.get('shape_point', '')}: {o}"
                    for r, o in zip(members, outcomes, strict=True)
                ),
                "culprit": "; ".join(
                    f"{r.get('run_shape')}: {r['culprit']}"
                    for r in members
                    if isinstance(r.get("culprit"), str) and r["culprit"]
                ),
                "reason": next(
                    (
                        str(r.get("reason"))
                        for r, o in zip(members, outcomes, strict=True)
                        if o == worst
                    ),
                    "",
                ),
            }
        )
    frame = pd.DataFrame(records, columns=COLUMNS)
    if frame.empty:
        return frame
    order = frame["worst"].map(_rank)
    return frame.assign(_rank=order).sort_values(["_rank", "case", "backend"]).drop(columns="_rank")
