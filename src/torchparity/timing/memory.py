"""Peak memory of one cell in a worker process.

CPU: the growth of the worker's resident set over its size when the cell
started. On Linux the kernel's high-water mark (VmHWM) is reset per cell
through /proc/self/clear_refs, which is exact and costs nothing while timing.
Elsewhere a sampling thread (psutil, 1 ms) watches RSS; it is paused during the
timed region so it cannot steal time from the measurement. CUDA: the
allocator's max_memory_allocated (the device's own counter), reset per cell.
"""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path

from torchparity.axes.devices import Device

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _linux_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_linux_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def current_rss() -> int | None:
    """Resident set size of this process, in bytes."""
    if sys.platform.startswith("linux"):
        kib = _linux_kib("VmRSS")
        return kib * 1024 if kib is not None else None
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.Process().memory_info().rss)


class PeakMemory:
    """Tracks one cell's peak memory. Call ``start()`` before the cell,
    ``pause()``/``resume()`` around timed regions, ``stop()`` at the end."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.method = "none"
        self._baseline = 0
        self._peak = 0
        self._running = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._baseline = current_rss() or 0
        self._peak = self._baseline
        self.device.reset_peak_memory()
        if sys.platform.startswith("linux") and _reset_linux_peak():
            self.method = "linux-vmhwm"
        elif current_rss() is not None:
            self.method = "rss-sampling"
            self._running.set()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        else:
            self.method = "unavailable (install psutil)"

    def _sample(self) -> None:
        while not self._done.is_set():
            if self._running.wait(0.05):
                rss = current_rss()
                if rss is not None and rss > self._peak:
                    self._peak = rss
                self._done.wait(0.001)

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> dict[str, float | str | None]:
        """The row's memory columns (MiB)."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(1)
        if self.method == "linux-vmhwm":
            hwm = _linux_kib("VmHWM")
            self._peak = hwm * 1024 if hwm is not None else self._peak
        growth = max(0, self._peak - self._baseline) if self._peak else None
        out: dict[str, float | str | None] = {
            "peak_mem_mb": growth / 2**20 if growth is not None else None,
            "peak_mem_method": self.method,
        }
        device_peak = self.device.peak_memory_mb()
        if device_peak is not None:
            out[f"{self.device.name}_peak_mem_mb"] = device_peak
        return out
