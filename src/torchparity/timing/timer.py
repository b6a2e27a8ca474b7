"""The timing loop: warm-up, blocked autorange, repeats (after torch.utils.benchmark).

Only the callable is timed; the device's block timer drains the device before
each clock read (host clock plus synchronize, or CUDA events).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torchparity._core.clock import synced_time_block
from torchparity.timing.measurement import Measurement


@dataclass(frozen=True)
class TimingConfig:
    """``min_time``: measured seconds to collect (blocks excluded from warm-up);
    ``min_repeats``: at least this many blocks; ``max_time``: hard cap on the
    measured part; ``warmup_time``: the least warm-up, in seconds."""

    min_time: float = 0.1
    min_repeats: int = 7
    max_repeats: int = 1000
    max_time: float = 5.0
    warmup_time: float = 0.02
    max_warmup_time: float = 2.0


# Times ``number`` back-to-back calls of a callable, in seconds (a device's clock).
BlockTimer = Callable[[Callable[[], object], int], float]


def warm_up(fn: Callable[[], object], time_block: BlockTimer, config: TimingConfig) -> int:
    """Call ``fn`` until at least ``warmup_time`` has passed and the last call
    is no slower than 1.2x the fastest seen (timings settled), within
    ``max_warmup_time``. Returns the number of calls made."""
    calls = 0
    fastest = math.inf
    began = time.perf_counter()
    while True:
        t = time_block(fn, 1)
        calls += 1
        fastest = min(fastest, t)
        elapsed = time.perf_counter() - began
        settled = calls >= 2 and t <= 1.2 * fastest
        if (elapsed >= config.warmup_time and settled) or elapsed >= config.max_warmup_time:
            return calls


def block_size(
    fn: Callable[[], object], time_block: BlockTimer, target: float
) -> tuple[int, float]:
    """Calls per block so that one block lasts about ``target`` seconds; returns
    (calls, the last block's time)."""
    number = 1
    while True:
        t = time_block(fn, number)
        if t >= target or number >= 10**7:
            return number, t
        # Jump towards the target, at most x100 per step, at least x2.
        grow = target / max(t, 1e-9) * 1.2
        number = int(min(max(number * 2, math.ceil(number * grow)), number * 100))


def measure(
    fn: Callable[[], object],
    time_block: BlockTimer = synced_time_block,
    config: TimingConfig | None = None,
) -> Measurement:
    """Warm up, then pick a block size (calls per block) so that one block
    lasts about ``min_time / min_repeats``, then time blocks until both
    ``min_time`` and ``min_repeats`` are reached."""
    config = config or TimingConfig()
    warmup_calls = warm_up(fn, time_block, config)
    number, t = block_size(fn, time_block, config.min_time / config.min_repeats)
    samples = [t / number]
    total = t
    while (total < config.min_time or len(samples) < config.min_repeats) and (
        len(samples) < config.max_repeats and total < config.max_time
    ):
        t = time_block(fn, number)
        samples.append(t / number)
        total += t
    return Measurement(samples_s=samples, number=number, warmup_calls=warmup_calls)


def measure_interleaved(
    fns: Sequence[Callable[[], object]],
    time_block: BlockTimer = synced_time_block,
    config: TimingConfig | None = None,
    numbers: Sequence[int | None] | None = None,
    block_scale: Sequence[float] | None = None,
) -> list[Measurement]:
    """Time several callables in one window, block by block in turn
    (``a b c a b c ...``), so a slow stretch of the machine touches each of
    them alike and block ``k`` of one is paired in time with block ``k`` of
    the others. Every callable gets the same number of blocks: cycles go on
    until each has ``min_repeats`` blocks and ``min_time`` of measured time,
    or the window reaches ``max_time`` in all.

    ``numbers[i]``: calls per block of ``fns[i]`` (None: calibrate, as
    ``measure`` does); ``block_scale[i]`` shrinks or grows a callable's block
    target (a cheap calibration workload needs less time than the cells)."""
    config = config or TimingConfig()
    target = config.min_time / config.min_repeats
    scale = list(block_scale or [1.0] * len(fns))
    warmups = [warm_up(fn, time_block, config) for fn in fns]
    given = list(numbers or [None] * len(fns))
    sizes = [
        n if n else block_size(fn, time_block, target * k)[0]
        for fn, n, k in zip(fns, given, scale, strict=True)
    ]
    samples: list[list[float]] = [[] for _ in fns]
    totals = [0.0] * len(fns)
    window = 0.0
    while True:
        for i, fn in enumerate(fns):
            t = time_block(fn, sizes[i])
            samples[i].append(t / sizes[i])
            totals[i] += t
            window += t
        cycles = len(samples[0])
        enough = cycles >= config.min_repeats and all(
            tot >= config.min_time * k for tot, k in zip(totals, scale, strict=True)
        )
        if enough or cycles >= config.max_repeats or window >= config.max_time * len(fns):
            break
    return [
        Measurement(samples_s=s, number=n, warmup_calls=w)
        for s, n, w in zip(samples, sizes, warmups, strict=True)
    ]
