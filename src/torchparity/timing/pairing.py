"""Paired speedup: a backend over eager at the same case, device and precision,
from blocks timed in alternation in one worker.

Block ``k`` of the backend and block ``k`` of eager ran back to back, so a
slow stretch of the machine slows both: their ratio cancels it. The speedup is
the median of the per-pair ratios ``eager / backend`` (over every round), and
its interval a percentile bootstrap over the pairs: resampling pairs, not the
two sides separately, is what keeps the pairing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from torchparity._core import stats

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
MIN_PAIRS = 3  # fewer pairs: a point estimate, no interval


@dataclass(frozen=True)
class Speedup:
    """``value`` = eager time / backend time (2.0: the backend is twice as fast)."""

    value: float
    low: float
    high: float
    pairs: int

    def columns(self) -> dict[str, float | int]:
        return {
            "speedup_vs_eager": self.value,
            "speedup_ci_low": self.low,
            "speedup_ci_high": self.high,
            "speedup_pairs": self.pairs,
        }


def pair_blocks(
    eager_rounds: Sequence[Sequence[float]], backend_rounds: Sequence[Sequence[float]]
) -> list[tuple[float, float]]:
    """(eager, backend) per-call times of the blocks that ran side by side:
    block ``k`` of round ``r`` on both sides. Rounds either side lacks are dropped."""
    pairs = []
    for e, b in zip(eager_rounds, backend_rounds, strict=False):
        pairs += [(float(x), float(y)) for x, y in zip(e, b, strict=False) if x > 0 and y > 0]
    return pairs


def bootstrap_median(
    values: np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``values`` (deterministic: seeded)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    # One median per resample (vectorised, by the stats module's rule).
    medians = np.quantile(values[idx], 0.5, axis=1, method=stats.QUANTILE_METHOD)
    tail = (1.0 - confidence) / 2.0
    return stats.quantile(medians, tail), stats.quantile(medians, 1.0 - tail)


def paired_speedup(
    pairs: Sequence[tuple[float, float]],
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Speedup | None:
    """Speedup over eager with its bootstrap interval; None without pairs."""
    if not pairs:
        return None
    logs = np.log(np.asarray([e / b for e, b in pairs], dtype=np.float64))
    value = math.exp(stats.median(logs))
    if len(logs) < MIN_PAIRS:
        return Speedup(value, float("nan"), float("nan"), len(logs))
    low, high = bootstrap_median(logs, resamples, confidence)
    return Speedup(value, float(np.exp(low)), float(np.exp(high)), len(logs))
