"""HTML building blocks for the reports: one self-contained page (inline CSS,
a small inline script for sorting and filtering tables, inline SVG charts),
escaped tables and the status matrix.

Every piece of data goes through ``esc`` (text and attributes alike), so a
result that contains markup shows as text. Only the SVG from ``charts`` and
the fixed strings below are inserted unescaped.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

STATUS_COLORS = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "error": "#6a1b9a",
    "crash": "#000000",
    "timeout": "#e65100",
    "skip": "#9e9e9e",
    "xfail": "#f9a825",
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.2em;color:#222;max-width:1400px}
h1{font-size:1.5em;margin:.2em 0}h3{font-size:1em;margin:1em 0 .3em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px;margin:.4em 0}
td,th{border:1px solid #d0d0d0;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}th.group{text-align:center;background:#e6e6e6}table.sortable th{cursor:pointer;user-select:none}
table.sortable th[data-dir=asc]::after{content:" \\25B2"}table.sortable th[data-dir=desc]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.cell{color:#fff;text-align:center;font-weight:600;min-width:3.5em}
input.filter{margin:.3em 0;padding:2px 6px;width:22em}
.muted{color:#777}.note{background:#fff8e1;border-left:4px solid #f9a825;padding:.3em .6em}
.legend span{display:inline-block;padding:1px 6px;margin-right:4px;color:#fff;border-radius:3px;font-size:12px}
.chart svg{max-width:100%;height:auto}
details pre{white-space:pre-wrap;font-size:11px;background:#f7f7f7;padding:.4em}
dl.env{display:grid;grid-template-columns:repeat(3,max-content minmax(0,1fr));gap:1px 14px;font-size:12px}dl.env dt{font-weight:600}dl.env dd{margin:0;overflow-wrap:anywhere}
"""

# Sorting: click a header (numbers compare as numbers via data-v); filtering:
# rows whose text does not contain the query are hidden.
_SCRIPT = """
(function(){
function val(td){var v=td.getAttribute('data-v');if(v===null)v=td.textContent;var n=parseFloat(v);
return (v!==''&&!isNaN(n)&&isFinite(v))?n:v.toLowerCase();}
document.querySelectorAll('table.sortable').forEach(function(t){
 t.querySelectorAll('thead th').forEach(function(th,i){th.addEventListener('click',function(){
  var dir=th.getAttribute('data-dir')==='asc'?'desc':'asc';
  t.querySelectorAll('thead th').forEach(function(o){o.removeAttribute('data-dir');});
  th.setAttribute('data-dir',dir);var body=t.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){var x=val(a.cells[i]),y=val(b.cells[i]);
   if(typeof x!==typeof y){x=String(x);y=String(y);}var c=x<y?-1:x>y?1:0;return dir==='asc'?c:-c;});
  rows.forEach(function(r){body.appendChild(r);});});});});
document.querySelectorAll('input.filter').forEach(function(inp){
 var t=document.getElementById(inp.getAttribute('data-table'));if(!t)return;
 inp.addEventListener('input',function(){var q=inp.value.toLowerCase();
  Array.prototype.forEach.call(t.tBodies[0].rows,function(r){
   r.style.display=r.textContent.toLowerCase().indexOf(q)>=0?'':'none';});});});
})();
"""


def esc(value: Any) -> str:
    """Text of ``value``, HTML-escaped (quotes too, so it is safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def format_value(value: Any) -> str:
    """A short human form: floats to 4 significant digits, missing values empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4g}"
    return str(value)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def table(frame: pd.DataFrame, table_id: str, filterable: bool = True, caption: str = "") -> str:
    """An escaped, sortable table (and a filter box) of ``frame``."""
    if frame.empty:
        return "<p class='muted'>(none)</p>"
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        tds = []
        for v in row:
            if isinstance(v, int | float) and not isinstance(v, bool) and not _is_missing(v):
                tds.append(
                    f"<td class='num' data-v='{esc(repr(float(v)))}'>{esc(format_value(v))}</td>"
                )
            else:
                tds.append(f"<td>{esc(format_value(v))}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    box = (
        f"<input class='filter' type='search' placeholder='filter rows' data-table='{esc(table_id)}'>"
        if filterable
        else ""
    )
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (
        f"{box}<table class='sortable' id='{esc(table_id)}'>{cap}<thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _group_header(columns: list[str], group_of: dict[str, str]) -> str:
    """A header row spanning each run of columns of one group."""
    spans = [(g, len(list(run))) for g, run in itertools.groupby(columns, key=group_of.get)]
    cells = "".join(f"<th colspan='{n}' class='group'>{esc(g)}</th>" for g, n in spans)
    return f"<tr><th></th>{cells}</tr>"


def status_matrix(
    frame: pd.DataFrame,
    column: pd.Series,
    group: pd.Series | None = None,
    group_order: Sequence[str] = (),
    table_id: str = "status-matrix",
) -> str:
    """Case x ``column`` (e.g. device/backend/precision), one coloured cell per
    row, the reason on hover. Every row appears as exactly one cell. With
    ``group`` (e.g. each row's runtime language), the columns are ordered by
    group (``group_order``) under a header naming each group."""
    if frame.empty:
        return "<p class='muted'>(no rows)</p>"
    frame = frame.assign(_column=column.to_numpy())
    columns = list(dict.fromkeys(frame["_column"]))
    cases = list(dict.fromkeys(frame["case"]))
    by_key: dict[tuple[Any, Any], list[pd.Series]] = {}  # (case, column) as the frame holds them
    for _, r in frame.iterrows():
        by_key.setdefault((r["case"], r["_column"]), []).append(r)
    groups = ""
    if group is not None:
        group_of = dict(zip(frame["_column"], group.astype(str), strict=True))
        rank = {g: i for i, g in enumerate(group_order)}
        columns.sort(key=lambda c: rank.get(group_of[c], len(rank)))  # stable within a group
        groups = _group_header(columns, group_of)
    head = groups + "<tr><th>case</th>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>"
    body = []
    for case in cases:
        tds = [f"<th>{esc(case)}</th>"]
        for col in columns:
            cells = by_key.get((case, col), [])
            inner = "".join(
                f"<div class='cell-{esc(r['status'])}' title='{esc(r.get('reason') or r['status'])}'>"
                f"{esc(r['status'])}</div>"
                for r in cells
            )
            if not cells:
                tds.append("<td></td>")
            elif len(cells) == 1:
                r = cells[0]
                color = STATUS_COLORS.get(str(r["status"]), "#555")
                tds.append(
                    f"<td class='cell status-{esc(r['status'])}' style='background:{color}' "
                    f"title='{esc(r.get('reason') or r['status'])}'>{esc(r['status'])}</td>"
                )
            else:  # duplicates (should not happen within one platform): show them all
                tds.append(f"<td class='cell multi'>{inner}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    legend = "".join(
        f"<span style='background:{color}'>{esc(s)}</span>" for s, color in STATUS_COLORS.items()
    )
    return (
        f"<p class='legend'>{legend}</p><table class='matrix' id='{esc(table_id)}'>"
        f"<thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
    )


def definition_list(items: dict[str, Any]) -> str:
    return (
        "<dl class='env'>"
        + "".join(f"<dt>{esc(k)}</dt><dd>{esc(format_value(v))}</dd>" for k, v in items.items())
        + "</dl>"
    )


def chart(svg: str | None, empty_note: str) -> str:
    """An inline SVG chart from ``charts`` (trusted markup), or a note why there is none."""
    return f"<div class='chart'>{svg}</div>" if svg else f"<p class='muted'>{esc(empty_note)}</p>"


def section(title: str, body: str, anchor: str) -> str:
    return f"<section id='{esc(anchor)}'><h2>{esc(title)}</h2>{body}</section>"


def page(title: str, sections: list[str], subtitle: str = "") -> str:
    """The whole self-contained document."""
    sub = f"<p class='muted'>{esc(subtitle)}</p>" if subtitle else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1>{sub}{''.join(sections)}<script>{_SCRIPT}</script></body></html>"
    )


REPORT_LIMIT = 5_000_000  # bytes of report.html (docs/reports.md), whatever the rows hold
SHOWN_LIMIT = 300  # characters of one value shown on a page or in summary.md
TRACE_SHOWN = 4000  # characters of a traceback shown (the full text is in results.jsonl)


def shown_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` as a page shows them: each text value cut at ``SHOWN_LIMIT``
    characters (a traceback at ``TRACE_SHOWN``), so a hostile or huge name
    costs the renderers (tables, charts) a bounded amount of work."""

    def cut(key: str, value: Any) -> Any:
        keep = TRACE_SHOWN if key == "traceback" else SHOWN_LIMIT
        if isinstance(value, str) and len(value) > keep:
            return f"{value[:keep]} [... {len(value) - keep} more characters]"
        return value

    return [{k: cut(k, v) for k, v in row.items()} for row in rows]


def fit_page(title: str, sections: list[str], subtitle: str, limit: int = REPORT_LIMIT) -> str:
    """The page, under ``limit`` bytes: while it is over, its largest section
    (after the first, the header) gives way to a line saying so."""
    sections = list(sections)
    while True:
        text = page(title, sections, subtitle=subtitle)
        size = len(text.encode("utf-8"))
        if size <= limit or len(sections) < 2:
            return text
        largest = max(range(1, len(sections)), key=lambda i: len(sections[i]))
        if len(sections[largest]) < 200:  # nothing left worth dropping
            return text
        sections[largest] = (
            "<section><p class='muted'>A section of "
            f"{len(sections[largest].encode('utf-8')) / 1e6:.1f} MB was left out to keep this page "
            f"under {limit / 1e6:.0f} MB; every row is in results.jsonl and results.csv.</p></section>"
        )
