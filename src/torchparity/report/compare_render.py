"""A comparison of two runs (``compare.Comparison``) as Markdown, for a CI job
summary or a PR comment, and as a self-contained HTML page."""

from __future__ import annotations

import pandas as pd

from torchparity.report import html as h
from torchparity.report.compare import Comparison
from torchparity.report.compare_stats import DISPERSION_K, DRIFT_FACTOR, NOISE_K, ROUND_ALPHA
from torchparity.report.gate import Gate
from torchparity.report.markdown import markdown_table, md_text
from torchparity.report.report import CELL_KEYS


def _table(comparison: Comparison, which: str) -> pd.DataFrame:
    rows = []
    for c in comparison.changes:
        if which == "throughput" and c.throughput_verdict in ("slower", "faster"):
            rows.append(
                {
                    **{k: getattr(c, k) for k in CELL_KEYS},
                    "verdict": c.throughput_verdict,
                    "baseline items/s": c.base_throughput,
                    "current items/s": c.throughput,
                    "change": f"{c.throughput_change:+.1%}",
                    "p": c.p_value,
                }
            )
        elif which == "drift" and c.drift_verdict in ("worse", "better"):
            rows.append(
                {
                    **{k: getattr(c, k) for k in CELL_KEYS},
                    "verdict": c.drift_verdict,
                    "baseline max_rel_err": c.base_max_rel_err,
                    "current max_rel_err": c.max_rel_err,
                }
            )
        elif which == "status" and c.status_verdict not in ("unchanged", ""):
            rows.append(
                {
                    **{k: getattr(c, k) for k in CELL_KEYS},
                    "verdict": c.status_verdict,
                    "baseline": c.base_status,
                    "current": c.status,
                }
            )
    return pd.DataFrame(rows)


def _counts(comparison: Comparison) -> str:
    frame = comparison.frame()
    if frame.empty:
        return "no cells"
    parts = [f"{len(frame)} cells"]
    for col, verdicts in (
        ("throughput_verdict", ("slower", "faster", "noisy")),
        ("drift_verdict", ("worse",)),
        ("status_verdict", ("new failure", "fixed", "lost coverage")),
    ):
        for v in verdicts:
            n = int((frame[col] == v).sum())
            if n:
                parts.append(f"{n} {v if col != 'drift_verdict' else 'with worse drift'}")
    return ", ".join(parts)


def _criteria(comparison: Comparison) -> str:
    return (
        f"A throughput change counts when it is significant and at least the noise floor: for cells "
        f"timed in rounds, a t-test on log round medians, each cell's variance shrunk toward the typical "
        f"spread (p < {ROUND_ALPHA:g}), and a floor of "
        f"{NOISE_K:g} standard errors of the typical round-to-round spread (here "
        f"{comparison.noise_floor:.1%}; never below the change of the calibration workload between the "
        f"runs, unless --normalize, nor below {DISPERSION_K:g} robust sds of the cells' changes around "
        f"their median beyond what their rounds explain); a cell whose own rounds spread too much for its change is "
        f"'noisy'; cells timed in one window, a "
        f"Mann-Whitney U test on the samples (p < {comparison.alpha:g}). Drift counts when "
        f"max_rel_err grows more than {DRIFT_FACTOR:g}x."
    )


def markdown(
    comparison: Comparison, title: str = "torchparity compare", gate: Gate | None = None
) -> str:
    """The comparison as Markdown (for a CI job summary or a PR comment)."""
    lines = [comparison.gate_line(gate), ""] if gate is not None else []
    lines += [f"# {md_text(title)}", "", _counts(comparison), ""]
    lines += [f"> **warning:** {md_text(w)}" for w in comparison.warnings]
    if comparison.warnings:
        lines.append("")
    noise = comparison.noise_line(gate)
    if noise:
        lines += [noise, ""]
    if gate is not None:
        failing = comparison.regressions(gate)
        verdict = {"failed": "FAILED"}.get(comparison.outcome(gate), comparison.outcome(gate))
        noisy = ", too noisy to judge throughput" if comparison.too_noisy(gate) else ""
        lines += [f"**Gate: {verdict}** ({len(failing)} regressions{noisy})", ""]
        lines += [f"- {md_text(c.label)}: {md_text('; '.join(why))}" for c, why in failing[:50]]
        lines.append("")
    for which, heading in (
        ("status", "Status changes"),
        ("throughput", "Throughput changes"),
        ("drift", "Drift changes"),
    ):
        table = _table(comparison, which)
        lines += [f"## {heading}", "", markdown_table(table) if not table.empty else "None.", ""]
    lines += [_criteria(comparison), ""]
    return "\n".join(lines)


def html_page(
    comparison: Comparison, title: str = "torchparity compare", gate: Gate | None = None
) -> str:
    """The comparison as a self-contained page."""
    warn = "".join(f"<p class='note'>warning: {h.esc(w)}</p>" for w in comparison.warnings)
    noise = (
        f"<p>{h.esc(comparison.noise_line(gate).replace('**', ''))}</p>"
        if comparison.typical_spread is not None
        else ""
    )
    sections = [
        h.section(
            "Summary",
            f"<p>{h.esc(_counts(comparison))}</p>{warn}{noise}"
            f"<p class='muted'>{h.esc(_criteria(comparison))}</p>",
            "summary",
        )
    ]
    if gate is not None:
        failing = comparison.regressions(gate)
        items = "".join(f"<li>{h.esc(c.label)}: {h.esc('; '.join(why))}</li>" for c, why in failing)
        verdict = {"failed": "FAILED"}.get(comparison.outcome(gate), comparison.outcome(gate))
        first = f"<p>{h.esc(comparison.gate_line(gate).replace('**', ''))}</p>"
        body = first + (f"<ul>{items}</ul>" if items else "")
        sections.append(h.section(f"Gate: {verdict}", body, "gate"))
    for which, heading in (
        ("status", "Status changes"),
        ("throughput", "Throughput changes"),
        ("drift", "Drift changes"),
    ):
        sections.append(
            h.section(heading, h.table(_table(comparison, which), f"{which}-changes"), which)
        )
    sections.append(h.section("Every cell", h.table(comparison.frame(), "all-cells"), "all"))
    return h.fit_page(title, sections, "")
