"""The host clock around a block of calls, drained by a device's sync: the
primitive every timer and device clock is built on (torch-free)."""

from __future__ import annotations

import time
from collections.abc import Callable


def _noop() -> None:
    pass


def synced_time_block(
    fn: Callable[[], object], number: int, sync: Callable[[], None] = _noop
) -> float:
    """Host clock around ``number`` calls, ``sync`` draining the device before each read."""
    sync()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    sync()
    return time.perf_counter() - start
