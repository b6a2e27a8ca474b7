"""Comparing two runs (baseline, current) cell by cell: throughput change with
a Mann-Whitney U test on the stored latency samples and a noise floor, drift
change, status change; and the ``--fail-on`` gate that turns regressions into
a non-zero exit for CI.

A throughput change counts only when it is both significant (U test p-value
below ``alpha``) and larger than the noise floor: timings on shared CI
machines move by a few percent between identical runs, and a U test on many
samples finds such moves "significant".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.reporting import html as h
from harness.reporting.report import CELL_KEYS, markdown_table
from harness.status import BAD_STATUSES

ALPHA = 0.01  # significance level of the U test
NOISE_FLOOR = 0.05  # relative throughput changes below this are noise
DRIFT_FACTOR = 2.0  # max_rel_err must grow by more than this factor to count
DRIFT_ABS_FLOOR = 1e-12  # ... and by more than this much (0 -> 1e-16 is not drift)
MIN_SAMPLES = 3  # fewer samples on either side: no U test


class FailOnError(ValueError):
    """A malformed ``--fail-on`` value."""


@dataclass(frozen=True)
class Gate:
    """What ``--fail-on`` turns into a failure: throughput drops of at least
    ``throughput`` (a fraction; None = not gated), drift regressions, status
    regressions."""

    throughput: float | None = None
    drift: bool = False
    status: bool = False


GATE_KINDS = ("throughput=N%", "drift", "status")


def parse_fail_on(text: str) -> Gate:
    """``"throughput=10%,drift,status"`` -> Gate; ``FailOnError`` names the valid forms."""
    throughput: float | None = None
    drift = status = False
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if name == "throughput":
            number = value.strip().rstrip("%")
            try:
                throughput = float(number) / 100.0
            except ValueError:
                raise FailOnError(f"bad --fail-on item {item!r}; expected e.g. throughput=10%") from None
            if not 0 < throughput < 1:
                raise FailOnError(f"bad --fail-on item {item!r}; the percentage must be in (0, 100)")
        elif name == "drift" and not value:
            drift = True
        elif name == "status" and not value:
            status = True
        else:
            raise FailOnError(f"unknown --fail-on item {item!r}; valid: {', '.join(GATE_KINDS)}")
    return Gate(throughput, drift, status)


def u_test(baseline: list[float], current: list[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value (None when a side has too few samples)."""
    if len(baseline) < MIN_SAMPLES or len(current) < MIN_SAMPLES:
        return None
    if set(baseline) == set(current) and len(set(baseline)) == 1:
        return 1.0  # identical constants: scipy would warn and return nan
    from scipy.stats import mannwhitneyu  # here, not at the top: scipy.stats takes ~1 s to import

    return float(mannwhitneyu(baseline, current, alternative="two-sided").pvalue)


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f


@dataclass
class CellChange:
    """One cell's change from baseline to current."""

    case: str
    device: str
    precision: str
    backend: str
    base_status: str | None
    status: str | None
    base_throughput: float | None = None
    throughput: float | None = None
    throughput_change: float | None = None  # current / baseline - 1
    p_value: float | None = None
    throughput_verdict: str = ""  # slower, faster, unchanged, untested, or ""
    base_max_rel_err: float | None = None
    max_rel_err: float | None = None
    drift_verdict: str = ""  # worse, better, unchanged, or ""
    status_verdict: str = ""  # new failure, fixed, lost coverage, new cell, removed, changed, unchanged

    def regressions(self, gate: Gate) -> list[str]:
        """Why this cell fails ``gate`` (empty: it passes)."""
        why = []
        drop = -(self.throughput_change or 0.0)
        if gate.throughput is not None and self.throughput_verdict == "slower" and drop >= gate.throughput:
            why.append(f"throughput {self.throughput_change:+.1%} (p={self.p_value:.2g})")
        if gate.drift and self.drift_verdict == "worse":
            why.append(f"drift {self.base_max_rel_err:.3g} -> {self.max_rel_err:.3g}")
        if gate.status and self.status_verdict in ("new failure", "lost coverage"):
            why.append(f"status {self.base_status or 'absent'} -> {self.status or 'absent'}")
        return why

    @property
    def label(self) -> str:
        return f"{self.case} {self.device}/{self.backend}/{self.precision}"


def _status_verdict(base: str | None, cur: str | None) -> str:
    if base == cur:
        return "unchanged"
    if cur in BAD_STATUSES and base in BAD_STATUSES:
        return "changed"  # one kind of failure for another
    if cur in BAD_STATUSES:
        return "new failure"  # from pass, skip, xfail, another bad status's absence, or a new cell
    if base in BAD_STATUSES and cur == "pass":
        return "fixed"
    if base == "pass" and cur in ("skip", "xfail", None):
        return "lost coverage"  # a cell that passed no longer runs or is excused
    if base is None:
        return "new cell"
    if cur is None:
        return "removed"
    return "changed"


def _drift_verdict(base: float | None, cur: float | None) -> str:
    if base is None or cur is None:
        return ""
    if math.isnan(cur) and not math.isnan(base):
        return "worse"
    if math.isnan(base) or math.isnan(cur):
        return "unchanged" if math.isnan(base) and math.isnan(cur) else "better"
    if cur > DRIFT_FACTOR * base and cur - base > DRIFT_ABS_FLOOR:
        return "worse"
    if base > DRIFT_FACTOR * cur and base - cur > DRIFT_ABS_FLOOR:
        return "better"
    return "unchanged"


def compare_cell(base: dict[str, Any] | None, cur: dict[str, Any] | None,
                 noise_floor: float = NOISE_FLOOR, alpha: float = ALPHA) -> CellChange:  # fmt: skip
    """The change of one cell (either side may be missing)."""
    any_row = cur or base or {}
    change = CellChange(
        *(str(any_row.get(k)) for k in CELL_KEYS),
        base_status=(base or {}).get("status"),
        status=(cur or {}).get("status"),
    )
    change.status_verdict = _status_verdict(change.base_status, change.status)
    if base is None or cur is None:
        return change
    change.base_throughput = _float(base.get("throughput_items_s"))
    change.throughput = _float(cur.get("throughput_items_s"))
    if change.base_throughput and change.throughput:
        change.throughput_change = change.throughput / change.base_throughput - 1.0
        samples_b, samples_c = base.get("samples_ms") or [], cur.get("samples_ms") or []
        change.p_value = u_test([float(s) for s in samples_b], [float(s) for s in samples_c])
        big = abs(change.throughput_change) >= noise_floor
        if change.p_value is None:
            change.throughput_verdict = "untested"
        elif big and change.p_value < alpha:
            change.throughput_verdict = "slower" if change.throughput_change < 0 else "faster"
        else:
            change.throughput_verdict = "unchanged"
    change.base_max_rel_err = _float(base.get("max_rel_err"))
    change.max_rel_err = _float(cur.get("max_rel_err"))
    change.drift_verdict = _drift_verdict(change.base_max_rel_err, change.max_rel_err)
    return change


@dataclass
class Comparison:
    """Every cell's change, and what a reader must know about the two runs."""

    changes: list[CellChange]
    warnings: list[str] = field(default_factory=list)
    noise_floor: float = NOISE_FLOOR
    alpha: float = ALPHA

    def regressions(self, gate: Gate) -> list[tuple[CellChange, list[str]]]:
        """The cells that fail ``gate``, each with its reasons."""
        return [(c, why) for c in self.changes if (why := c.regressions(gate))]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([vars(c) for c in self.changes])


def _key(row: dict[str, Any]) -> str:
    return str(row.get("cell_id") or "|".join(str(row.get(k)) for k in CELL_KEYS))


def compare_runs(
    baseline: list[dict[str, Any]],
    current: list[dict[str, Any]],
    baseline_env: dict[str, Any] | None = None,
    current_env: dict[str, Any] | None = None,
    noise_floor: float = NOISE_FLOOR,
    alpha: float = ALPHA,
) -> Comparison:
    """Compare two runs' rows cell by cell (cells are matched by cell id)."""
    base = {_key(r): r for r in baseline}
    cur = {_key(r): r for r in current}
    keys = list(dict.fromkeys([*base, *cur]))
    changes = [compare_cell(base.get(k), cur.get(k), noise_floor, alpha) for k in keys]
    warnings = []
    fb, fc = (baseline_env or {}).get("fingerprint"), (current_env or {}).get("fingerprint")
    if fb and fc and fb != fc:
        diffs = [
            f"{k}: {(baseline_env or {}).get(k)} -> {(current_env or {}).get(k)}"
            for k in ("os", "machine", "cpu", "cores", "python", "torch", "onnxruntime", "cuda",
                      "gpu", "torch_threads", "torch_interop_threads")
            if (baseline_env or {}).get(k) != (current_env or {}).get(k)
        ]  # fmt: skip
        warnings.append(
            "environment fingerprints differ (" + (", ".join(diffs) or f"{fb} vs {fc}")
            + "); throughput changes may reflect the machine, not the code"
        )
    elif not (fb and fc):
        warnings.append("an env.json fingerprint is missing; cannot tell whether the machines match")
    return Comparison(changes, warnings, noise_floor, alpha)


def _table(comparison: Comparison, which: str) -> pd.DataFrame:
    rows = []
    for c in comparison.changes:
        if which == "throughput" and c.throughput_verdict in ("slower", "faster"):
            rows.append({**{k: getattr(c, k) for k in CELL_KEYS}, "verdict": c.throughput_verdict,
                         "baseline items/s": c.base_throughput, "current items/s": c.throughput,
                         "change": f"{c.throughput_change:+.1%}", "p": c.p_value})  # fmt: skip
        elif which == "drift" and c.drift_verdict in ("worse", "better"):
            rows.append({**{k: getattr(c, k) for k in CELL_KEYS}, "verdict": c.drift_verdict,
                         "baseline max_rel_err": c.base_max_rel_err,
                         "current max_rel_err": c.max_rel_err})  # fmt: skip
        elif which == "status" and c.status_verdict not in ("unchanged", ""):
            rows.append({**{k: getattr(c, k) for k in CELL_KEYS}, "verdict": c.status_verdict,
                         "baseline": c.base_status, "current": c.status})  # fmt: skip
    return pd.DataFrame(rows)


def _counts(comparison: Comparison) -> str:
    frame = comparison.frame()
    if frame.empty:
        return "no cells"
    parts = [f"{len(frame)} cells"]
    for col, verdicts in (("throughput_verdict", ("slower", "faster")), ("drift_verdict", ("worse",)),
                          ("status_verdict", ("new failure", "fixed", "lost coverage"))):  # fmt: skip
        for v in verdicts:
            n = int((frame[col] == v).sum())
            if n:
                parts.append(f"{n} {v if col != 'drift_verdict' else 'with worse drift'}")
    return ", ".join(parts)


def _criteria(comparison: Comparison) -> str:
    return (f"A throughput change counts when the Mann-Whitney U test on the latency samples gives "
            f"p < {comparison.alpha:g} and the change is at least {comparison.noise_floor:.0%} "
            f"(noise floor); drift counts when max_rel_err grows more than {DRIFT_FACTOR:g}x.")  # fmt: skip


def md_text(value: object) -> str:
    """Text from a run (a case name, a reason, an env value) as inert Markdown on
    one line: no HTML (``<img>``, an unclosed ``<!--``), links or images."""
    text = " ".join(str(value).split()).replace("&", "&amp;").replace("<", "&lt;")
    return re.sub(r"([\\`\[\]])", r"\\\1", text)


def markdown(comparison: Comparison, title: str = "torchparity compare", gate: Gate | None = None) -> str:
    """The comparison as Markdown (for a CI job summary or a PR comment)."""
    lines = [f"# {md_text(title)}", "", _counts(comparison), ""]
    lines += [f"> **warning:** {md_text(w)}" for w in comparison.warnings]
    if comparison.warnings:
        lines.append("")
    if gate is not None:
        failing = comparison.regressions(gate)
        lines += [f"**Gate: {'FAILED' if failing else 'passed'}** ({len(failing)} regressions)", ""]
        lines += [f"- {md_text(c.label)}: {md_text('; '.join(why))}" for c, why in failing[:50]]
        lines.append("")
    for which, heading in (("status", "Status changes"), ("throughput", "Throughput changes"),
                           ("drift", "Drift changes")):  # fmt: skip
        table = _table(comparison, which)
        lines += [f"## {heading}", "", markdown_table(table) if not table.empty else "None.", ""]
    lines += [_criteria(comparison), ""]
    return "\n".join(lines)


def html_page(comparison: Comparison, title: str = "torchparity compare", gate: Gate | None = None) -> str:
    """The comparison as a self-contained page."""
    warn = "".join(f"<p class='note'>warning: {h.esc(w)}</p>" for w in comparison.warnings)
    sections = [h.section("Summary", f"<p>{h.esc(_counts(comparison))}</p>{warn}"
                          f"<p class='muted'>{h.esc(_criteria(comparison))}</p>", "summary")]  # fmt: skip
    if gate is not None:
        failing = comparison.regressions(gate)
        items = "".join(f"<li>{h.esc(c.label)}: {h.esc('; '.join(why))}</li>" for c, why in failing)
        verdict = "FAILED" if failing else "passed"
        sections.append(h.section(f"Gate: {verdict}", f"<ul>{items}</ul>" if items else "", "gate"))
    for which, heading in (("status", "Status changes"), ("throughput", "Throughput changes"),
                           ("drift", "Drift changes")):  # fmt: skip
        sections.append(h.section(heading, h.table(_table(comparison, which), f"{which}-changes"), which))
    sections.append(h.section("Every cell", h.table(comparison.frame(), "all-cells"), "all"))
    return h.page(title, sections)
