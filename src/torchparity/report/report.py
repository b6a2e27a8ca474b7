"""Reports rendered from results: results.csv, summary.md, report.html, and the
console table. Renderers read rows (and, for a merged report, the run
directories' stored outputs) and nothing else.

The HTML pieces live in ``report_html``, the charts in ``charts``, the
cross-platform view in ``merge``; this module decides what goes on the page.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from torchparity._core.console import plural
from torchparity._core.row import CELL_COLUMNS, partial_timing_note, rows_frame
from torchparity._core.rundir import RunDir
from torchparity._core.status import BAD_STATUSES, MEASURED_STATUSES, STATUSES, Status
from torchparity.report import charts, generation, merge, zoo
from torchparity.report import frames as fr
from torchparity.report import html as h
from torchparity.report import languages as lang
from torchparity.report.markdown import markdown_table
from torchparity.report.shapes import shape_table

CELL_KEYS = CELL_COLUMNS


def status_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts of each status per runtime language, mode, backend and precision."""
    if frame.empty:
        return pd.DataFrame()
    frame = (
        frame.assign(mode=frame["mode"].fillna("infer"))
        if "mode" in frame.columns
        else frame.assign(mode="infer")
    )
    keys = [lang.LANGUAGE, "mode", "backend", "precision", "status"]
    grouped = lang.grouped_by_language(frame).groupby(keys, observed=True)
    counts = fr.as_frame(grouped.size().unstack(fill_value=0))
    return counts.reindex(columns=[s for s in STATUSES if s in counts.columns])


def blame_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Non-pass cells per backend and blame category (src/torchparity/verdicts/blame.py)."""
    if frame.empty or "blame" not in frame.columns:
        return pd.DataFrame()
    blamed = fr.rows(
        frame, (frame["status"] != Status.PASS) & frame["blame"].notna() & (frame["blame"] != "")
    )
    if blamed.empty:
        return pd.DataFrame()
    counts = fr.as_frame(blamed.groupby(["backend", "blame"]).size().unstack(fill_value=0))
    counts["total"] = counts.sum(axis=1)
    return counts


def blame_line(rows: list[dict[str, Any]]) -> str:
    """``blame: 12 exporter, 3 pytorch`` over the non-pass cells ('' when none carry one)."""
    counts = pd.Series(
        [r.get("blame") for r in rows if r.get("status") != Status.PASS and r.get("blame")]
    )
    if counts.empty:
        return ""
    return "blame: " + ", ".join(f"{n} {b}" for b, n in counts.value_counts().items())


def console_table(rows: list[dict[str, Any]]) -> str:
    """Case x (backend, precision) with status and median latency, for the
    terminal; the columns grouped under their runtime language."""
    frame = rows_frame(lang.with_language_columns(h.shown_rows(rows)))
    if frame.empty:
        return "(no rows)"
    ran = frame["status"] != Status.SKIP
    frame = fr.rows(frame, ran) if ran.any() else frame

    def cell_text(r: pd.Series) -> str:
        text, latency = str(r["status"]), r["latency_ms_median"]
        if (
            isinstance(latency, int | float)
            and not math.isnan(latency)
            and text in MEASURED_STATUSES
        ):
            text = f"{text} {latency:.3g}ms"
        ran = r["effective_precision"]
        return f"{text} (ran {ran})" if isinstance(ran, str) and ran != r["precision"] else text

    mode = frame["mode"].map(lambda m: f"/{m}" if isinstance(m, str) and m != "infer" else "")
    # A batch sweep's cells differ only in their batch (``|batch=N`` ends the id).
    ids = frame["cell_id"] if "cell_id" in frame.columns else pd.Series("", index=frame.index)
    swept = ids.map(
        lambda c: "/" + c.rsplit("|", 1)[1] if isinstance(c, str) and "|batch=" in c else ""
    )
    frame = frame.assign(
        text=frame.apply(cell_text, axis=1),
        column=frame["backend"] + "/" + frame["device"] + "/" + frame["precision"] + mode + swept,
    )
    table = lang.grouped_by_language(frame).pivot_table(
        index="case",
        columns=[lang.LANGUAGE, "column"],
        values="text",
        aggfunc="first",
        observed=True,
    )
    table.columns.names = [None, None]  # the language above its backends' columns, no axis names
    counts = frame_counts_line(rows)
    blame = blame_line(rows)
    reasons = reason_lines(rows)
    return (
        table.fillna("").to_string()
        + "\n\n"
        + counts
        + (f"\n{blame}" if blame else "")
        + "".join(f"\n{line}" for line in reasons)
    )


def reason_lines(rows: list[dict[str, Any]], shown: int = 8, width: int = 160) -> list[str]:
    """The reasons of the cells that did not pass (skips aside), grouped: how many
    cells, their status and backends, the reason's first line; the most frequent
    ``shown`` groups, then how many more (summary.md has every row)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        status = str(r.get("status") or "")
        if status in (Status.PASS, Status.SKIP):
            continue
        reason = (str(r.get("reason") or "").strip().splitlines() or ["(no reason recorded)"])[0]
        groups.setdefault((status, reason), []).append(str(r.get("backend") or "?"))
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    lines = []
    for (status, reason), backends in ordered[:shown]:
        where = ", ".join(dict.fromkeys(backends))
        text = f"  {len(backends)} {status} ({where}): {reason}"
        lines.append(text if len(text) <= width else text[: width - 3] + "...")
    if len(ordered) > shown:
        lines.append(f"  ... {len(ordered) - shown} more reasons: see summary.md")
    return ["reasons:", *lines] if lines else []


def frame_counts_line(rows: list[dict[str, Any]]) -> str:
    counts = pd.Series([r.get("status") for r in rows]).value_counts()
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES if s in counts)


_numeric = fr.numeric


TRAINING_COLUMNS = [
    "case",
    "device",
    "backend",
    "precision",
    "optimizer",
    "steps",
    "status",
    "loss_max_rel_err",
    "loss_bound",
    "grad_rel_err",
    "grad_bound",
    "update_rel_err",
    "update_bound",
    "steps_per_s",
    "throughput_items_s",
    "prepare_s",
    "allreduce_overhead_ms",
    "amp_scale_final",
    "amp_skipped_steps",
    "reason",
]
DATALOADER_COLUMNS = [
    "num_workers",
    "start_method",
    "persistent_workers",
    "pin_memory",
    "status",
    "samples_s",
    "first_batch_s",
    "peak_rss_mb",
    "batch",
    "samples",
    "epochs",
    "reason",
]


def training_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Train cells: the three drift metrics beside their bounds, steps/s, compile and all-reduce cost."""
    frame = rows_frame(rows)
    train = fr.rows(frame, frame["mode"] == "train")
    return _cols(train, TRAINING_COLUMNS)


def dataloader_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """DataLoader configurations (rows of kind ``data``), fastest first."""
    frame = rows_frame(rows)
    data = fr.rows(frame, frame["kind"] == "data")
    if data.empty:
        return _cols(data, DATALOADER_COLUMNS)
    data = data.assign(samples_s=_numeric(data, "samples_s")).sort_values(
        "samples_s", ascending=False
    )
    return _cols(data, DATALOADER_COLUMNS)


def _training_sections(rows: list[dict[str, Any]]) -> list[str]:
    """The summary's Training and DataLoader tables (when the run has such rows)."""
    lines: list[str] = []
    for title, table in (
        ("Training (train cells vs the fp64 reference run)", training_table(rows)),
        ("DataLoader", dataloader_table(rows)),
    ):
        if not table.empty:
            lines += [f"## {title}", "", markdown_table(table), ""]
    return lines


def fastest_and_slowest(frame: pd.DataFrame) -> pd.DataFrame:
    """Per case, the measured cell with the highest and the lowest throughput."""
    measured = fr.rows(frame, _numeric(frame, "throughput_items_s").notna()).copy()
    if measured.empty:
        return pd.DataFrame()
    measured["throughput_items_s"] = _numeric(measured, "throughput_items_s")
    measured["cell"] = charts.cell_column(measured)
    records = []
    for case, group in measured.groupby("case", sort=True):
        hi = group.loc[group["throughput_items_s"].idxmax()]
        lo = group.loc[group["throughput_items_s"].idxmin()]
        records.append(
            {
                "case": case,
                "fastest": hi["cell"],
                "fastest items/s": hi["throughput_items_s"],
                "slowest": lo["cell"],
                "slowest items/s": lo["throughput_items_s"],
            }
        )
    return pd.DataFrame(records)


def largest_drift(frame: pd.DataFrame, count: int = 10) -> pd.DataFrame:
    """The cells that used most of their tolerance (``tolerance_used``, the
    verdict's own metric over its bound); rows without it (older runs) rank
    by max_rel_err after those that have it."""
    ran = fr.rows(frame, _numeric(frame, "max_rel_err").notna())
    if ran.empty:
        return ran
    used = (
        _numeric(ran, "tolerance_used")
        if "tolerance_used" in ran.columns
        else pd.Series(float("nan"), index=ran.index)
    )
    ranked = ran.assign(tolerance_used=used, _rel=_numeric(ran, "max_rel_err"))
    return (
        ranked.sort_values(["tolerance_used", "_rel"], ascending=False, na_position="last")
        .drop(columns="_rel")
        .head(count)
    )


def absent_devices_line(env: dict[str, Any] | None) -> str:
    """`--device present`: the device kinds this machine lacks, one line."""
    absent = (env or {}).get("absent_devices") or {}
    if not isinstance(absent, dict) or not absent:
        return ""
    return "absent devices (not run): " + "; ".join(f"{d}: {why}" for d, why in absent.items())


def paired_speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """Each backend's paired speedup over eager with its 95% interval."""
    if "speedup_vs_eager" not in frame.columns:
        return pd.DataFrame()
    have = fr.rows(frame, _numeric(frame, "speedup_vs_eager").notna())
    if have.empty:
        return have
    fmt = lambda v: f"{float(v):.2f}" if pd.notna(v) else ""  # noqa: E731
    return pd.DataFrame(
        {
            **{k: have[k] for k in CELL_KEYS},
            "speedup": [fmt(v) for v in have["speedup_vs_eager"]],
            "95% interval": [
                f"{fmt(lo)}-{fmt(hi)}" if pd.notna(lo) else ""
                for lo, hi in zip(
                    fr.column_or_nan(have, "speedup_ci_low"),
                    fr.column_or_nan(have, "speedup_ci_high"),
                    strict=True,
                )
            ],
            "rounds": have.get("rounds"),
        }
    )


def native_vs_python(frame: pd.DataFrame) -> pd.DataFrame:
    """Per cell of a C++ backend (its rows name the Python backend whose
    artifact it ran, ``backend_artifact_of``): the same artifact's median
    latency from Python and from C++, their ratio and the difference (the
    cost of the Python front end per call)."""
    if frame.empty or "backend_artifact_of" not in frame.columns:
        return pd.DataFrame()
    keys = [k for k in ("case", "device", "precision", "mode", "platform") if k in frame.columns]
    measured = fr.rows(frame, _numeric(frame, "latency_ms_median").notna())
    # Missing key values (no mode in an old row) as "": a NaN in a dict key never matches.
    measured = measured.assign(**{k: measured[k].fillna("") for k in keys})
    python = measured.set_index([*keys, "backend"])["latency_ms_median"].astype(float)
    python_ms = python.to_dict()  # the last row of a cell wins, as in results.jsonl
    records = []
    for row in fr.rows(measured, measured["backend_artifact_of"].notna()).to_dict("records"):
        key = (*[row[k] for k in keys], row["backend_artifact_of"])
        if key not in python_ms:
            continue
        py_ms, cpp_ms = float(python_ms[key]), float(row["latency_ms_median"])
        records.append(
            {
                **{k: row[k] for k in keys},
                "artifact": row["backend_artifact_of"],
                "python_ms": py_ms,
                "cpp_ms": cpp_ms,
                "cpp/python": cpp_ms / py_ms,
                "python_overhead_ms": py_ms - cpp_ms,
                "cpp_vs_python_max_abs_diff": row.get("backend_python_max_abs_diff"),
            }
        )
    return pd.DataFrame(records)


def summary_markdown(
    rows: list[dict[str, Any]], title: str = "torchparity run", env: dict[str, Any] | None = None
) -> str:
    """Short Markdown for CI job summaries: counts by status, failures not
    marked known, worst drifts, paired speedups, fastest and slowest cell per case."""
    rows = lang.with_language_columns(h.shown_rows(rows))
    frame = rows_frame(rows)
    lines = [f"# {title}", "", f"{plural(len(frame), 'cell')}: {frame_counts_line(rows)}", ""]
    if absent_devices_line(env):
        lines += [absent_devices_line(env), ""]
    partial = partial_timing_note(rows)
    if partial:
        lines += [partial, ""]
    languages = lang.language_table(frame)
    if not languages.empty:
        lines += ["## By runtime language", "", markdown_table(languages), ""]
    counts = status_counts(frame)
    if not counts.empty:
        lines += [
            "## Status by backend and precision (grouped by runtime language)",
            "",
            markdown_table(counts, index=True),
            "",
        ]
    blame = blame_counts(frame)
    if not blame.empty:
        lines += ["## Non-pass cells by blame", "", markdown_table(blame, index=True), ""]
    surprises = (
        fr.rows(frame, frame["expectation"].isin(["unexpected pass", "changed"]))
        if "expectation" in frame.columns
        else frame.iloc[0:0]
    )
    if not surprises.empty:
        lines += [
            "## Differs from expectations (unexpected passes, changed statuses)",
            "",
            markdown_table(
                _cols(surprises, [*CELL_KEYS, "status", "expectation", "reason"]).head(50)
            ),
            "",
        ]
    shapes = shape_table(rows)
    if not shapes.empty:
        lines += ["## Shape generalisation (silent-* first)", "", markdown_table(shapes), ""]
    bad = fr.rows(frame, frame["status"].isin(list(BAD_STATUSES)))
    lines += ["## New failures (not marked as known)", ""]
    if bad.empty:
        lines += ["None.", ""]
    else:
        shown = _cols(bad, [*CELL_KEYS, "status", "reason"]).head(50)
        lines += [markdown_table(shown), ""]
        if len(bad) > 50:
            lines += [f"... and {len(bad) - 50} more in results.csv", ""]
    worst = largest_drift(frame)
    if not worst.empty:
        lines += ["## Largest drift (share of its tolerance the verdict used; > 1 fails)", ""]
        lines += [
            markdown_table(
                _cols(
                    worst,
                    [
                        *CELL_KEYS,
                        "status",
                        "tolerance_used",
                        "rel_l2",
                        "max_rel_err",
                        "max_ulp",
                        "cosine",
                    ],
                )
            ),
            "",
        ]
    paired = paired_speedups(frame)
    if not paired.empty:
        lines += [
            "## Speedup over eager (paired blocks, 95% bootstrap interval)",
            "",
            markdown_table(paired),
            "",
        ]
    lines += _training_sections(rows)
    speed = fastest_and_slowest(frame)
    if not speed.empty:
        lines += ["## Fastest and slowest cell per case", "", markdown_table(speed), ""]
    native = native_vs_python(frame)
    if not native.empty:
        lines += [
            "## Same artifact, Python vs C++ (median latency)",
            "",
            markdown_table(native),
            "",
        ]
    return "\n".join(lines)


_ENV_HEADER = [
    "run_id",
    "host",
    "os",
    "platform",
    "cpu",
    "cores",
    "memory_bytes",
    "python",
    "torch",
    "onnxruntime",
    "onnx",
    "cuda",
    "cudnn",
    "gpu",
    "torch_threads",
    "git_sha",
    "start_time",
    "fingerprint",
]


def _header(
    rows: list[dict[str, Any]], env: dict[str, Any] | None, runs: list[merge.LoadedRun] | None
) -> str:
    counts = f"{plural(len(rows), 'cell')}: {frame_counts_line(rows)}"
    if runs and len(runs) > 1:
        platforms = pd.DataFrame(
            [
                {
                    "platform": r.platform,
                    "run_id": r.env.get("run_id") or r.run_dir.name,
                    "cells": len(r.rows),
                    "fingerprint": r.env.get("fingerprint"),
                    "start_time": r.env.get("start_time"),
                    "cpu": r.env.get("cpu"),
                    "python": r.env.get("python"),
                }
                for r in runs
            ]
        )
        return h.section(
            "Runs", f"<p>{h.esc(counts)}</p>" + h.table(platforms, "runs", False), "runs"
        )
    partial = partial_timing_note(rows)
    if partial:
        counts += "; " + partial
    env = env or {}
    if absent_devices_line(env):
        counts += "; " + absent_devices_line(env)
    shown = {k: env.get(k) for k in _ENV_HEADER if env.get(k) not in (None, "", [])}
    rest = {k: v for k, v in env.items() if k not in shown and v not in (None, "", [])}
    extra = (
        f"<details><summary>all environment fields</summary>{h.definition_list(rest)}</details>"
        if rest
        else ""
    )
    return h.section(
        "Run and environment", f"<p>{h.esc(counts)}</p>{h.definition_list(shown)}{extra}", "env"
    )


_cols = fr.columns


def _table_section(title: str, table: pd.DataFrame, anchor: str, note: str) -> list[str]:
    """A section of a muted note over ``table``; none when the table is empty."""
    if table.empty:
        return []
    return [h.section(title, f"<p class='muted'>{note}</p>" + h.table(table, anchor), anchor)]


def _speed_sections(frame: pd.DataFrame, rows: list[dict[str, Any]], where: list[str]) -> list[str]:
    """Throughput and paired speedup, Python vs C++, latency distributions."""
    sections: list[str] = []
    measured = fr.rows(frame, _numeric(frame, "throughput_items_s").notna())
    speed = charts.speedup_table(frame)
    throughput = _cols(
        measured,
        [
            *CELL_KEYS,
            lang.LANGUAGE,
            "effective_precision",
            *where,
            "batch",
            "latency_ms_median",
            "latency_ms_iqr",
            "latency_ms_p90",
            "iterations",
            "throughput_items_s",
        ],
    )
    speed_note = "Speedup needs a backend besides eager at the same case, device and precision."
    sections.append(
        h.section(
            "Throughput",
            "<h3>Speedup over eager</h3>"
            + h.chart(charts.speedup_chart(frame), speed_note)
            + ("" if speed.empty else h.table(speed.reset_index(), "speedup"))
            + "<h3>Throughput per case</h3>"
            + h.chart(charts.throughput_chart(frame), "Nothing was measured.")
            + h.table(throughput, "throughput"),
            "throughput",
        )
    )
    tradeoff = charts.tradeoff_frame(frame)
    if not tradeoff.empty:
        sections.append(
            h.section(
                "Speed vs accuracy",
                "<p class='muted'>per case, every measured cell: speedup over fp32 eager (ratio of "
                "median latencies, same case and device) against agreement loss, 1 - cosine (int8 "
                "cells: against fp32 eager; float cells: against the fp64 reference). Ringed and "
                "joined: the Pareto front (no other cell is both faster and closer); losses below 1e-9 "
                "are drawn at 1e-9.</p>"
                + h.chart(charts.tradeoff_chart(frame), "Needs eager at fp32 in the run.")
                + h.table(tradeoff, "tradeoff"),
                "tradeoff",
            )
        )
    sweeps = charts.batch_sweep_charts(rows)
    if sweeps:
        sections.append(
            h.section(
                "Batch sweep",
                "<p class='muted'>latency and throughput against batch (--batch), a line per "
                "device/backend/precision; bars: the samples' interquartile range.</p>"
                + "".join(f"<h3>{h.esc(case)}</h3>" + h.chart(svg, "") for case, svg in sweeps),
                "batch-sweep",
            )
        )
    sections += _table_section(
        "Python vs C++",
        native_vs_python(frame),
        "native",
        "the same artifact run from Python and by the C++ runner: median latency per call, the ratio "
        "C++/Python, and the Python front end's cost per call.",
    )
    sections.append(
        h.section(
            "Latency distributions",
            "<p class='muted'>per-call latency of each timed block (box: quartiles).</p>"
            + h.chart(charts.latency_distributions(rows), "No timing samples."),
            "latency",
        )
    )
    return sections


def _drift_sections(frame: pd.DataFrame, rows: list[dict[str, Any]], where: list[str]) -> list[str]:
    """Drift vs the fp64 reference (ranked by tolerance_used) and prepare times."""
    sections: list[str] = []
    drift = _cols(
        largest_drift(frame, len(frame)),
        [
            *CELL_KEYS,
            "effective_precision",
            *where,
            "status",
            "tolerance_used",
            "rel_l2",
            "max_abs_err",
            "max_rel_err",
            "max_ulp",
            "cosine",
            "mismatch_frac",
            "atol",
            "rtol",
            "eager_max_abs_diff",
        ],
    )
    sections.append(
        h.section(
            "Drift vs the fp64 reference",
            "<p class='muted'>log10 of the max relative error (at each output's scale); lower is closer. "
            "The table ranks cells by tolerance_used, the verdict's metric over its bound (> 1 fails).</p>"
            + h.chart(charts.drift_heatmap(frame), "No outputs were compared.")
            + h.table(drift, "drift"),
            "drift",
        )
    )
    prepared = fr.rows(frame, _numeric(frame, "prepare_s").notna())
    prepared = prepared.assign(prepare_s=_numeric(prepared, "prepare_s")).sort_values(
        "prepare_s", ascending=False
    )
    sections.append(
        h.section(
            "Prepare times",
            h.table(_cols(prepared, [*CELL_KEYS, *where, "prepare_s"]), "prepare"),
            "prepare",
        )
    )
    return sections


def _mode_sections(frame: pd.DataFrame, rows: list[dict[str, Any]], where: list[str]) -> list[str]:
    """Training, DataLoader and blame tables, when the run has such rows."""
    return [
        *_table_section(
            "Shape generalisation",
            shape_table(rows),
            "shapes",
            "shape mode: each artifact built once at the export shape with its dims declared "
            "dynamic, run at other shapes, against eager there (docs/shapes.md). silent-mismatch: "
            "other numbers; silent-static: the asked dynamism dropped; loud-error: refused.",
        ),
        *_table_section(
            "Training",
            training_table(rows),
            "training",
            "train cells: relative errors vs the fp64 reference training run beside their bounds "
            "(docs/training.md); step throughput; compile time in prepare_s.",
        ),
        *_table_section(
            "DataLoader",
            dataloader_table(rows),
            "dataloader",
            "synthetic CIFAR-10 through torch.utils.data.DataLoader; peak memory includes the worker "
            "processes.",
        ),
        *_table_section(
            "Blame",
            blame_counts(frame).reset_index(),
            "blame",
            "non-pass cells per backend and blamed component (from the expectations file, else guessed "
            "by rule: column blame_source).",
        ),
    ]


def report_html(
    rows: list[dict[str, Any]],
    env: dict[str, Any] | None = None,
    runs: list[merge.LoadedRun] | None = None,
    localizations: list[dict[str, Any]] | None = None,
    generations: list[dict[str, Any]] | None = None,
) -> str:
    """The self-contained page (no network): header, status matrix, throughput,
    latency, drift, prepare times, errors, cross-platform view (when ``runs``
    holds several run directories), all results."""
    rows = lang.with_language_columns(h.shown_rows(rows))
    frame = rows_frame(rows)
    merged = bool(runs and len(runs) > 1)
    where = ["platform"] if merged and "platform" in frame.columns else []
    # The zoo's compatibility matrix is what a zoo run is for: it comes first.
    sections = [s for s in (zoo.html_section(rows),) if s] + [_header(rows, env, runs)]

    sections.append(_matrix_section(frame))

    sections += _speed_sections(frame, rows, where)
    sections += _drift_sections(frame, rows, where)
    sections += [s for s in (generation.html_section(rows, generations or []),) if s]
    sections += _mode_sections(frame, rows, where)
    sections.append(h.section("Errors and divergences", _problems(rows, where), "problems"))
    if localizations:
        sections.append(
            h.section("Where it diverges", _localization_section(localizations), "localization")
        )
    if merged and runs:
        cross = merge.cross_platform(runs)
        note = (
            "<p class='muted'>per cell: the output digest on each platform and the largest "
            "elementwise output difference between any two platforms (from the stored outputs: "
            "every element of small outputs, a fixed sample of large ones).</p>"
        )
        sections.append(
            h.section("Cross-platform", note + h.table(cross, "cross-platform"), "cross")
        )
    sections.append(h.section("All results", h.table(frame, "results"), "results"))
    return h.fit_page("torchparity report", sections, frame_counts_line(rows))


def _matrix_section(frame: pd.DataFrame) -> str:
    """The status matrix, its columns grouped by runtime language, and the count per language."""
    column = charts.cell_column(frame) if not frame.empty else pd.Series(dtype=str)
    languages = lang.languages_of(frame)
    matrix = h.status_matrix(frame, column, languages, lang.language_order(languages))
    return h.section(
        "Status matrix",
        "<p class='muted'>case x device/backend/precision, grouped by the runtime language "
        "the backend is called from; hover a cell for its reason.</p>"
        + matrix
        + "<h3>By runtime language</h3>"
        + h.table(lang.language_table(frame), "languages", False),
        "matrix",
    )


def _problems(rows: list[dict[str, Any]], where: list[str]) -> str:
    bad = [r for r in rows if r.get("status") in BAD_STATUSES | {"xfail"}]
    if not bad:
        return "<p>No failures, errors, crashes or timeouts.</p>"
    frame = pd.DataFrame(
        [
            {
                **{k: r.get(k) for k in [*CELL_KEYS, *where, "status", "reason"]},
                "stage": r.get("error_stage"),
                "blame": r.get("blame"),
                "reproducer": r.get("reproducer"),
            }
            for r in bad
        ]
    )
    traces = "".join(
        f"<details><summary>{h.esc(r.get('case'))} {h.esc(r.get('device'))}/{h.esc(r.get('backend'))}/"
        f"{h.esc(r.get('precision'))}: traceback</summary><pre>{h.esc(r['traceback'])}</pre></details>"
        for r in bad
        if r.get("traceback")
    )
    return h.table(frame, "problems") + traces


_LOCALIZATION_NOTE = (
    "<p class='muted'>per layer (completion order): relative L2 error vs the fp64 reference "
    "<b>accumulated</b> (fed by the backend's own upstream values) and <b>isolated</b> (the layer "
    "alone, fed the reference's inputs cast to the cell's precision), as a share of the bound; "
    "the culprit is the first layer whose isolated error exceeds it. A shape cell's layers are "
    "built at the export shape and compared with eager at the run shape. "
    "See docs/localization.md.</p>"
)


def shown_path(path: Path) -> str:
    """``path`` as a person at this working directory types it: relative when
    that is shorter, quoted when it holds a space."""
    text = str(path.resolve())
    with contextlib.suppress(ValueError):  # another drive (Windows): the absolute path
        relative = os.path.relpath(path)
        text = relative if len(relative) < len(text) else text
    return f'"{text}"' if " " in text else text


def localization_summary(record: dict[str, Any], where: Path | None = None) -> str:
    """One paragraph: the culprit (or why none), notes, reproducer, time.
    ``where``: the directory of the reproducer's files, so that the command
    printed works from the current directory."""
    cell = "/".join(str(record.get(k)) for k in ("case", "device", "backend", "precision"))
    culprit = record.get("culprit")
    if record.get("run_shape"):  # a shape cell: built at one shape, wrong at another
        cell += f" at {record['run_shape']} (built at {record.get('export_shape')})"
    lines = [
        f"{cell}: culprit {culprit} ({record.get('culprit_op')})"
        if culprit
        else f"{cell}: no single layer exceeds its bound"
    ]
    lines += [f"note: {n}" for n in record.get("notes") or []]
    share = record.get("tapped_share")
    if isinstance(share, int | float) or share == "inf":
        hint = (
            (
                " (if the cell failed, it diverges only untapped, e.g. when layers fuse: trust the "
                "isolated column)"
            )
            if float(share) <= 1
            else ""
        )
        lines.append(f"the tapped model's own output: {float(share):.3g} of its bound{hint}")
    repro = record.get("reproducer")
    if isinstance(repro, dict):
        script, command = str(repro.get("script")), str(repro.get("command"))
        if where is not None:
            shown = shown_path(where / script)
            command = command.replace(f"--case-file {script}", f"--case-file {shown}")
            script = shown
        lines.append(f"reproducer: {script} ({repro.get('inputs')}): {command}")
    if isinstance(record.get("seconds"), int | float):
        lines.append(f"localized in {record['seconds']:.1f} s")
    return "\n".join(lines)


def _localization_section(records: list[dict[str, Any]]) -> str:
    parts = [_LOCALIZATION_NOTE]
    for record in records:
        layers = pd.DataFrame([r for r in record.get("layers", []) if isinstance(r, dict)])
        summary = "".join(
            f"<p>{h.esc(line)}</p>" for line in localization_summary(record).splitlines()
        )
        parts.append(
            f"<h3>{h.esc(record.get('cell_id'))}</h3>{summary}"
            + h.table(layers, f"localization-{len(parts)}")
        )
    return "".join(parts)


def _write_all(
    rows: list[dict[str, Any]],
    out_dir: Path,
    page: str,
    title: str,
    env: dict[str, Any] | None = None,
) -> dict[str, Path]:
    run_dir = RunDir(out_dir).create()
    return {
        "csv": run_dir.write_csv(rows_frame(rows)),
        "summary": run_dir.write_text(run_dir.summary_md.name, summary_markdown(rows, title, env)),
        "html": run_dir.write_text(run_dir.report_html.name, page),
    }


def render(
    rows: list[dict[str, Any]], out_dir: Path, env: dict[str, Any] | None = None
) -> dict[str, Path]:
    """Write results.csv, summary.md and report.html for one run into ``out_dir``
    (with the localization tables the run directory holds)."""
    run_dir = RunDir(out_dir)
    page = report_html(
        rows, env, localizations=run_dir.localizations(), generations=run_dir.generations()
    )
    return _write_all(rows, out_dir, page, "torchparity run", env)


def render_runs(runs: list[merge.LoadedRun], out_dir: Path) -> dict[str, Path]:
    """Render one run directory, or merge several into one report with the
    cross-platform view (rows carry a ``platform`` column)."""
    if len(runs) == 1:
        return render(runs[0].rows, out_dir, runs[0].env)
    rows = merge.merged_rows(runs)
    return _write_all(rows, out_dir, report_html(rows, None, runs), "torchparity merged report")
