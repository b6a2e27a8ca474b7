"""The report's Generation section (docs/generation.md): per path and
precision the agreement with the fp64 greedy tokens, the first divergence,
near-tie flips and the per-token speed; a per-step teacher-forced drift chart
per case, one line per path; and for a failing cell the reference's and the
path's token ids side by side from the divergent step."""

from __future__ import annotations

from typing import Any

import pandas as pd

from torchparity.report import charts
from torchparity.report import frames as fr
from torchparity.report import html as h

COLUMNS = [
    "case",
    "device",
    "backend",
    "precision",
    "batch",
    "status",
    "tokens_agree",
    "first_divergent_step",
    "tie_flips",
    "tie_margin",
    "tf_worst_step",
    "tf_worst_rel_l2",
    "ttft_ms",
    "tpot_ms_p50",
    "tpot_ms_p99",
    "tokens_s",
    "cache_kind",
    "decode_input_len",
    "culprit",
    "reason",
]
NOTE = (
    "<p class='muted'>generate cells (docs/generation.md): tokens_agree is the share of "
    "generated tokens equal to the fp64 greedy reference's; a divergence whose reference "
    "top-1/top-2 margin is within the path's own teacher-forced logit error is a near-tie "
    "(tie_flips), after which every step is judged teacher-forced against the bound. TTFT is "
    "the prefill, TPOT one decode call (p50, p99), tokens/s the decode rate at the p50.</p>"
)
MAX_TOKENS_SHOWN = 16


def generation_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One line per generate row, the generation columns present."""
    shown = [r for r in rows if r.get("mode") == "generate"]
    frame = pd.DataFrame(shown)
    if frame.empty:
        return frame
    return fr.columns(frame, [c for c in COLUMNS if c in frame.columns])


def _label(record: dict[str, Any]) -> str:
    return f"{record.get('backend')}/{record.get('precision')}/b{record.get('batch')}"


def drift_charts(records: list[dict[str, Any]], bounds: dict[str, float]) -> list[str]:
    """Per case: the teacher-forced relative L2 error of each step's logits, one line per path."""
    parts = []
    for case in sorted({str(r.get("case")) for r in records}):
        series = {
            _label(r): [float(x) for x in r.get("drift") or []]
            for r in records
            if str(r.get("case")) == case
        }
        svg = charts.step_lines_chart(series, "teacher-forced logit rel. L2", bounds.get(case))
        parts.append(f"<h3>{h.esc(case)}</h3>" + h.chart(svg, "no steps recorded"))
    return parts


def token_tables(records: list[dict[str, Any]]) -> list[str]:
    """For each failing or flipped cell: per diverging prompt, the reference's
    and the path's token ids side by side from the first divergent step."""
    parts = []
    for record in records:
        for prompt in record.get("prompts") or []:
            step = prompt.get("first_divergent_step")
            if step is None or not isinstance(step, int):
                continue
            ref = list(prompt.get("reference_tokens") or [])[step : step + MAX_TOKENS_SHOWN]
            got = list(prompt.get("path_tokens") or [])[step : step + MAX_TOKENS_SHOWN]
            frame = pd.DataFrame(
                {"step": range(step, step + len(ref)), "reference": ref, "path": got[: len(ref)]}
            )
            what = "near-tie" if prompt.get("near_tie") else str(record.get("status"))
            margin = prompt.get("margin")
            title = (
                f"{record.get('cell_id')}, prompt {prompt.get('prompt')}: {what} at step {step}"
                + (f" (margin {margin:.3g})" if isinstance(margin, float) else "")
            )
            table_id = f"generation-tokens-{len(parts)}"
            parts.append(f"<h4>{h.esc(title)}</h4>" + h.table(frame, table_id, filterable=False))
    return parts


def html_section(rows: list[dict[str, Any]], records: list[dict[str, Any]]) -> str | None:
    """The Generation section, or None when the run has no generate rows."""
    table = generation_table(rows)
    if table.empty:
        return None
    bounds = {
        str(r.get("case")): float(r["tf_bound"])
        for r in rows
        if r.get("mode") == "generate" and isinstance(r.get("tf_bound"), (int, float))
    }
    body = [NOTE, h.table(table, "generation")]
    if records:
        body.append("<h3>Teacher-forced drift per step</h3>")
        body += drift_charts(records, bounds)
        tokens = token_tables(records)
        if tokens:
            body.append("<h3>Token ids from the first divergent step</h3>")
            body += tokens
    return h.section("Generation", "".join(body), "generation")
