"""A measurement: raw per-call timing samples and the statistics derived from them.

Nothing here stores a number that can be recomputed from the samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


@dataclass
class Measurement:
    """``samples_s[i]`` is the mean time of one call within block ``i`` of
    ``number`` back-to-back calls, in seconds."""

    samples_s: list[float]
    number: int
    warmup_calls: int = 0
    extra: dict = field(default_factory=dict)

    @cached_property
    def _array(self) -> np.ndarray:
        return np.asarray(self.samples_s, dtype=np.float64)

    @property
    def iterations(self) -> int:
        return self.number * len(self.samples_s)

    @cached_property
    def median(self) -> float:
        return float(np.median(self._array))

    @cached_property
    def q1(self) -> float:
        return float(np.percentile(self._array, 25))

    @cached_property
    def q3(self) -> float:
        return float(np.percentile(self._array, 75))

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @cached_property
    def p90(self) -> float:
        return float(np.percentile(self._array, 90))

    @cached_property
    def p99(self) -> float:
        return float(np.percentile(self._array, 99))

    @cached_property
    def mean(self) -> float:
        return float(self._array.mean())

    @cached_property
    def cv(self) -> float:
        """Coefficient of variation (std / mean) of the block samples."""
        return float(self._array.std(ddof=1) / self.mean) if len(self._array) > 1 else 0.0

    @cached_property
    def outliers(self) -> int:
        """Samples beyond 1.5 IQR from the quartiles (Tukey's fences)."""
        lo, hi = self.q1 - 1.5 * self.iqr, self.q3 + 1.5 * self.iqr
        return int(((self._array < lo) | (self._array > hi)).sum())

    def columns(self, batch: int) -> dict[str, float | int]:
        """The row's timing columns (milliseconds), throughput in items per second."""
        return {
            "latency_ms_median": self.median * 1e3,
            "latency_ms_iqr": self.iqr * 1e3,
            "latency_ms_p90": self.p90 * 1e3,
            "latency_ms_p99": self.p99 * 1e3,
            "latency_cv": self.cv,
            "outliers": self.outliers,
            "iterations": self.iterations,
            "repeats": len(self.samples_s),
            "number_per_repeat": self.number,
            "warmup_calls": self.warmup_calls,
            "throughput_items_s": batch / self.median if self.median > 0 else float("inf"),
        }
