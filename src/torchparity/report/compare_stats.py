"""The statistics of comparing two runs, apart from the gate and the rendering
(as asv keeps ``statistics.py`` apart from its commands): the tests on round
medians and samples, the noise floor's parts, and the cells' scatter in one
level or two. Plain numbers in, numbers out; ``compare.py`` applies them to
cells."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from torchparity._core import stats

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


def noise_multiple(rounds: int) -> float:
    """How many round-to-round spreads a change must exceed with ``rounds``
    rounds a side: ``NOISE_K`` standard errors of the difference of two
    means of ``rounds`` values (3 rounds: 2.9 spreads; 9 rounds: 1.65)."""
    return NOISE_K * math.sqrt(2.0 / max(rounds, 2))


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


def robust_sd(residuals: list[float]) -> float:
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
    within = max(robust_sd([r for r in residuals if r]), stats.median(errors))
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


def explained_by_rounds(z: list[float], levels: int) -> bool:
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
