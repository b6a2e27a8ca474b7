"""The device axis: one entry per device kind, each saying whether it is usable here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Device:
    """A device kind. ``unavailable()`` returns why it cannot run here, or None."""

    name: str
    unavailable: Callable[[], str | None]
    synchronize: Callable[[], None]

    def torch_device(self) -> torch.device:
        return torch.device(self.name)


def _no_sync() -> None:
    """CPU work is synchronous: nothing to wait for."""


def _cuda_unavailable() -> str | None:
    if not torch.backends.cuda.is_built():
        return "this torch build has no CUDA support"
    if not torch.cuda.is_available():
        return "no CUDA device visible (torch.cuda.is_available() is False)"
    return None


def _mps_unavailable() -> str | None:
    if not torch.backends.mps.is_built():
        return "this torch build has no MPS support (MPS needs macOS on Apple silicon)"
    if not torch.backends.mps.is_available():
        return "MPS is built but not available on this machine"
    return None


def _mps_sync() -> None:
    torch.mps.synchronize()


DEVICES: dict[str, Device] = {
    "cpu": Device("cpu", lambda: None, _no_sync),
    "cuda": Device("cuda", _cuda_unavailable, torch.cuda.synchronize),
    "mps": Device("mps", _mps_unavailable, _mps_sync),
}


def register_device(device: Device) -> None:
    """Add a device kind (e.g. xpu) to the axis."""
    DEVICES[device.name] = device


def get_device(name: str) -> Device:
    return DEVICES[name]
