"""Charts for the HTML report, drawn with matplotlib as inline SVG, so the
page needs no network and no image files.

Each function takes the flat results frame (or rows) and returns an SVG
string, or None when there is nothing to draw. Text in the SVG is escaped by
matplotlib's XML writer; mathtext is switched off so a ``$`` in a case name
stays a dollar sign.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from torchparity._core.stats import quartiles
from torchparity._core.status import MEASURED_STATUSES
from torchparity.report import frames as fr

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

_STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # text as <text>, not paths: smaller and selectable
    "svg.hashsalt": "torchparity",  # deterministic ids: same input, same page
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
MAX_LATENCY_BOXES = 80  # more boxes than this are unreadable; the first ones are shown


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "torchparity"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    # Inline SVG needs no XML prolog or DOCTYPE.
    return text[text.index("<svg") :]


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def cell_column(frame: pd.DataFrame) -> pd.Series:
    """``device/backend/precision`` (``/train`` for train cells), plus `` @ platform`` when the rows come
    from several platforms (a merged report): one chart or matrix column."""
    parts = (
        frame["device"].astype(str)
        + "/"
        + frame["backend"].astype(str)
        + "/"
        + frame["precision"].astype(str)
    )
    if "mode" in frame.columns:  # train cells are their own columns; infer labels stay as they were
        parts = parts + frame["mode"].map(
            lambda m: f"/{m}" if isinstance(m, str) and m != "infer" else ""
        )
    if "platform" in frame.columns and frame["platform"].nunique() > 1:
        parts = parts + " @ " + frame["platform"].astype(str)
    return parts


def case_label(frame: pd.DataFrame) -> pd.Series:
    """The case, with ``@ batch N`` for a case measured at several batch sizes
    (``--batch``): one chart row per batch instead of their median."""
    cases = [str(c) for c in frame["case"]]
    if "batch" not in frame.columns:
        return pd.Series(cases, index=frame.index, dtype=object)
    batches = [_batch_text(b) for b in frame["batch"]]
    seen: dict[str, set[str]] = {}
    for case, batch in zip(cases, batches, strict=True):
        seen.setdefault(case, set()).add(batch)
    labels = [
        f"{case} @ batch {batch}" if len(seen[case]) > 1 else case
        for case, batch in zip(cases, batches, strict=True)
    ]
    return pd.Series(labels, index=frame.index, dtype=object)


def _batch_text(value: Any) -> str:
    """A batch size as rows show it (8, not 8.0); empty when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def _measured(frame: pd.DataFrame) -> pd.DataFrame:
    ok = frame["status"].isin(list(MEASURED_STATUSES)) & frame["throughput_items_s"].notna()
    return fr.rows(frame, ok)


def _barh_groups(
    fig: Figure,
    table: pd.DataFrame,
    xlabel: str,
    log: bool,
    ref: float | None,
    low: pd.DataFrame | None = None,
    high: pd.DataFrame | None = None,
) -> None:
    """Grouped horizontal bars; ``low``/``high`` (same shape) draw an interval on each bar."""
    ax = fig.add_subplot()
    cases = list(table.index)
    columns = list(table.columns)
    height = 0.8 / max(len(columns), 1)
    colors = matplotlib.colormaps["tab10"]
    for j, col in enumerate(columns):
        y = np.arange(len(cases)) + j * height - 0.4 + height / 2
        values = table[col].to_numpy(dtype=float)
        xerr = None
        if low is not None and high is not None and col in low.columns and col in high.columns:
            lo = low[col].reindex(table.index).to_numpy(dtype=float)
            hi = high[col].reindex(table.index).to_numpy(dtype=float)
            xerr = np.nan_to_num(np.vstack([values - lo, hi - values]).clip(min=0))
        ax.barh(
            y,
            values,
            height=height,
            label=str(col),
            color=colors(j % 10),
            xerr=xerr,
            error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#222"},
        )
    ax.set_yticks(np.arange(len(cases)), [str(c) for c in cases])
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    if ref is not None:
        ax.axvline(ref, color="#444", linewidth=0.8, linestyle="--")
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", linewidth=0.3)
    ax.legend(fontsize=7, loc="best")


def throughput_chart(frame: pd.DataFrame) -> str | None:
    """Items per second per case, one bar per device/backend/precision (log scale)."""
    measured = _measured(frame)
    if measured.empty:
        return None
    table = measured.assign(column=cell_column(measured), case=case_label(measured)).pivot_table(
        index="case", columns="column", values="throughput_items_s", aggfunc="median"
    )
    fig = _figure(7.5, 0.9 + 0.28 * len(table) * max(1, len(table.columns) / 3))
    _barh_groups(fig, table, "throughput (items/s, log scale)", log=True, ref=None)
    return _svg(fig)


def _paired_or_ratio(measured: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Non-eager rows with ``speedup`` (and ``low``/``high``): the paired
    ``speedup_vs_eager`` with its interval where the row has it, else the
    ratio of throughputs to eager's at the same case, device and precision."""
    eager = fr.rows(measured, measured["backend"] == "eager")
    eager = eager.groupby(keys)["throughput_items_s"].median()
    others = fr.rows(measured, measured["backend"] != "eager")
    if others.empty:
        return others
    base = others.set_index(keys).index.map(lambda k: eager.get(k, math.nan))
    ratio = others["throughput_items_s"].to_numpy(dtype=float) / np.asarray(base, dtype=float)
    paired = fr.numeric(others, "speedup_vs_eager")
    return others.assign(
        speedup=paired.fillna(pd.Series(ratio, index=others.index)),
        low=fr.numeric(others, "speedup_ci_low"),
        high=fr.numeric(others, "speedup_ci_high"),
    )


def speedup_frames(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(speedup, interval low, interval high), rows: case; columns: device/backend/precision."""
    measured = _measured(frame)
    keys = [
        "case",
        "device",
        "precision",
        *(["platform"] if "platform" in measured.columns else []),
        *(["batch"] if "batch" in measured.columns else []),
    ]
    if "batch" in measured.columns:  # rows without a batch pair with eager's without one
        measured = measured.assign(batch=measured["batch"].fillna(0))
    others = _paired_or_ratio(measured, keys)
    if others.empty:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    others = fr.rows(others, others["speedup"].notna())
    if others.empty:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    others = others.assign(column=cell_column(others), case=case_label(others))
    pivot = [
        others.pivot_table(index="case", columns="column", values=v, aggfunc="median", dropna=False)
        for v in ("speedup", "low", "high")
    ]
    return pivot[0], pivot[1], pivot[2]


def speedup_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Speedup of each non-eager backend over eager at the same case, device
    and precision (rows: case; columns: device/backend/precision): the paired
    ``speedup_vs_eager`` where measured, else the ratio of throughputs."""
    return speedup_frames(frame)[0]


def speedup_chart(frame: pd.DataFrame) -> str | None:
    """Speedup over eager per case (1 = as fast as eager; log scale), with
    each paired speedup's confidence interval as an error bar."""
    table, low, high = speedup_frames(frame)
    if table.empty:
        return None
    fig = _figure(7.5, 0.9 + 0.28 * len(table) * max(1, len(table.columns) / 3))
    _barh_groups(
        fig,
        table,
        "speedup over eager (x, log scale; dashed = 1; bars: 95% interval)",
        log=True,
        ref=1.0,
        low=low,
        high=high,
    )
    return _svg(fig)


def drift_heatmap(frame: pd.DataFrame) -> str | None:
    """log10 of max_rel_err per case x device/backend/precision, annotated."""
    ran = fr.rows(frame, fr.numeric(frame, "max_rel_err").notna())
    if ran.empty:
        return None
    values = fr.numeric(ran, "max_rel_err").astype(float)
    with np.errstate(divide="ignore"):
        logs = np.log10(np.maximum(values.to_numpy(), 1e-20))
    table = ran.assign(column=cell_column(ran), log_err=logs).pivot_table(
        index="case", columns="column", values="log_err", aggfunc="max"
    )
    data = table.to_numpy(dtype=float)
    fig = _figure(1.6 + 0.9 * data.shape[1], 0.9 + 0.3 * data.shape[0])
    ax = fig.add_subplot()
    finite = data[np.isfinite(data)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (-8.0, 0.0)
    if vmin == vmax:
        vmin, vmax = vmin - 1, vmax + 1
    image = ax.imshow(
        np.ma.masked_invalid(data), cmap="viridis", aspect="auto", vmin=vmin, vmax=vmax
    )
    ax.set_xticks(range(data.shape[1]), [str(c) for c in table.columns], rotation=30, ha="right")
    ax.set_yticks(range(data.shape[0]), [str(c) for c in table.index])
    for (i, j), v in np.ndenumerate(data):
        if np.isfinite(v):
            dark = (v - vmin) / (vmax - vmin) < 0.6
            ax.text(
                j,
                i,
                f"{v:.1f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if dark else "black",
            )
    fig.colorbar(image, ax=ax, label="log10 max relative error")
    return _svg(fig)


def latency_distributions(rows: list[dict[str, Any]]) -> str | None:
    """Box plots of the per-call latency samples of each measured cell (log scale)."""
    several = len({r.get("platform") for r in rows}) > 1
    series = [
        (
            f"{r.get('case')} {r.get('device')}/{r.get('backend')}/{r.get('precision')}"
            + (f" @ {r.get('platform')}" if several else ""),
            r["samples_ms"],
        )
        for r in rows
        if isinstance(r.get("samples_ms"), list) and r["samples_ms"]
    ][:MAX_LATENCY_BOXES]
    if not series:
        return None
    fig = _figure(7.5, 0.8 + 0.2 * len(series))
    ax = fig.add_subplot()
    ax.boxplot(
        [s for _, s in series],
        orientation="horizontal",
        widths=0.6,
        showfliers=True,
        flierprops={"markersize": 2},
    )
    ax.set_yticks(range(1, len(series) + 1), [label for label, _ in series], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("latency per call (ms, log scale)")
    ax.grid(axis="x", linewidth=0.3)
    return _svg(fig)


LOSS_FLOOR = 1e-9  # agreement losses below this are drawn at it (log axis)
TRADEOFF_COLUMNS = ["case", "cell", "speedup_vs_fp32_eager", "agreement_loss", "pareto"]


def _pareto(speedup: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Which points no other point beats on both axes (faster and closer, one strictly)."""
    front = np.ones(len(speedup), dtype=bool)
    for i in range(len(speedup)):
        better = (speedup >= speedup[i]) & (loss <= loss[i])
        strictly = (speedup > speedup[i]) | (loss < loss[i])
        front[i] = not bool((better & strictly).any())
    return front


def tradeoff_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Each measured cell's speedup over fp32 eager at the same case and device
    (a ratio of median latencies) and its agreement loss, 1 - cosine: against
    fp32 eager for int8 cells (``agree_cosine``), against the fp64 reference
    for float cells (``cosine``); ``pareto`` marks each case's front."""
    if "latency_ms_median" not in frame.columns or "cosine" not in frame.columns:
        return pd.DataFrame(columns=TRADEOFF_COLUMNS)
    measured = _measured(frame)
    measured = fr.rows(measured, fr.numeric(measured, "latency_ms_median") > 0)
    keys = ["case", "device", *(["platform"] if "platform" in measured.columns else [])]
    eager_fp32 = (fr.column(measured, "backend") == "eager") & (
        fr.column(measured, "precision") == "fp32"
    )
    base = fr.as_series(
        fr.rows(measured, eager_fp32).groupby(keys)["latency_ms_median"].median()
    ).to_dict()
    cos = fr.numeric(measured, "agree_cosine").fillna(fr.numeric(measured, "cosine"))
    latency = fr.numeric(measured, "latency_ms_median").to_numpy(dtype=float)
    fp32_latency = np.array(
        [base.get(tuple(k), math.nan) for k in fr.columns(measured, keys).itertuples(index=False)],
        dtype=float,
    )
    out = pd.DataFrame(
        {
            "case": fr.column(measured, "case").to_numpy(),
            "cell": cell_column(measured).to_numpy(),
            "speedup_vs_fp32_eager": fp32_latency / latency,
            "agreement_loss": np.clip(1.0 - cos.to_numpy(dtype=float), 0.0, None),
        }
    ).dropna()
    pareto = np.zeros(len(out), dtype=bool)
    cases = out["case"].to_numpy()
    for case in set(cases):
        at = cases == case
        pareto[at] = _pareto(
            out["speedup_vs_fp32_eager"].to_numpy(dtype=float)[at],
            out["agreement_loss"].to_numpy(dtype=float)[at],
        )
    out["pareto"] = pareto
    return out.sort_values(["case", "agreement_loss"]).reset_index(drop=True)


def tradeoff_chart(frame: pd.DataFrame) -> str | None:
    """Per case: speedup over fp32 eager against agreement loss for every
    measured (backend, precision) cell, the Pareto front joined and ringed."""
    table = tradeoff_frame(frame)
    if table.empty:
        return None
    cases = list(dict.fromkeys(table["case"]))
    ncols = min(3, len(cases))
    nrows = math.ceil(len(cases) / ncols)
    labels = sorted(set(table["cell"]))
    legend_rows = math.ceil(len(labels) / 3)
    fig = _figure(max(3.2 * ncols, 6.0), 2.8 * nrows + 0.6 + 0.2 * legend_rows)
    colors = matplotlib.colormaps["tab10"]
    for k, case in enumerate(cases):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        group = fr.rows(table, fr.column(table, "case") == case)
        x = np.clip(fr.numeric(group, "agreement_loss").to_numpy(dtype=float), LOSS_FLOOR, None)
        y = fr.numeric(group, "speedup_vs_fp32_eager").to_numpy(dtype=float)
        for xi, yi, cell in zip(x, y, fr.column(group, "cell"), strict=True):
            ax.scatter([xi], [yi], s=18, color=colors(labels.index(cell) % 10), label=cell)
        front = fr.column(group, "pareto").to_numpy(dtype=bool)
        order = np.argsort(x[front])
        ax.plot(x[front][order], y[front][order], color="#222", linewidth=0.8, linestyle="--")
        ax.scatter(x[front], y[front], s=70, facecolors="none", edgecolors="#222", linewidths=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(1.0, color="#999", linewidth=0.6)
        ax.set_title(str(case), fontsize=8)
        ax.set_xlabel("agreement loss (1 - cosine)", fontsize=7)
        ax.set_ylabel("speedup over fp32 eager", fontsize=7)
        ax.grid(linewidth=0.3)
    handles, names = fig.axes[0].get_legend_handles_labels()
    seen = dict(zip(names, handles, strict=True))
    for ax in fig.axes[1:]:
        h, n = ax.get_legend_handles_labels()
        seen.update(zip(n, h, strict=True))
    fig.legend(
        list(seen.values()), list(seen.keys()), fontsize=7, loc="outside lower center", ncols=3
    )
    return _svg(fig)


def _sweep_points(group: pd.DataFrame) -> pd.DataFrame:
    """Per batch: median latency with its samples' quartiles, and the throughput
    they imply (batch / latency), sorted by batch."""
    records = []
    for row in group.to_dict("records"):
        batch, median_ms = float(row["batch"]), float(row["latency_ms_median"])
        samples = row.get("samples_ms")
        q1, q3 = (
            quartiles([float(s) for s in samples])
            if isinstance(samples, list) and samples
            else (median_ms, median_ms)
        )
        records.append(
            {
                "batch": batch,
                "latency": median_ms,
                "lat_lo": min(q1, median_ms),
                "lat_hi": max(q3, median_ms),
                "throughput": batch / median_ms * 1e3,
                "thr_lo": batch / max(q3, median_ms) * 1e3,
                "thr_hi": batch / max(min(q1, median_ms), 1e-12) * 1e3,
            }
        )
    return pd.DataFrame(records).sort_values("batch")


def batch_sweep_charts(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """For each case measured at several batch sizes (``--batch``): latency and
    throughput against batch, a line per device/backend/precision, each point
    with its samples' interquartile range (from ``samples_ms``). (case, SVG) pairs."""
    frame = pd.DataFrame(rows)
    needed = {"status", "throughput_items_s", "batch", "latency_ms_median", "case"}
    if frame.empty or not needed <= set(frame.columns):
        return []
    measured = _measured(frame)
    if measured.empty:
        return []
    measured = measured.assign(
        batch=pd.to_numeric(measured["batch"], errors="coerce"),
        latency_ms_median=pd.to_numeric(measured["latency_ms_median"], errors="coerce"),
        column=cell_column(measured),
    ).dropna(subset=["batch", "latency_ms_median"])
    out = []
    for case, of_case in measured.groupby("case", sort=True):
        if of_case["batch"].nunique() < 2:
            continue
        fig = _figure(8.0, 3.2)
        latency_ax, throughput_ax = fig.subplots(1, 2)
        colors = matplotlib.colormaps["tab10"]
        for j, (label, group) in enumerate(of_case.groupby("column", sort=True)):
            p = _sweep_points(group)
            style = {"color": colors(j % 10), "marker": "o", "markersize": 3, "capsize": 2}
            latency_ax.errorbar(
                p["batch"],
                p["latency"],
                yerr=[p["latency"] - p["lat_lo"], p["lat_hi"] - p["latency"]],
                label=str(label),
                **style,
            )
            throughput_ax.errorbar(
                p["batch"],
                p["throughput"],
                yerr=[p["throughput"] - p["thr_lo"], p["thr_hi"] - p["throughput"]],
                **style,
            )
        for ax, ylabel in (
            (latency_ax, "latency per call (ms)"),
            (throughput_ax, "throughput (items/s)"),
        ):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("batch (log scale)")
            ax.set_ylabel(ylabel)
            ax.grid(linewidth=0.3)
        latency_ax.set_title(f"{case}: latency", fontsize=9)
        throughput_ax.set_title(f"{case}: throughput", fontsize=9)
        latency_ax.legend(fontsize=7, loc="best")
        out.append((str(case), _svg(fig)))
    return out


def step_lines_chart(
    series: dict[str, list[float]], ylabel: str, bound: float | None = None
) -> str | None:
    """One line per entry of ``series`` over its steps (0, 1, ...), log y;
    ``bound`` a dashed horizontal line (report/generation.py: teacher-forced drift)."""
    shown = {k: [v if v > 0 else np.nan for v in vs] for k, vs in series.items() if vs}
    if not shown:
        return None
    fig = _figure(7.0, 3.2)
    ax = fig.add_subplot()
    colors = matplotlib.colormaps["tab10"]
    for j, (label, values) in enumerate(shown.items()):
        ax.plot(range(len(values)), values, label=label, color=colors(j % 10), linewidth=1.2)
    if bound is not None and bound > 0:
        ax.axhline(bound, color="#444", linewidth=0.8, linestyle="--")
    ax.set_yscale("log")
    ax.set_xlabel("generated token (step)")
    ax.set_ylabel(ylabel)
    ax.grid(linewidth=0.3)
    ax.legend(fontsize=7, loc="best")
    return _svg(fig)
