"""Comparing two runs (baseline, current) cell by cell: throughput change,
drift change, status change; and the ``--fail-on`` gate that turns
regressions into a non-zero exit for CI.

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
import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from torchparity._core import row as row_mod
from torchparity._core import stats
from torchparity._core.status import BAD_STATUSES
from torchparity.report import html as h
from torchparity.report.report import CELL_KEYS, markdown_table

ALPHA = 0.01  # significance level of the U test (single-window rows)
ROUND_ALPHA = 0.05  # significance level of the t-test on round medians (few rounds: little power)
NOISE_FLOOR = 0.05  # relative throughput changes below this are always noise (the floor's minimum)
DISPERSION_K = (
    3.0  # the floor is also this many robust sds of the cells' scatter (change_dispersion)
)
NOISE_K = 3.5  # the derived floor: this many standard errors of a difference of round-level means
PRIOR_DOF = (
    4.0  # weight of the typical spread in a cell's moderated variance (as 2 extra rounds a side)
)
MIN_ROUNDS = 2  # fewer rounds on a side: the single-window fallback
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
    noisy: bool = (
        False  # fail (rather than pass with a warning) when the runs are too noisy to judge
    )
    instructions: float | None = None  # growth of instructions per call (--count-instructions runs)


GATE_KINDS = ("throughput=N%", "instructions=N%", "drift", "status", "noisy")


def parse_fail_on(text: str) -> Gate:
    """``"throughput=10%,drift,status"`` -> Gate; ``FailOnError`` names the valid forms."""
    shares: dict[str, float | None] = {"throughput": None, "instructions": None}
    drift = status = noisy = False
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if name in shares:
            number = value.strip().rstrip("%")
            try:
                share = float(number) / 100.0
            except ValueError:
                raise FailOnError(
                    f"bad --fail-on item {item!r}; expected e.g. {name}=10%"
                ) from None
            if not 0 < share < 1:
                raise FailOnError(
                    f"bad --fail-on item {item!r}; the percentage must be in (0, 100)"
                )
            shares[name] = share
        elif name == "drift" and not value:
            drift = True
        elif name == "status" and not value:
            status = True
        elif name == "noisy" and not value:
            noisy = True
        else:
            raise FailOnError(f"unknown --fail-on item {item!r}; valid: {', '.join(GATE_KINDS)}")
    return Gate(shares["throughput"], drift, status, noisy, shares["instructions"])


def u_test(baseline: list[float], current: list[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value (None when a side has too few samples)."""
    if len(baseline) < MIN_SAMPLES or len(current) < MIN_SAMPLES:
        return None
    if set(baseline) == set(current) and len(set(baseline)) == 1:
        return 1.0  # identical constants: scipy would warn and return nan
    from scipy.stats import mannwhitneyu  # here, not at the top: scipy.stats takes ~1 s to import

    return float(mannwhitneyu(baseline, current, alternative="two-sided").pvalue)


def moderated_p(
    a: list[float], b: list[float], prior_sd: float | None, prior_dof: float = PRIOR_DOF
) -> float:
    """Two-sided p-value of a pooled t-test on ``a`` vs ``b`` whose variance
    is shrunk toward ``prior_sd`` (the typical spread over all cells) with
    ``prior_dof`` degrees of freedom; with no prior, the plain pooled test.
    0 or 1 when no variance is known at all."""
    from scipy.stats import t as student_t

    dof = len(a) + len(b) - 2
    own_var = pooled_sd(a, b) ** 2
    d0 = prior_dof if prior_sd is not None else 0.0
    var = (d0 * (prior_sd or 0.0) ** 2 + dof * own_var) / (d0 + dof) if d0 + dof > 0 else 0.0
    diff = float(np.mean(b) - np.mean(a))
    if var <= 1e-18 * (1.0 + abs(float(np.mean(a)))):  # nothing varies: equal or not, exactly
        return 1.0 if math.isclose(float(np.mean(a)), float(np.mean(b)), rel_tol=1e-9) else 0.0
    t = diff / math.sqrt(var * (1.0 / len(a) + 1.0 / len(b)))
    return float(2.0 * student_t.sf(abs(t), d0 + dof))


def log_rounds(row: dict[str, Any], normalize: bool) -> list[float] | None:
    """log of a row's round medians (each divided by the calibration
    workload of its window when ``normalize``); None without rounds."""
    medians = row.get("round_medians_ms")
    if not isinstance(medians, list) or len(medians) < MIN_ROUNDS:
        return None
    values = [float(m) for m in medians]
    if normalize:
        cal = row.get("calibration_round_ms")
        if not isinstance(cal, list) or len(cal) != len(values):
            return None
        values = [m / float(c) for m, c in zip(values, cal, strict=True)]
    if any(not v > 0 for v in values):
        return None
    return [math.log(v) for v in values]


def pooled_sd(a: list[float], b: list[float]) -> float:
    """Round-to-round spread of two sides (sd of log round medians, pooled)."""

    dof = len(a) + len(b) - 2
    if dof < 1:
        return 0.0
    ss = float(
        ((np.asarray(a) - np.mean(a)) ** 2).sum() + ((np.asarray(b) - np.mean(b)) ** 2).sum()
    )
    return math.sqrt(ss / dof)


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


def noise_multiple(rounds: int) -> float:
    """How many round-to-round spreads a change must exceed with ``rounds``
    rounds a side: ``NOISE_K`` standard errors of the difference of two
    means of ``rounds`` values (3 rounds: 2.9 spreads; 9 rounds: 1.65)."""
    return NOISE_K * math.sqrt(2.0 / max(rounds, 2))


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


# The cells' scatter counts (raises the floor, or rules out two levels) when significant at this level.
SCATTER_ALPHA = 0.01
# Two groups of cells are two levels when their medians lie this many within-group sds apart.
SEPARATION_K = 5.0


@dataclass(frozen=True)
class Groups:
    """The cells' log throughput changes read as one level or two: a change to
    a shared op moves a subset of cells by a common factor while the others
    stay put. ``steady``: how many cells sit in the group nearest the
    machine's reference (the calibration workload's change, or none), at
    ``steady_change``; ``moved`` cells at ``moved_change`` (0 cells: one level)."""

    steady: int
    steady_change: float
    moved: int = 0
    moved_change: float = 0.0


def _split(logs: list[float]) -> tuple[int, float]:
    """Where sorted ``logs`` split best into two runs of values (least
    within-group sum of squares, from prefix sums: linear in the cells): the
    index of the second group's first value, and that sum."""
    n = len(logs)
    total, total_sq = sum(logs), sum(x * x for x in logs)
    best, where, low, low_sq = math.inf, 0, 0.0, 0.0
    for i in range(1, n):
        low, low_sq = low + logs[i - 1], low_sq + logs[i - 1] ** 2
        high, high_sq = total - low, total_sq - low_sq
        ss = (low_sq - low * low / i) + (high_sq - high * high / (n - i))
        if ss < best:
            best, where = ss, i
    return where, best


def _robust_sd(residuals: list[float]) -> float:
    return 1.4826 * stats.median([abs(r) for r in residuals]) if residuals else 0.0


def change_groups(
    logs: list[float], ses: list[float], reference: float = 0.0
) -> tuple[Groups, list[float], list[float]]:
    """(groups, residuals, z): the changes (``ses``: each one's standard
    error from its rounds) as two levels when a split leaves groups whose
    medians lie ``SEPARATION_K`` within-group robust sds (at least the
    typical standard error) apart and whose residuals are what the rounds
    as one level otherwise. A residual is a change minus its group's median;
    z is the residual over its standard error. Two groups of noise, or of a
    machine that moved each cell by its own share, lie closer than that (a
    split of one spread-out group leaves medians ~2-3 within-group sds apart)."""
    pairs = sorted(zip(logs, ses, strict=True))
    ordered, errors = [x for x, _ in pairs], [e for _, e in pairs]

    def fit(medians: list[float]) -> tuple[list[float], list[float]]:
        residuals = [x - m for x, m in zip(ordered, medians, strict=True)]
        return residuals, [
            r / e if e > 0 else math.inf for r, e in zip(residuals, errors, strict=True)
        ]

    centre = stats.median(ordered)
    one = (Groups(len(ordered), math.expm1(centre)), *fit([centre] * len(ordered)))
    if len(ordered) < 4:
        return one
    where, _ = _split(ordered)
    low, high = ordered[:where], ordered[where:]
    m_low, m_high = stats.median(low), stats.median(high)
    residuals, z = fit([m_low] * len(low) + [m_high] * len(high))
    # An odd group's median residual is 0 by construction: left out, it cannot shrink the sd.
    # The within-group sd holds the machine's per-cell scatter as well as the
    # rounds', so a subset moved by a common factor still reads as two levels
    # when each cell also moved by its own small share (a quiet machine does that).
    within = max(_robust_sd([r for r in residuals if r]), stats.median(errors))
    if m_high - m_low < SEPARATION_K * within:
        return one  # close: one level scattered, not two common factors
    steady, moved = (
        (low, high) if abs(m_low - reference) <= abs(m_high - reference) else (high, low)
    )
    m_steady, m_moved = stats.median(steady), stats.median(moved)
    groups = Groups(len(steady), math.expm1(m_steady), len(moved), math.expm1(m_moved))
    return groups, residuals, z


def median_se(n: int) -> float:
    """The standard error of the median of ``n`` normal values, in sds: a
    cell's change is a difference of medians of round medians, which scatter
    more than means (n = 3: 0.67, not 0.58; many: sqrt(pi / 2n))."""
    exact = {1: 1.0, 2: math.sqrt(0.5), 3: math.sqrt(0.4487)}
    return exact.get(n, math.sqrt(math.pi / (2.0 * max(n, 1))))


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
    if _explained_by_rounds(z, 2 if groups.moved else 1):
        return 0.0, groups
    explained = stats.median(ses)
    return math.sqrt(max(0.0, _robust_sd(residuals) ** 2 - explained**2)), groups


def _explained_by_rounds(z: list[float], levels: int) -> bool:
    """Whether residuals over their standard errors (``z``) scatter as the
    rounds explain (chi-square test at ``SCATTER_ALPHA``): a few cells'
    robust sd is itself noisy, and three times an unlucky draw would hide
    real changes."""
    from scipy.stats import chi2

    dof = len(z) - levels
    if dof < 1:
        return False
    return sum(v * v for v in z) < float(chi2.ppf(1.0 - SCATTER_ALPHA, dof))


def dispersion_floor(dispersion: float) -> float:
    """The relative change ``DISPERSION_K`` robust sds of unexplained scatter amount to."""
    return math.expm1(DISPERSION_K * dispersion)


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


def _key(row: dict[str, Any]) -> str:
    return str(row.get("cell_id") or "|".join(str(row.get(k)) for k in CELL_KEYS))


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
    base = {_key(r): r for r in baseline}
    cur = {_key(r): r for r in current}
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
            for k in (
                "os",
                "machine",
                "cpu",
                "cores",
                "python",
                "torch",
                "onnxruntime",
                "cuda",
                "gpu",
                "torch_threads",
                "torch_interop_threads",
            )
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


def md_text(value: object) -> str:
    """Text from a run (a case name, a reason, an env value) as inert Markdown on
    one line: no HTML (``<img>``, an unclosed ``<!--``), links or images."""
    text = " ".join(str(value).split()).replace("&", "&amp;").replace("<", "&lt;")
    return re.sub(r"([\\`\[\]])", r"\\\1", text)


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
