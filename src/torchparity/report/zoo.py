"""The model zoo's compatibility matrix: architecture x deployment path ->
status, worst drift as a share of its bound, speedup over eager; a numbered
note with the reason and blame of every cell that did not pass.

Rendered as Markdown (``torchparity report RUN --zoo-matrix FILE``, which
writes docs/zoo.md) and as the first section of report.html when the run
holds zoo rows. Reads rows only; a row is the zoo's when its suite is
``zoo`` or a ``zoo-`` selection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from torchparity.report import frames as fr
from torchparity.report import html as h
from torchparity.report.markdown import markdown_table

# Deployment paths in the order a reader compares them: eager first, then from
# the closest to eager to the furthest (graph capture, ONNX, compilers, runtimes).
PATH_ORDER = (
    "eager",
    "torchscript",
    "torchscript-trace",
    "onnxruntime",
    "onnxruntime-legacy",
    "export",
    "compile",
    "aoti",
    "torchscript-cpp",
    "aoti-cpp",
    "executorch",
    "openvino",
    "onnxruntime-node",
    "onnxruntime-web",
)
# The deployment runtimes' versions as their rows record them (env.json holds the
# Python libraries, not Node's packages or the browser): the label, then the column.
RUNTIME_VERSIONS = (
    ("executorch", "backend_executorch"),
    ("openvino", "backend_openvino"),
    ("onnxruntime-node", "backend_onnxruntime_node"),
    ("node", "backend_node"),
    ("onnxruntime-web", "backend_onnxruntime_web"),
    ("", "backend_browser"),  # "Chromium 156.0.8078.114" names itself
)
CASE_PREFIX = "zoo."
REASON_SHOWN = 240  # characters of a reason in a note


def is_zoo_row(row: dict[str, Any]) -> bool:
    suite = str(row.get("suite") or "")
    return (suite == "zoo" or suite.startswith("zoo-")) and (row.get("mode") or "infer") == "infer"


def zoo_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The zoo's rows; a cell held by several merged run directories (the ci
    selection beside a full run) keeps the row of the last directory given."""
    cells: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        if is_zoo_row(row):
            key = tuple(row.get(k) for k in ("case", "backend", "precision", "device"))
            cells[key] = row  # the later row, in the first one's place
    return list(cells.values())


@dataclass
class Note:
    """Non-pass cells of one architecture with the same status, blame and reason
    (a missing library skips every path alike): one number in the matrix."""

    number: int
    architecture: str
    paths: list[str]
    status: str
    blame: str
    expectation: str
    reason: str

    def same(self, other: Note) -> bool:
        return (self.architecture, self.status, self.blame, self.expectation, self.reason) == (
            other.architecture,
            other.status,
            other.blame,
            other.expectation,
            other.reason,
        )


def architecture(row: dict[str, Any]) -> str:
    return str(row.get("case", "")).removeprefix(CASE_PREFIX)


def path_label(row: dict[str, Any], several: dict[str, bool]) -> str:
    """The column: the backend, with the precision and device when the run holds several."""
    parts = [str(row.get("backend"))]
    parts += [str(row.get(k)) for k in ("precision", "device") if several.get(k)]
    return " ".join(parts)


def outcome(row: dict[str, Any]) -> str:
    """What happened, expected or not: an xfail shows the status it stands for."""
    status = str(row.get("status"))
    return str(row.get("xfail_of") or status) if status == "xfail" else status


def own_reason(row: dict[str, Any]) -> str:
    """The cell's reason without an expectation's preamble ("known: ...; was error: ")."""
    reason = " ".join(str(row.get("reason") or "").split())
    match = re.search(r"; was (?:fail|error|crash|timeout): ", reason)
    reason = reason[match.end() :] if match else reason
    return reason if len(reason) <= REASON_SHOWN else reason[: REASON_SHOWN - 3] + "..."


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN: not measured


def measures(row: dict[str, Any]) -> str:
    """drift share and speedup (eager: its median latency) of a measured cell."""
    parts = []
    drift = _number(row.get("tolerance_used"))
    if drift is not None:
        parts.append(f"{drift:.2g}")
    if row.get("backend") == "eager":
        latency = _number(row.get("latency_ms_median"))
        if latency is not None:
            parts.append(f"{latency:.3g} ms")
    else:
        speedup = _number(row.get("speedup_vs_eager"))
        if speedup is not None:
            parts.append(f"{speedup:.2g}x")
    return " · ".join(parts)


def build(rows: list[dict[str, Any]]) -> tuple[pd.DataFrame, list[Note]]:
    """The matrix (one row per architecture, one column per path) and the notes
    its non-pass cells point to, numbered in matrix order."""
    rows = zoo_rows(rows)
    several = {k: len({r.get(k) for r in rows}) > 1 for k in ("precision", "device")}
    backends = {str(r.get("backend")) for r in rows}
    order = [b for b in PATH_ORDER if b in backends] + sorted(backends - set(PATH_ORDER))
    rank = {b: i for i, b in enumerate(order)}
    rows = sorted(
        rows, key=lambda r: (rank[str(r.get("backend"))], r.get("precision"), r.get("device"))
    )
    columns = list(dict.fromkeys(path_label(r, several) for r in rows))
    archs = list(dict.fromkeys(architecture(r) for r in _case_order(rows)))
    cells: dict[tuple[str, str], str] = {}
    notes: list[Note] = []
    for row in _case_order(rows):
        key = (architecture(row), path_label(row, several))
        status = outcome(row)
        if row.get("status") == "pass":
            text = "pass" + (f" · {measures(row)}" if measures(row) else "")
            if row.get("expectation") == "unexpected pass":
                text += f" [{_note(notes, row, key, 'pass')}]"
        else:
            blame = str(row.get("blame") or "")
            text = f"{status}{f' ({blame})' if blame else ''} [{_note(notes, row, key, status)}]"
        cells[key] = text
    matrix = pd.DataFrame(
        [{"architecture": a, **{c: cells.get((a, c), "") for c in columns}} for a in archs]
    )
    return matrix, notes


def _case_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in the run's case order, each case's paths in column order; the
    architectures that did not run at all (every cell a skip, written first by
    the run) come last."""
    first: dict[Any, int] = {}
    ran: set[Any] = set()
    for i, r in enumerate(rows):
        first.setdefault(r.get("case"), i)
        if r.get("status") != "skip":
            ran.add(r.get("case"))
    return sorted(rows, key=lambda r: (r.get("case") not in ran, first[r.get("case")]))


def _note(notes: list[Note], row: dict[str, Any], key: tuple[str, str], status: str) -> int:
    """The number of the note for this cell: a new one, or the one it shares."""
    note = Note(
        len(notes) + 1,
        key[0],
        [key[1]],
        status,
        str(row.get("blame") or ""),
        str(row.get("expectation") or ""),
        own_reason(row),
    )
    for known in notes:
        if known.same(note):
            known.paths.append(key[1])
            return known.number
    notes.append(note)
    return note.number


def counts(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Per path: how many architectures pass, fail, error, skip (xfails by what they stand for)."""
    frame = pd.DataFrame(
        [{"path": r.get("backend"), "outcome": outcome(r)} for r in zoo_rows(rows)]
    )
    if frame.empty:
        return frame
    table = fr.as_frame(frame.groupby(["path", "outcome"]).size().unstack(fill_value=0))
    order = [b for b in PATH_ORDER if b in table.index] + sorted(set(table.index) - set(PATH_ORDER))
    shown = [s for s in ("pass", "fail", "error", "crash", "timeout", "skip") if s in table.columns]
    return table.reindex(index=order, columns=shown).reset_index()


def blame_counts(notes: list[Note]) -> pd.DataFrame:
    """Non-pass cells per blame category (an unexpected pass counts as none)."""
    frame = pd.DataFrame(
        [{"blame": n.blame or "(none)"} for n in notes if n.status != "pass" for _ in n.paths]
    )
    if frame.empty:
        return frame
    return fr.as_series(frame.groupby("blame").size()).rename("cells").reset_index()


_LEGEND = (
    "Each cell: the status; for a pass, the worst drift as a share of its bound "
    "(`tolerance_used`: the verdict's rel-L2 error over the bound, 1 fails; "
    "[drift.md](drift.md)) and the speedup over eager (paired timing; for eager "
    "itself its median latency). A non-pass shows its blame and the number of "
    "its note below."
)


def runtime_versions(rows: list[dict[str, Any]]) -> list[str]:
    """ "executorch 1.5.1", "node v20.20.2", ...: each deployment runtime's version
    from the first zoo row that records it (none: the runtime did not run)."""
    found = []
    for label, column in RUNTIME_VERSIONS:
        value = next((r[column] for r in zoo_rows(rows) if r.get(column)), None)
        if value:
            found.append(f"{label} {value}".strip())
    return found


def markdown(rows: list[dict[str, Any]], env: dict[str, Any] | None, source: str) -> str:
    """docs/zoo.md: the matrix, counts per path and blame, and the notes."""
    matrix, notes = build(rows)
    env = env or {}
    versions = ", ".join(
        [
            *(f"{k} {env[k]}" for k in ("torch", "transformers", "onnxruntime") if env.get(k)),
            *runtime_versions(rows),
            *([f"python {env['python']}"] if env.get("python") else []),
        ]
    )
    cores = f"{env['cores']} cores" if env.get("cores") else None
    machine = ", ".join(str(v) for v in (env.get("os"), env.get("cpu"), cores) if v)
    lines = [
        "# Model zoo: compatibility matrix",
        "",
        "<!-- generated by `torchparity report RUN_DIR --zoo-matrix docs/zoo.md`; do not edit -->",
        "",
        f"Generated from `{source}`: {len(zoo_rows(rows))} cells; {versions}; {machine}; "
        f"{env.get('start_time', 'start time unknown')}.",
        "",
        _LEGEND,
        "",
        markdown_table(matrix) if not matrix.empty else "(no zoo rows)",
        "",
        "## Per deployment path",
        "",
        markdown_table(counts(rows)) if not counts(rows).empty else "(no zoo rows)",
        "",
    ]
    generate = generation_matrix(rows)
    if not generate.empty:
        lines += ["## Generation", "", _GENERATION_LEGEND, "", markdown_table(generate), ""]
    if not blame_counts(notes).empty:
        lines += ["## Non-pass cells by blame", "", markdown_table(blame_counts(notes)), ""]
    if notes:
        lines += ["## Notes", "", markdown_table(_notes_frame(notes)), ""]
    return "\n".join([*lines, END_MARKER, ""])


_GENERATION_LEGEND = (
    "`--mode generate` cells ([generation.md](generation.md)): per architecture and path "
    "(backend/precision/batch) the status, the share of tokens equal to the fp64 greedy "
    "reference's, the first divergent step, near-tie flips, TTFT and TPOT p50 (ms) and decode "
    "tokens/s."
)
GENERATION_COLUMNS = {
    "tokens_agree": "agree",
    "first_divergent_step": "first divergence",
    "tie_flips": "tie flips",
    "ttft_ms": "TTFT ms",
    "tpot_ms_p50": "TPOT p50 ms",
    "tokens_s": "tokens/s",
}


def generation_matrix(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The zoo's generate rows: one line per architecture and path."""
    lines = []
    for row in rows:
        suite = str(row.get("suite") or "")
        if row.get("mode") != "generate" or not (
            suite == "zoo" or suite.startswith(("zoo-", "generate"))
        ):
            continue
        line = {
            "architecture": architecture(row),
            "path": f"{row.get('backend')}/{row.get('precision')}/b{row.get('batch')}",
            "status": outcome(row),
        }
        for key, label in GENERATION_COLUMNS.items():
            value = row.get(key)
            line[label] = (
                f"{value:.3g}"
                if isinstance(value, float)
                else ("" if value is None else str(value))
            )
        lines.append(line)
    return pd.DataFrame(lines)


# What follows this line in the target file is written by hand and kept when
# the matrix above it is regenerated.
END_MARKER = "<!-- end of the generated matrix; the text below is kept -->"


def update_document(existing: str | None, generated: str) -> str:
    """``generated`` followed by the hand-written part of ``existing`` (after
    ``END_MARKER``), so regenerating the matrix keeps the page's prose."""
    if not existing or END_MARKER not in existing:
        return generated
    return generated + existing.split(END_MARKER, 1)[1].lstrip("\n")


def _notes_frame(notes: list[Note]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "#": n.number,
                "architecture": n.architecture,
                "paths": ", ".join(n.paths),
                "status": n.status,
                "blame": n.blame,
                "expectation": n.expectation,
                "reason": n.reason,
            }
            for n in notes
        ]
    )


def html_section(rows: list[dict[str, Any]]) -> str:
    """report.html's first section when the run holds zoo rows ('' when none)."""
    if not zoo_rows(rows):
        return ""
    matrix, notes = build(rows)
    body = (
        f"<p class='muted'>{h.esc(_LEGEND)}</p>"
        + h.table(matrix, "zoo-matrix")
        + "<h3>Per deployment path</h3>"
        + h.table(counts(rows), "zoo-counts", filterable=False)
    )
    if notes:
        body += "<h3>Notes</h3>" + h.table(_notes_frame(notes), "zoo-notes")
    return h.section("Model zoo compatibility", body, "zoo")
