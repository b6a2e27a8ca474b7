"""The device axis: one class per device kind behind one interface.

A device says whether it can run here (and why not), synchronises, times a
block of calls with its own clock, applies and records its settings, and
reports peak memory. Another kind (e.g. xpu) is one more subclass passed to
:func:`register_device`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from torchparity._core import row as row_mod
from torchparity._core.clock import synced_time_block


@dataclass(frozen=True)
class DeviceOptions:
    """Device settings chosen on the command line (recorded in every row).

    ``tf32``: let CUDA matmuls and cuDNN convolutions use TF32 (off by default:
    conformance wants IEEE fp32). ``cudnn_benchmark``: cuDNN autotuning.
    ``mps_fallback``: let unsupported MPS ops fall back to the CPU
    (PYTORCH_ENABLE_MPS_FALLBACK=1, must be set before torch starts).
    """

    tf32: bool = False
    cudnn_benchmark: bool = False
    mps_fallback: bool = False


class Device:
    """Base class: a device kind that works like the CPU."""

    name: str = ""

    def unavailable(self) -> str | None:
        """Why this device cannot run here, or None."""
        return None

    def torch_device(self) -> torch.device:
        return torch.device(self.name)

    def synchronize(self) -> None:
        """Wait for queued work; a no-op where calls are synchronous."""

    def time_block(self, fn: Callable[[], object], number: int) -> float:
        """Seconds taken by ``number`` calls of ``fn``, the device drained before
        the clock starts and before it is read."""
        return synced_time_block(fn, number, self.synchronize)

    def configure(self, options: DeviceOptions) -> dict[str, Any]:
        """Apply ``options`` in this process; return the facts to record per row."""
        return {}

    def reset_peak_memory(self) -> None:
        """Start a new peak-memory window (device memory, where it has its own)."""

    def peak_memory_mb(self) -> float | None:
        """Peak device memory since the last reset, in MiB (None: host memory only)."""
        return None


class CPUDevice(Device):
    name = "cpu"


class CUDADevice(Device):
    name = "cuda"

    def unavailable(self) -> str | None:
        if not torch.backends.cuda.is_built():
            return "this torch build has no CUDA support"
        if not torch.cuda.is_available():
            return "no CUDA device visible (torch.cuda.is_available() is False)"
        return None

    def synchronize(self) -> None:
        torch.cuda.synchronize()

    def time_block(self, fn: Callable[[], object], number: int) -> float:
        # CUDA events time the GPU's own timeline: launch latency of the host
        # does not hide behind asynchronous kernels, and vice versa.
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    def configure(self, options: DeviceOptions) -> dict[str, Any]:
        torch.backends.cuda.matmul.allow_tf32 = options.tf32
        torch.backends.cudnn.allow_tf32 = options.tf32
        torch.backends.cudnn.benchmark = options.cudnn_benchmark
        return {
            "cuda_tf32": options.tf32,
            "cudnn_benchmark": options.cudnn_benchmark,
            "cudnn_version": torch.backends.cudnn.version()
            if torch.backends.cudnn.is_available()
            else None,
            "gpu_name": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        }

    def reset_peak_memory(self) -> None:
        torch.cuda.reset_peak_memory_stats()

    def peak_memory_mb(self) -> float | None:
        return torch.cuda.max_memory_allocated() / 2**20


class MPSDevice(Device):
    name = "mps"

    def unavailable(self) -> str | None:
        if not torch.backends.mps.is_built():
            return "this torch build has no MPS support (MPS needs macOS on Apple silicon)"
        if not torch.backends.mps.is_available():
            return "MPS is built but not available on this machine (needs macOS 12.3+ on Apple silicon)"
        return None

    def synchronize(self) -> None:
        torch.mps.synchronize()

    def configure(self, options: DeviceOptions) -> dict[str, Any]:
        return {"mps_fallback": mps_fallback_enabled()}

    def reset_peak_memory(self) -> None:
        reset = getattr(torch.mps, "reset_peak_memory_stats", None)  # newer torch only
        if reset is not None:
            reset()

    def peak_memory_mb(self) -> float | None:
        if hasattr(torch.mps, "driver_allocated_memory"):
            return torch.mps.driver_allocated_memory() / 2**20
        return None


def mps_fallback_enabled() -> bool:
    """Whether unsupported MPS ops silently run on the CPU in this process."""
    return os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK", "0") == "1"


def prepare_environment(options: DeviceOptions) -> None:
    """Settings that must be in the environment before a worker imports torch."""
    if options.mps_fallback:
        os.environ["PYTORCH_ENABLE_MPS_FALLBACK"] = "1"


DEVICES: dict[str, Device] = {d.name: d for d in (CPUDevice(), CUDADevice(), MPSDevice())}
for _name in DEVICES:  # a device's own columns: cuda_tf32, mps_fallback, cuda_peak_mem_mb
    row_mod.declare_namespace(f"{_name}_")


def register_device(device: Device) -> Device:
    """Add a device kind (e.g. xpu) to the axis."""
    if not device.name:
        raise ValueError("a device needs a name")
    DEVICES[device.name] = device
    row_mod.declare_namespace(f"{device.name}_")  # its configure() facts, its peak memory
    return device


def get_device(name: str) -> Device:
    return DEVICES[name]
