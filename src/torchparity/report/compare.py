"""Comparing two runs (baseline, current) cell by cell: throughput change,
drift change, status change; and what the ``--fail-on`` gate (``gate.py``)
makes of them for CI. The statistics are in ``compare_stats.py``, the
Markdown and HTML in ``compare_render.py``.

Throughput is judged on *rounds*, not samples: the samples of one timing
window are correlated (a slow minute moves them together), so a test that
treats them as independent flags identical code. Each cell was timed in
several rounds spread over its run; the change is the ratio of the medians of
round medians, tested with a moderated t-test on log round medians (optionally
each divided by the calibration workload timed in the same window): with 3
rounds a side a cell's own variance has 4 degrees of freedom, so one slow
round makes Welch's test blind to a 20% change; the moderated test shrinks
each cell's variance toward the typical spread of all cells (limma's
empirical-Bayes idea, with a fixed prior weight ``PRIOR_DOF``). The
noise floor comes from the data: ``NOISE_K`` times the typical round-to-round
spread of the two runs (never below ``--noise-floor``). When that floor is
above the gate's threshold, the runs are *too noisy to judge* at that
threshold and the gate says so instead of flagging regressions.

Rows without rounds (runs made with ``--rounds 1`` or before rounds existed)
fall back to a Mann-Whitney U test on the samples, with a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from torchparity._core import row as row_mod
from torchparity._core import stats
from torchparity._core.environment import FINGERPRINT_FIELDS
from torchparity._core.status import BAD_STATUSES, Status
from torchparity.report.compare_stats import (
    ALPHA,
    DRIFT_ABS_FLOOR,
    DRIFT_FACTOR,
    MIN_ROUNDS,
    NOISE_FLOOR,
    PRIOR_DOF,
    ROUND_ALPHA,
    Groups,
    change_groups,
    dispersion_floor,
    explained_by_rounds,
    log_rounds,
    median_se,
    moderated_p,
    noise_multiple,
    pooled_sd,
    robust_sd,
    u_test,
)
from torchparity.report.gate import GATE_KINDS, FailOnError, Gate, parse_fail_on
from torchparity.report.markdown import md_text
from torchparity.report.report import CELL_KEYS


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
    throughput_verdict: str = ""  # slower, faster, unchanged, noisy, untested, or ""
    throughput_basis: str = ""  # rounds, rounds/calibration, samples (one window), or ""
    round_spread: float | None = None  # pooled sd of log round medians, both runs
    rounds: int | None = None  # the fewer rounds of the two sides
    log_rounds: tuple[list[float], list[float]] | None = field(
        default=None, repr=False
    )  # what was tested
    base_instructions: float | None = None  # instructions per call (--count-instructions)
    instructions: float | None = None
    instructions_change: float | None = None  # current / baseline - 1
    base_max_rel_err: float | None = None
    max_rel_err: float | None = None
    drift_verdict: str = ""  # worse, better, unchanged, or ""
    status_verdict: str = (
        ""  # new failure, fixed, lost coverage, new cell, removed, changed, unchanged
    )

    def regressions(self, gate: Gate) -> list[str]:
        """Why this cell fails ``gate`` (empty: it passes)."""
        why = []
        drop = -(self.throughput_change or 0.0)
        if (
            gate.throughput is not None
            and self.throughput_verdict == "slower"
            and drop >= gate.throughput
        ):
            why.append(f"throughput {self.throughput_change:+.1%} (p={self.p_value:.2g})")
        grew = self.instructions_change
        if gate.instructions is not None and grew is not None and grew >= gate.instructions:
            why.append(f"instructions per call {grew:+.1%}")
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
    if base in BAD_STATUSES and cur == Status.PASS:
        return "fixed"
    if base == Status.PASS and cur in (Status.SKIP, Status.XFAIL, None):
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


def _round_change(
    change: CellChange, base: dict[str, Any], cur: dict[str, Any], normalize: bool
) -> bool:
    """Fill the change from round medians; False when a side has no rounds."""
    lb, lc = log_rounds(base, normalize), log_rounds(cur, normalize)
    if lb is None or lc is None:
        return False

    diff = stats.median(lc) - stats.median(lb)  # log latency: > 0 is slower
    change.throughput_change = math.exp(-diff) - 1.0
    change.p_value = moderated_p(
        lb, lc, None
    )  # re-tested with the run's typical spread in compare_runs
    change.log_rounds = (lb, lc)
    change.round_spread = pooled_sd(lb, lc)
    change.rounds = min(len(lb), len(lc))
    change.throughput_basis = "rounds/calibration" if normalize else "rounds"
    return True


def _sample_change(change: CellChange, base: dict[str, Any], cur: dict[str, Any]) -> None:
    samples_b, samples_c = base.get("samples_ms") or [], cur.get("samples_ms") or []
    change.p_value = u_test([float(s) for s in samples_b], [float(s) for s in samples_c])
    change.throughput_basis = "samples (one window)"


def compare_cell(
    base: dict[str, Any] | None,
    cur: dict[str, Any] | None,
    noise_floor: float = NOISE_FLOOR,
    alpha: float = ALPHA,
    normalize: bool = False,
) -> CellChange:
    """The change of one cell (either side may be missing), judged against
    ``noise_floor``; ``judge`` (below) re-judges with the run-level floor."""
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
        if not _round_change(change, base, cur, normalize):
            _sample_change(change, base, cur)
        judge(change, noise_floor, alpha)
    change.base_instructions = _float(base.get("instructions_per_call"))
    change.instructions = _float(cur.get("instructions_per_call"))
    if change.base_instructions and change.instructions:
        change.instructions_change = change.instructions / change.base_instructions - 1.0
    change.base_max_rel_err = _float(base.get("max_rel_err"))
    change.max_rel_err = _float(cur.get("max_rel_err"))
    change.drift_verdict = _drift_verdict(change.base_max_rel_err, change.max_rel_err)
    return change


def judge(change: CellChange, noise_floor: float, alpha: float = ALPHA) -> None:
    """The throughput verdict: significant and beyond the floor. A cell
    judged on rounds whose own spread makes the floor unreachable is ``noisy``."""
    if change.throughput_change is None:
        return
    rounds = change.throughput_basis.startswith("rounds")
    level = ROUND_ALPHA if rounds else alpha
    big = abs(change.throughput_change) >= noise_floor
    if change.p_value is None:
        change.throughput_verdict = "untested"
    elif (
        rounds
        and big
        and (change.round_spread or 0.0) * noise_multiple(change.rounds or MIN_ROUNDS)
        > abs(math.log1p(change.throughput_change))
    ):
        change.throughput_verdict = "noisy"  # its rounds spread more than the change
    elif big and change.p_value < level:
        change.throughput_verdict = "slower" if change.throughput_change < 0 else "faster"
    else:
        change.throughput_verdict = "unchanged"


def derived_noise_floor(
    changes: list[CellChange], minimum: float = NOISE_FLOOR
) -> tuple[float, float | None]:
    """(floor, typical spread): ``noise_multiple`` times the median
    round-to-round spread over the cells judged on rounds, never below ``minimum``."""

    judged = [c for c in changes if c.round_spread is not None]
    if not judged:
        return minimum, None
    typical = stats.median([c.round_spread for c in judged if c.round_spread is not None])
    rounds = int(stats.median([c.rounds or MIN_ROUNDS for c in judged]))
    return max(minimum, math.expm1(noise_multiple(rounds) * typical)), typical


def machine_shift(
    baseline: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]
) -> float | None:
    """How much slower (> 0) or faster (< 0) the machine ran the current run:
    the median over matched cells of the change of their calibration
    workload's median; None when no cell has calibration figures on both sides."""

    logs = []
    for key, cur in current.items():
        base = baseline.get(key) or {}
        cal_b, cal_c = base.get("calibration_round_ms"), cur.get("calibration_round_ms")
        if (
            isinstance(cal_b, list)
            and isinstance(cal_c, list)
            and cal_b
            and cal_c
            and min(cal_b) > 0
            and min(cal_c) > 0
        ):
            logs.append(math.log(stats.median(cal_c) / stats.median(cal_b)))
    return math.expm1(stats.median(logs)) if logs else None


def change_se(change: CellChange, typical: float) -> float:
    """A cell's standard error of its log change: its round spread shrunk
    toward the typical one (as the moderated test does), for a difference of
    two medians of ``rounds`` round medians."""
    rounds = change.rounds or MIN_ROUNDS
    dof = 2 * rounds - 2
    own = change.round_spread if change.round_spread is not None else typical
    sd = math.sqrt((PRIOR_DOF * typical**2 + dof * own**2) / (PRIOR_DOF + dof))
    return sd * math.sqrt(2.0) * median_se(rounds)


def change_dispersion(
    changes: list[CellChange], typical: float | None, reference: float = 0.0
) -> tuple[float | None, Groups | None]:
    """The scatter of the round-judged cells' log throughput changes around
    their group's median beyond what their rounds explain: robust sd (1.4826
    MAD) with the rounds' share (the typical standard error of a change)
    taken out in quadrature, or 0 when a chi-square test finds no scatter
    beyond the rounds' (``SCATTER_ALPHA``); and the groups
    (``change_groups``). A pull request moves some cells by a common factor
    (two levels) or all by one (one level); cells scattered widely around
    their level mean the machine moved them, each by its own share (what
    ``--normalize`` cannot cancel). ``reference``: the log change the machine
    itself made (the calibration workload's), which names the steady group."""
    judged = [
        c
        for c in changes
        if c.log_rounds is not None and c.throughput_change is not None and c.throughput_change > -1
    ]
    if len(judged) < 4 or typical is None:  # too few cells to tell scatter from a change
        return None, None
    logs = [math.log1p(c.throughput_change) for c in judged]  # type: ignore[arg-type]
    ses = [change_se(c, typical) for c in judged]
    groups, residuals, z = change_groups(logs, ses, reference)
    if explained_by_rounds(z, 2 if groups.moved else 1):
        return 0.0, groups
    explained = stats.median(ses)
    return math.sqrt(max(0.0, robust_sd(residuals) ** 2 - explained**2)), groups


@dataclass
class Comparison:
    """Every cell's change, and what a reader must know about the two runs.
    ``noise_floor``: the floor the round-based verdicts used (derived from the
    runs' own round-to-round spread, ``typical_spread``)."""

    changes: list[CellChange]
    warnings: list[str] = field(default_factory=list)
    noise_floor: float = NOISE_FLOOR
    alpha: float = ALPHA
    typical_spread: float | None = None
    normalized: bool = False
    machine_shift: float | None = (
        None  # calibration workload, current vs baseline (> 0: slower machine)
    )
    dispersion: float | None = None  # robust sd of the cells' log changes (change_dispersion)
    groups: Groups | None = None  # the changes as one level or two (change_groups)
    # Why instruction counts of the two runs cannot be compared (different CPUs), or "".
    instructions_incomparable: str = ""

    def too_noisy(self, gate: Gate | None) -> bool:
        """The runs cannot resolve the gate's throughput threshold: the derived
        floor is above it."""
        return bool(
            gate
            and gate.throughput is not None
            and self.typical_spread is not None
            and self.noise_floor > gate.throughput
        )

    def regressions(self, gate: Gate) -> list[tuple[CellChange, list[str]]]:
        """The cells that fail ``gate``, each with its reasons. When the runs
        are too noisy to judge at the gate's threshold, a cell still fails on
        throughput when it is significantly slower by more than the noise
        floor (its verdict ``slower``): beyond both, it is judged."""
        if self.instructions_incomparable:
            gate = replace(gate, instructions=None)
        return [(c, why) for c in self.changes if (why := c.regressions(gate))]

    def floor_cause(self) -> str:
        """What set the throughput floor: the rounds' spread, the machine's
        speed change, or the cells' scatter."""
        if self.dispersion is not None and dispersion_floor(self.dispersion) >= self.noise_floor:
            return (
                f"the cells' changes scatter {self.dispersion:.1%} (robust sd) around their level"
            )
        if (
            self.machine_shift is not None
            and not self.normalized
            and math.expm1(abs(math.log1p(self.machine_shift))) >= self.noise_floor
        ):
            return f"the calibration workload's speed changed {self.machine_shift:+.0%} between the runs"
        return f"round-to-round spread {self.typical_spread or 0.0:.1%}"

    def unjudged(self, gate: Gate | None) -> list[tuple[CellChange, str]]:
        """The cells the gate could not judge, each with why: every counted
        cell when the runs ran on different CPUs (instructions); every timed
        cell when the runs are too noisy for the throughput threshold, else the
        cells measured slower by at least the threshold whose own rounds
        spread more than their change."""
        out: list[tuple[CellChange, str]] = []
        if gate is not None and gate.instructions is not None and self.instructions_incomparable:
            why = f"instructions: {self.instructions_incomparable}"
            out += [(c, why) for c in self.changes if c.instructions_change is not None]
        if gate is None or gate.throughput is None:
            return out
        if self.too_noisy(gate):
            why = (
                f"noise floor {self.noise_floor:.1%} > {gate.throughput:.0%}: {self.floor_cause()}"
            )
            return out + [
                (c, why)
                for c in self.changes
                if c.throughput_change is not None and c.throughput_verdict != "slower"
            ]
        return out + [
            (c, "its rounds spread more than its change")
            for c in self.changes
            if c.throughput_verdict == "noisy" and -(c.throughput_change or 0.0) >= gate.throughput
        ]

    def failed(self, gate: Gate) -> bool:
        return bool(self.regressions(gate)) or (gate.noisy and bool(self.unjudged(gate)))

    def outcome(self, gate: Gate) -> str:
        """``failed``, ``not judged`` (nothing failed, but some cells'
        throughput or instructions could not be judged) or ``passed``."""
        if self.failed(gate):
            return "failed"
        return "not judged" if self.unjudged(gate) else "passed"

    def gate_line(self, gate: Gate) -> str:
        """One line: the gate's outcome and, when cells could not be judged, which and why."""
        outcome = self.outcome(gate)
        line = f"**Gate: {outcome.upper() if outcome == 'failed' else outcome}**"
        failing = self.regressions(gate)
        if failing:
            line += f": {len(failing)} regressions"
        unjudged = self.unjudged(gate)
        if unjudged:
            names = ", ".join(md_text(c.label) for c, _ in unjudged[:5])
            more = f" and {len(unjudged) - 5} more" if len(unjudged) > 5 else ""
            reasons = "; ".join(dict.fromkeys(md_text(why) for _, why in unjudged))
            line += (
                f"{';' if failing else ':'} {len(unjudged)} cells could not be judged "
                f"({names}{more}): {reasons}"
            )
        return line

    def noise_line(self, gate: Gate | None = None) -> str:
        if self.typical_spread is None:
            return ""
        line = (
            f"Round-to-round spread (median over cells) {self.typical_spread:.1%}: noise floor "
            f"{self.noise_floor:.1%}{' (after dividing by the calibration workload)' if self.normalized else ''}."
        )
        if (
            self.machine_shift is not None
            and not self.normalized
            and abs(self.machine_shift) >= NOISE_FLOOR
        ):
            line += (
                f" The calibration workload ran {abs(self.machine_shift):.0%} "
                f"{'slower' if self.machine_shift > 0 else 'faster'} in the current run: the machine's "
                "speed changed between the runs, so no change smaller than that is judged."
            )
        if (
            self.dispersion is not None and dispersion_floor(self.dispersion) >= self.noise_floor
        ):  # it set the floor
            line += (
                f" The cells' changes scatter around their median {self.dispersion:.1%} (robust sd) more "
                "than their rounds' spread explains: the machine moved them, each by its own share."
            )
        if self.groups is not None and self.groups.moved:
            g = self.groups
            line += (
                f" The cells' changes fall in two groups: {g.steady} steady at "
                f"{g.steady_change:+.1%} and {g.moved} moved together by {g.moved_change:+.1%}; "
                "the scatter is measured within the groups."
            )
        if self.too_noisy(gate):
            assert gate is not None and gate.throughput is not None
            line += (
                f" **Too noisy to judge throughput at {gate.throughput:.0%}**: these runs cannot "
                f"tell a {gate.throughput:.0%} change from noise; only a slowdown beyond the "
                f"{self.noise_floor:.1%} floor is flagged. Re-run on a quieter machine, with more "
                "--rounds, or with --normalize."
            )
        return line

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{k: v for k, v in vars(c).items() if k != "log_rounds"} for c in self.changes]
        )


def compare_runs(
    baseline: list[dict[str, Any]],
    current: list[dict[str, Any]],
    baseline_env: dict[str, Any] | None = None,
    current_env: dict[str, Any] | None = None,
    noise_floor: float = NOISE_FLOOR,
    alpha: float = ALPHA,
    normalize: bool = False,
) -> Comparison:
    """Compare two runs' rows cell by cell (cells are matched by cell id).
    ``noise_floor`` is the least floor; cells with rounds are judged against
    the floor derived from the runs' round-to-round spread."""
    base = {row_mod.cell_key(r): r for r in baseline}
    cur = {row_mod.cell_key(r): r for r in current}
    keys = list(dict.fromkeys([*base, *cur]))
    changes = [compare_cell(base.get(k), cur.get(k), noise_floor, alpha, normalize) for k in keys]
    floor, typical = derived_noise_floor(changes, noise_floor)
    shift = machine_shift(base, cur)
    if (
        shift is not None and not normalize
    ):  # cells move with the machine, each by its own share of it
        floor = max(floor, math.expm1(abs(math.log1p(shift))))
    # The machine's reference level: the calibration workload's change (cancelled by --normalize).
    reference = math.log1p(shift) if shift is not None and not normalize else 0.0
    dispersion, groups = change_dispersion(changes, typical, reference)
    if dispersion is not None:
        floor = max(floor, dispersion_floor(dispersion))
    for change in changes:
        if change.throughput_basis.startswith("rounds") and change.log_rounds is not None:
            change.p_value = moderated_p(*change.log_rounds, typical)
            judge(change, floor, alpha)
    warnings = []
    single = sum(1 for c in changes if c.throughput_basis == "samples (one window)")
    if single:
        warnings.append(
            f"{single} cells have no timing rounds on one side (--rounds 1 or an older run): "
            "judged on the samples of one window, which a slow minute moves together"
        )
    for side, rows in (("baseline", baseline), ("current", current)):
        note = row_mod.partial_timing_note(rows)
        if note:  # judged on the rounds they have, fewer than planned
            warnings.append(f"{side}: {note}")
    if normalize and typical is None:
        warnings.append(
            "--normalize: no cell has calibration figures in both runs; nothing was normalised"
        )
    fb, fc = (baseline_env or {}).get("fingerprint"), (current_env or {}).get("fingerprint")
    if fb and fc and fb != fc:
        diffs = [
            f"{k}: {(baseline_env or {}).get(k)} -> {(current_env or {}).get(k)}"
            for k in FINGERPRINT_FIELDS
            if (baseline_env or {}).get(k) != (current_env or {}).get(k)
        ]
        warnings.append(
            "environment fingerprints differ ("
            + (", ".join(diffs) or f"{fb} vs {fc}")
            + "); throughput changes may reflect the machine, not the code"
        )
    elif not (fb and fc):
        warnings.append(
            "an env.json fingerprint is missing; cannot tell whether the machines match"
        )
    result = Comparison(
        changes, warnings, floor, alpha, typical, normalize, shift, dispersion, groups
    )
    result.instructions_incomparable = instructions_incomparable(
        baseline, current, baseline_env, current_env
    )
    return result


def instructions_incomparable(
    baseline: list[dict[str, Any]],
    current: list[dict[str, Any]],
    baseline_env: dict[str, Any] | None,
    current_env: dict[str, Any] | None,
) -> str:
    """Why two runs' instruction counts measure different code ("" when they do not)."""
    cpu_b, cpu_c = (baseline_env or {}).get("cpu"), (current_env or {}).get("cpu")
    if cpu_b and cpu_c and cpu_b != cpu_c:  # MKL, oneDNN and ORT choose code by instruction set
        return f"the runs ran on different CPUs ({cpu_b} vs {cpu_c})"
    methods_b, methods_c = _counting_methods(baseline), _counting_methods(current)
    if methods_b and methods_c and methods_b != methods_c:  # other kernels were counted
        return (
            f"the runs counted instructions differently ({', '.join(sorted(methods_b))} "
            f"vs {', '.join(sorted(methods_c))})"
        )
    return ""


def _counting_methods(rows: list[dict[str, Any]]) -> set[str]:
    """How a run's counted cells were counted (``instructions_method``)."""
    return {str(r["instructions_method"]) for r in rows if r.get("instructions_method")}


# The gate and the statistics live in gate.py and compare_stats.py, the
# rendering in compare_render.py; these names stay importable from here.
__all__ = [
    "ALPHA",
    "GATE_KINDS",
    "NOISE_FLOOR",
    "ROUND_ALPHA",
    "CellChange",
    "Comparison",
    "FailOnError",
    "Gate",
    "compare_cell",
    "compare_runs",
    "instructions_incomparable",
    "judge",
    "parse_fail_on",
    "u_test",
]
