"""A measurement: raw per-call timing samples; every statistic is derived
from them by ``torchparity._core.stats`` (the one quantile rule).

Nothing here stores a number that can be recomputed from the samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torchparity._core import stats


@dataclass
class Measurement:
    """``samples_s[i]`` is the mean time of one call within block ``i`` of
    ``number`` back-to-back calls, in seconds."""

    samples_s: list[float]
    number: int
    warmup_calls: int = 0

    @property
    def iterations(self) -> int:
        return self.number * len(self.samples_s)

    @property
    def median(self) -> float:
        return stats.median(self.samples_s)

    def columns(self, batch: int) -> dict[str, Any]:
        """The row's timing columns (``stats.latency_columns`` of one window,
        its samples included) and how the window was taken."""
        return {
            **stats.latency_columns([self.samples_s], batch, self.number),
            "number_per_repeat": self.number,
            "warmup_calls": self.warmup_calls,
        }
