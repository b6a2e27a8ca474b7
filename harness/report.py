"""Reports rendered from results: results.csv, summary.md, report.html, and the
console table. Renderers read rows and nothing else."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from harness.results import RESULTS_CSV, rows_frame, write_csv

STATUSES = ["pass", "fail", "error", "skip", "crash", "timeout", "xfail"]


def markdown_table(frame: pd.DataFrame, index: bool = False, floatfmt: str = ".3g") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    if index:
        frame = frame.reset_index()

    def text(v: Any) -> str:
        if isinstance(v, float):
            return "" if pd.isna(v) else format(v, floatfmt)
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(text(v) for v in r) + " |" for r in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def status_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts of each status per backend and precision."""
    if frame.empty:
        return pd.DataFrame()
    counts = frame.groupby(["backend", "precision", "status"]).size().unstack(fill_value=0)
    return counts.reindex(columns=[s for s in STATUSES if s in counts.columns])


def console_table(rows: list[dict[str, Any]]) -> str:
    """Case x (backend, precision) with status and median latency, for the terminal."""
    frame = rows_frame(rows)
    if frame.empty:
        return "(no rows)"
    frame = frame[frame["status"] != "skip"] if (frame["status"] != "skip").any() else frame

    def cell_text(r: pd.Series) -> str:
        if pd.notna(r["latency_ms_median"]) and r["status"] in ("pass", "fail", "xfail"):
            return f"{r['status']} {r['latency_ms_median']:.3g}ms"
        return str(r["status"])

    frame = frame.assign(
        text=frame.apply(cell_text, axis=1),
        column=frame["backend"] + "/" + frame["device"] + "/" + frame["precision"],
    )
    table = frame.pivot_table(index="case", columns="column", values="text", aggfunc="first")
    counts = frame_counts_line(rows)
    return table.fillna("").to_string() + "\n\n" + counts


def frame_counts_line(rows: list[dict[str, Any]]) -> str:
    counts = pd.Series([r.get("status") for r in rows]).value_counts()
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES if s in counts)


def summary_markdown(rows: list[dict[str, Any]], title: str = "torchparity run") -> str:
    frame = rows_frame(rows)
    lines = [f"# {title}", "", f"{len(frame)} cells: {frame_counts_line(rows)}", ""]
    counts = status_counts(frame)
    if not counts.empty:
        lines += ["## Status by backend and precision", "", markdown_table(counts, index=True), ""]
    bad = frame[frame["status"].isin(["fail", "error", "crash", "timeout"])]
    if not bad.empty:
        lines += ["## Failures", ""]
        shown = bad[["case", "device", "precision", "backend", "status", "reason"]].head(50)
        lines += [markdown_table(shown), ""]
    ran = frame[frame["max_rel_err"].notna()]
    if not ran.empty:
        worst = ran.sort_values("max_rel_err", ascending=False).head(10)
        lines += ["## Largest drift (max relative error vs fp64 reference)", ""]
        cols = ["case", "device", "precision", "backend", "max_rel_err", "max_ulp", "cosine"]
        lines += [markdown_table(worst[cols]), ""]
    return "\n".join(lines)


def report_html(rows: list[dict[str, Any]], env: dict[str, Any] | None = None) -> str:
    """A self-contained page (no network): environment and the results table."""
    frame = rows_frame(rows)
    env_rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in (env or {}).items()
    )
    table = frame.to_html(index=False, escape=True, na_rep="", float_format=lambda x: f"{x:.4g}")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>torchparity report</title>"
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 4px}</style></head><body>"
        f"<h1>torchparity report</h1><p>{html.escape(frame_counts_line(rows))}</p>"
        f"<h2>Environment</h2><table>{env_rows}</table><h2>Results</h2>{table}</body></html>"
    )


def render(rows: list[dict[str, Any]], out_dir: Path, env: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write results.csv, summary.md and report.html into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": write_csv(rows, out_dir / RESULTS_CSV),
        "summary": out_dir / "summary.md",
        "html": out_dir / "report.html",
    }
    paths["summary"].write_text(summary_markdown(rows), encoding="utf-8", newline="\n")
    paths["html"].write_text(report_html(rows, env), encoding="utf-8", newline="\n")
    return paths
