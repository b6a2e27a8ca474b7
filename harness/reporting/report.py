"""Reports rendered from results: results.csv, summary.md, report.html, and the
console table. Renderers read rows (and, for a merged report, the run
directories' stored outputs) and nothing else.

The HTML pieces live in ``report_html``, the charts in ``charts``, the
cross-platform view in ``merge``; this module decides what goes on the page.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from harness.reporting import charts, merge
from harness.reporting import html as h
from harness.results import RESULTS_CSV, rows_frame, write_csv

STATUSES = ["pass", "fail", "error", "skip", "crash", "timeout", "xfail"]
BAD_STATUSES = ["fail", "error", "crash", "timeout"]
CELL_KEYS = ["case", "device", "precision", "backend"]


def markdown_table(frame: pd.DataFrame, index: bool = False, floatfmt: str = ".3g") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    if index:
        frame = frame.reset_index()

    def text(v: Any) -> str:
        if isinstance(v, float):
            return "" if pd.isna(v) else format(v, floatfmt)
        # Markup in a reason must show as text in a rendered job summary too.
        text = html.escape(str(v), quote=False)
        return text.replace("|", "\\|").replace("\n", " ")

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


def blame_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Non-pass cells per backend and blame category (harness/verdicts/blame.py)."""
    if frame.empty or "blame" not in frame.columns:
        return pd.DataFrame()
    blamed = frame[(frame["status"] != "pass") & frame["blame"].notna() & (frame["blame"] != "")]
    if blamed.empty:
        return pd.DataFrame()
    counts = blamed.groupby(["backend", "blame"]).size().unstack(fill_value=0)
    counts["total"] = counts.sum(axis=1)
    return counts


def blame_line(rows: list[dict[str, Any]]) -> str:
    """``blame: 12 exporter, 3 pytorch`` over the non-pass cells ('' when none carry one)."""
    counts = pd.Series([r.get("blame") for r in rows if r.get("status") != "pass" and r.get("blame")])
    if counts.empty:
        return ""
    return "blame: " + ", ".join(f"{n} {b}" for b, n in counts.value_counts().items())


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
    blame = blame_line(rows)
    return table.fillna("").to_string() + "\n\n" + counts + (f"\n{blame}" if blame else "")


def frame_counts_line(rows: list[dict[str, Any]]) -> str:
    counts = pd.Series([r.get("status") for r in rows]).value_counts()
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES if s in counts)


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(frame[column], errors="coerce")


def fastest_and_slowest(frame: pd.DataFrame) -> pd.DataFrame:
    """Per case, the measured cell with the highest and the lowest throughput."""
    measured = frame[_numeric(frame, "throughput_items_s").notna()].copy()
    if measured.empty:
        return pd.DataFrame()
    measured["throughput_items_s"] = _numeric(measured, "throughput_items_s")
    measured["cell"] = charts.cell_column(measured)
    records = []
    for case, group in measured.groupby("case", sort=True):
        hi = group.loc[group["throughput_items_s"].idxmax()]
        lo = group.loc[group["throughput_items_s"].idxmin()]
        records.append({"case": case, "fastest": hi["cell"], "fastest items/s": hi["throughput_items_s"],
                        "slowest": lo["cell"], "slowest items/s": lo["throughput_items_s"]})  # fmt: skip
    return pd.DataFrame(records)


def summary_markdown(rows: list[dict[str, Any]], title: str = "torchparity run") -> str:
    """Short Markdown for CI job summaries: counts by status, failures not
    marked known, worst drifts, fastest and slowest cell per case."""
    frame = rows_frame(rows)
    lines = [f"# {title}", "", f"{len(frame)} cells: {frame_counts_line(rows)}", ""]
    counts = status_counts(frame)
    if not counts.empty:
        lines += ["## Status by backend and precision", "", markdown_table(counts, index=True), ""]
    blame = blame_counts(frame)
    if not blame.empty:
        lines += ["## Non-pass cells by blame", "", markdown_table(blame, index=True), ""]
    surprises = frame[frame["expectation"].isin(["unexpected pass", "changed"])] \
        if "expectation" in frame.columns else frame.iloc[0:0]
    if not surprises.empty:
        lines += ["## Differs from expectations (unexpected passes, changed statuses)", "",
                  markdown_table(surprises[[*CELL_KEYS, "status", "expectation", "reason"]].head(50)), ""]
    bad = frame[frame["status"].isin(BAD_STATUSES)]
    lines += ["## New failures (not marked as known)", ""]
    if bad.empty:
        lines += ["None.", ""]
    else:
        shown = bad[[*CELL_KEYS, "status", "reason"]].head(50)
        lines += [markdown_table(shown), ""]
        if len(bad) > 50:
            lines += [f"... and {len(bad) - 50} more in results.csv", ""]
    ran = frame[_numeric(frame, "max_rel_err").notna()]
    if not ran.empty:
        worst = ran.assign(max_rel_err=_numeric(ran, "max_rel_err")).sort_values(
            "max_rel_err", ascending=False).head(10)  # fmt: skip
        lines += ["## Largest drift (max relative error vs fp64 reference)", ""]
        lines += [markdown_table(worst[[*CELL_KEYS, "max_rel_err", "max_ulp", "cosine"]]), ""]
    speed = fastest_and_slowest(frame)
    if not speed.empty:
        lines += ["## Fastest and slowest cell per case", "", markdown_table(speed), ""]
    return "\n".join(lines)


_ENV_HEADER = [
    "run_id", "host", "os", "platform", "cpu", "cores", "memory_bytes", "python", "torch",
    "onnxruntime", "onnx", "cuda", "cudnn", "gpu", "torch_threads", "git_sha", "start_time",
    "fingerprint",
]  # fmt: skip


def _header(rows: list[dict[str, Any]], env: dict[str, Any] | None, runs: list[merge.LoadedRun] | None) -> str:
    counts = f"{len(rows)} cells: {frame_counts_line(rows)}"
    if runs and len(runs) > 1:
        platforms = pd.DataFrame([
            {"platform": r.platform, "run_id": r.env.get("run_id") or r.run_dir.name,
             "cells": len(r.rows), "fingerprint": r.env.get("fingerprint"),
             "start_time": r.env.get("start_time"), "cpu": r.env.get("cpu"),
             "python": r.env.get("python")}
            for r in runs
        ])  # fmt: skip
        return h.section("Runs", f"<p>{h.esc(counts)}</p>" + h.table(platforms, "runs", False), "runs")
    env = env or {}
    shown = {k: env.get(k) for k in _ENV_HEADER if env.get(k) not in (None, "", [])}
    rest = {k: v for k, v in env.items() if k not in shown and v not in (None, "", [])}
    extra = f"<details><summary>all environment fields</summary>{h.definition_list(rest)}</details>" if rest else ""
    return h.section("Run and environment", f"<p>{h.esc(counts)}</p>{h.definition_list(shown)}{extra}", "env")


def _cols(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    return frame[[c for c in names if c in frame.columns]]


def report_html(
    rows: list[dict[str, Any]],
    env: dict[str, Any] | None = None,
    runs: list[merge.LoadedRun] | None = None,
) -> str:
    """The self-contained page (no network): header, status matrix, throughput,
    latency, drift, prepare times, errors, cross-platform view (when ``runs``
    holds several run directories), all results."""
    frame = rows_frame(rows)
    merged = bool(runs and len(runs) > 1)
    where = ["platform"] if merged and "platform" in frame.columns else []
    sections = [_header(rows, env, runs)]

    column = charts.cell_column(frame) if not frame.empty else pd.Series(dtype=str)
    sections.append(h.section(
        "Status matrix",
        "<p class='muted'>case x device/backend/precision; hover a cell for its reason.</p>"
        + h.status_matrix(frame, column),
        "matrix",
    ))  # fmt: skip

    measured = frame[_numeric(frame, "throughput_items_s").notna()]
    speed = charts.speedup_table(frame)
    throughput = _cols(measured, [*CELL_KEYS, *where, "batch", "latency_ms_median", "latency_ms_iqr",
                                  "latency_ms_p90", "iterations", "throughput_items_s"])  # fmt: skip
    speed_note = "Speedup needs a backend besides eager at the same case, device and precision."
    sections.append(h.section(
        "Throughput",
        "<h3>Speedup over eager</h3>" + h.chart(charts.speedup_chart(frame), speed_note)
        + ("" if speed.empty else h.table(speed.reset_index(), "speedup"))
        + "<h3>Throughput per case</h3>" + h.chart(charts.throughput_chart(frame), "Nothing was measured.")
        + h.table(throughput, "throughput"),
        "throughput",
    ))  # fmt: skip
    sections.append(h.section(
        "Latency distributions",
        "<p class='muted'>per-call latency of each timed block (box: quartiles).</p>"
        + h.chart(charts.latency_distributions(rows), "No timing samples."),
        "latency",
    ))  # fmt: skip
    drift = _cols(frame[_numeric(frame, "max_rel_err").notna()],
                  [*CELL_KEYS, *where, "status", "max_abs_err", "max_rel_err", "max_ulp", "cosine",
                   "mismatch_frac", "atol", "rtol", "eager_max_abs_diff"])  # fmt: skip
    sections.append(h.section(
        "Drift vs the fp64 reference",
        "<p class='muted'>log10 of the max relative error; lower is closer.</p>"
        + h.chart(charts.drift_heatmap(frame), "No outputs were compared.") + h.table(drift, "drift"),
        "drift",
    ))  # fmt: skip
    prepared = frame[_numeric(frame, "prepare_s").notna()]
    prepared = prepared.assign(prepare_s=_numeric(prepared, "prepare_s")).sort_values("prepare_s", ascending=False)
    sections.append(h.section("Prepare times", h.table(_cols(prepared, [*CELL_KEYS, *where, "prepare_s"]),
                                                       "prepare"), "prepare"))  # fmt: skip
    blame = blame_counts(frame)
    if not blame.empty:
        sections.append(h.section(
            "Blame",
            "<p class='muted'>non-pass cells per backend and blamed component "
            "(from the expectations file, else guessed by rule: column blame_source).</p>"
            + h.table(blame.reset_index(), "blame"),
            "blame",
        ))  # fmt: skip
    sections.append(h.section("Errors and divergences", _problems(rows, where), "problems"))
    if merged and runs:
        cross = merge.cross_platform(runs)
        note = ("<p class='muted'>per cell: the output digest on each platform and the largest "
                "elementwise output difference between any two platforms (from the stored outputs: "
                "every element of small outputs, a fixed sample of large ones).</p>")  # fmt: skip
        sections.append(h.section("Cross-platform", note + h.table(cross, "cross-platform"), "cross"))
    sections.append(h.section("All results", h.table(frame, "results"), "results"))
    return h.page("torchparity report", sections, subtitle=frame_counts_line(rows))


def _problems(rows: list[dict[str, Any]], where: list[str]) -> str:
    bad = [r for r in rows if r.get("status") in (*BAD_STATUSES, "xfail")]
    if not bad:
        return "<p>No failures, errors, crashes or timeouts.</p>"
    frame = pd.DataFrame([{**{k: r.get(k) for k in [*CELL_KEYS, *where, "status", "reason"]},
                           "stage": r.get("error_stage"), "blame": r.get("blame"),
                           "reproducer": r.get("reproducer")} for r in bad])  # fmt: skip
    traces = "".join(
        f"<details><summary>{h.esc(r.get('case'))} {h.esc(r.get('device'))}/{h.esc(r.get('backend'))}/"
        f"{h.esc(r.get('precision'))}: traceback</summary><pre>{h.esc(r['traceback'])}</pre></details>"
        for r in bad
        if r.get("traceback")
    )
    return h.table(frame, "problems") + traces


def _write_all(rows: list[dict[str, Any]], out_dir: Path, page: str, title: str) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": write_csv(rows, out_dir / RESULTS_CSV),
        "summary": out_dir / "summary.md",
        "html": out_dir / "report.html",
    }
    paths["summary"].write_text(summary_markdown(rows, title), encoding="utf-8", newline="\n")
    paths["html"].write_text(page, encoding="utf-8", newline="\n")
    return paths


def render(rows: list[dict[str, Any]], out_dir: Path, env: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write results.csv, summary.md and report.html for one run into ``out_dir``."""
    return _write_all(rows, out_dir, report_html(rows, env), "torchparity run")


def render_runs(runs: list[merge.LoadedRun], out_dir: Path) -> dict[str, Path]:
    """Render one run directory, or merge several into one report with the
    cross-platform view (rows carry a ``platform`` column)."""
    if len(runs) == 1:
        return render(runs[0].rows, out_dir, runs[0].env)
    rows = merge.merged_rows(runs)
    return _write_all(rows, out_dir, report_html(rows, None, runs), "torchparity merged report")
