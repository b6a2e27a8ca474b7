"""Progress where stderr is not a terminal (CI logs, pipes): a line at a steady
interval (``TORCHPARITY_PROGRESS_INTERVAL`` seconds, 30 by default) saying how
far the work is, what failed so far and when it should end, from a thread of
its own, so a long step still shows the run alive. A terminal gets the one-line
bar of ``runner.terminal_progress`` instead."""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from torchparity._core.console import plural
from torchparity._core.status import BAD_STATUSES

INTERVAL_ENV = "TORCHPARITY_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0


def interval_from_env() -> float:
    """The seconds between lines: the environment's, when it is a positive number."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if math.isfinite(value) and value > 0 else DEFAULT_INTERVAL


class LogProgress:
    """A progress line every ``interval`` seconds while in a ``with`` block.
    Called as a runner's progress function (steps done of total); ``row``
    counts a finished cell (and a failing one); ``items`` names the work when
    no row is counted (``fuzz``: properties, ``data``: configurations)."""

    def __init__(
        self,
        command: str,
        cells: int = 0,
        stream: Any = None,
        interval: float | None = None,
        budget: float | None = None,
    ) -> None:
        self.command, self.cells = command, cells
        self.stream = stream or sys.stderr
        self.interval = interval or interval_from_env()
        self.budget = budget  # explain: the time localization may take at most
        self.done = self.total = self.cells_done = self.failed = 0
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, done: int, total: int, cell: Any = None, elapsed: float = 0.0) -> None:
        self.done, self.total = done, total

    def row(self, row: Mapping[str, Any]) -> None:
        self.cells_done += 1
        self.failed += str(row.get("status")) in BAD_STATUSES

    def line(self) -> str:
        elapsed = time.perf_counter() - self.started
        parts = [f"torchparity {self.command}: {elapsed:.0f} s"]
        if self.cells:
            parts.append(f"{self.cells_done}/{plural(self.cells, 'cell')} done")
            parts.append(f"{plural(self.failed, 'failure')} so far")
        if self.total:
            parts.append(f"step {self.done}/{self.total}")
            if self.done:
                eta = elapsed / self.done * (self.total - self.done)
                parts.append(f"eta {eta:.0f} s")
        if self.budget:
            parts.append(f"at most {max(self.budget - elapsed, 0):.0f} s left of its budget")
        return ", ".join(parts)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            print(self.line(), file=self.stream, flush=True)

    def __enter__(self) -> LogProgress:
        self._thread = threading.Thread(target=self._tick, name="torchparity-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
