"""The calibration workload: a fixed small torch computation timed beside
every cell in every round, in the same window (block by block in turn).

It does not change with the code under test, so its time tracks only the
machine: how loaded, how fast it ran at that moment. ``compare`` can divide
a cell's round median by the calibration's in the same window, which removes
a machine-wide slowdown that hit a whole stretch of a run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

BLOCK_SCALE = 0.5  # its blocks are half a cell's: cheap, yet long enough that one preemption does not dominate
SIZE = 32  # small enough that no op of it is split over threads: one core's speed, whatever --threads says
STEPS = 16


def calibration_workload() -> Callable[[], object]:
    """The fixed workload (inputs seeded, built once per worker): a short
    chain of small matmuls and elementwise ops, ~0.1 ms per call."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(SIZE, SIZE, generator=gen) / SIZE**0.5
    b = torch.randn(SIZE, SIZE, generator=gen)

    def work() -> object:
        with torch.no_grad():
            x = b
            for _ in range(STEPS):
                x = torch.tanh(a @ x) + b
            return x

    return work
