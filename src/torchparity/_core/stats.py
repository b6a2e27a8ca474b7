"""Statistics of timing samples: the one place a timing column is computed.

Every path that times something (one window, rounds, train steps, the C++
runner's own loop, multi-sample cells) keeps its raw per-call samples and
builds its row's timing columns with ``latency_columns``; ``compare`` reads
rows back with the same functions. So ``latency_ms_p90`` means the same on
every row, whichever path wrote it.

**The quantile rule**: linear interpolation between order statistics
(Hyndman and Fan's type 7): with the samples sorted, ``x[0] .. x[n-1]``, the
q-quantile is read at position ``(n - 1) * q``, between its two neighbours.
It is numpy's default (``np.quantile``, ``np.percentile``), ``torch.quantile``'s
(and so what ``torch.utils.benchmark`` reports), R's and Python's
``statistics.quantiles(method="inclusive")``. The median is the 0.5-quantile.
Samples 1..10: median 5.5, quartiles 3.25 and 7.75 (IQR 4.5), p90 9.1, p99 9.91.

Pure functions, torch-free: ``report`` may import them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# numpy's name for the rule above; vectorised code elsewhere passes it to numpy.
QUANTILE_METHOD = "linear"
TUKEY_K = 1.5  # outliers: beyond this many IQRs from the quartiles

# Raw samples: a list of numbers, or a numpy array of them.
Samples = Sequence[float] | np.ndarray


def _array(samples: Samples) -> np.ndarray:
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no samples")
    return arr


def quantile(samples: Samples, q: float) -> float:
    """The ``q``-quantile (0 <= q <= 1) of ``samples`` by the module's rule."""
    return float(np.quantile(_array(samples), q, method=QUANTILE_METHOD))


def median(samples: Samples) -> float:
    return quantile(samples, 0.5)


def quartiles(samples: Samples) -> tuple[float, float]:
    q1, q3 = np.quantile(_array(samples), [0.25, 0.75], method=QUANTILE_METHOD)
    return float(q1), float(q3)


def iqr(samples: Samples) -> float:
    q1, q3 = quartiles(samples)
    return q3 - q1


def cv(samples: Samples) -> float:
    """Coefficient of variation: sample standard deviation / mean (0 for one sample)."""
    arr = _array(samples)
    return float(arr.std(ddof=1) / arr.mean()) if arr.size > 1 else 0.0


def outliers(samples: Samples) -> int:
    """Samples beyond Tukey's fences (``TUKEY_K`` IQRs outside the quartiles)."""
    arr = _array(samples)
    q1, q3 = quartiles(samples)
    spread = TUKEY_K * (q3 - q1)
    return int(((arr < q1 - spread) | (arr > q3 + spread)).sum())


def log_spread(values: Samples) -> float:
    """Standard deviation of log(values) (about the relative spread), positive
    values only; 0 for fewer than 2."""
    arr = np.asarray([v for v in values if v > 0], dtype=np.float64)
    return float(np.log(arr).std(ddof=1)) if len(arr) > 1 else 0.0


def per_second(items: float, seconds: float) -> float:
    """A rate: ``items`` per ``seconds`` (inf for a zero time)."""
    return items / seconds if seconds > 0 else math.inf


def round_medians(rounds: Sequence[Sequence[float]]) -> list[float]:
    """The median of each round that has samples."""
    return [median(r) for r in rounds if len(r)]


def level(rounds: Sequence[Sequence[float]]) -> float:
    """A cell's per-call time: the median of its round medians. A slow round
    moves it no more than any other round; a cell timed in one window has
    one round, and this is the median of its samples."""
    return median(round_medians(rounds))


def latency_columns(
    rounds_s: Sequence[Sequence[float]], batch: int, numbers: Sequence[int] | int = 1
) -> dict[str, Any]:
    """A row's timing columns from its raw samples: ``rounds_s[r]`` holds the
    per-call times (seconds) of round ``r``, each the mean of ``numbers[r]``
    calls (one int: the same for every round; a train step: 1). A cell timed
    in one window passes one round.

    ``latency_ms_median`` is the ``level`` (median of round medians) and
    ``throughput_items_s`` = batch / it; ``latency_ms_iqr``, ``_p90``,
    ``_p99``, ``latency_cv`` and ``outliers`` describe every sample pooled."""
    pooled = [float(s) for r in rounds_s for s in r]
    counts = [numbers] * len(rounds_s) if isinstance(numbers, int) else list(numbers)
    middle = level(rounds_s)
    q1, q3 = quartiles(pooled)
    return {
        "latency_ms_median": middle * 1e3,
        "latency_ms_iqr": (q3 - q1) * 1e3,
        "latency_ms_p90": quantile(pooled, 0.9) * 1e3,
        "latency_ms_p99": quantile(pooled, 0.99) * 1e3,
        "latency_cv": cv(pooled),
        "outliers": outliers(pooled),
        "iterations": sum(n * len(r) for n, r in zip(counts, rounds_s, strict=True)),
        "repeats": len(pooled),
        "throughput_items_s": per_second(batch, middle),
        "samples_ms": [s * 1e3 for s in pooled],
    }


def round_columns(rounds_s: Sequence[Sequence[float]]) -> dict[str, Any]:
    """The columns of a cell timed in rounds: how many, each round's median,
    their spread (``log_spread``) and the samples per round (which cut
    ``samples_ms`` back into rounds)."""
    medians = round_medians(rounds_s)
    return {
        "rounds": len(medians),
        "round_medians_ms": [m * 1e3 for m in medians],
        "latency_round_spread": log_spread(medians),
        "samples_per_round": [len(r) for r in rounds_s],
    }
