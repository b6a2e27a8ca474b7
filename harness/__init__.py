"""torchparity's engine: cases, matrix, backends, timing, drift, runner, results, reports.

The public registration API for user cases and backends is re-exported here,
resolved on first use: importing a submodule (the pytest plugin, which every
pytest run in the environment loads) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.backends import register_backend
    from harness.backends.base import Backend, PrepareContext
    from harness.engine.cases import Case, KnownFailure, register_case, register_model, register_op
    from harness.engine.devices import Device, register_device
    from harness.engine.inputs import InputGen
    from harness.engine.precision import Tolerance

_EXPORTS = {
    "Backend": "harness.backends.base",
    "Case": "harness.engine.cases",
    "Device": "harness.engine.devices",
    "InputGen": "harness.engine.inputs",
    "KnownFailure": "harness.engine.cases",
    "PrepareContext": "harness.backends.base",
    "Tolerance": "harness.engine.precision",
    "register_backend": "harness.backends",
    "register_case": "harness.engine.cases",
    "register_device": "harness.engine.devices",
    "register_model": "harness.engine.cases",
    "register_op": "harness.engine.cases",
}
__all__ = [
    "Backend",
    "Case",
    "Device",
    "InputGen",
    "KnownFailure",
    "PrepareContext",
    "Tolerance",
    "register_backend",
    "register_case",
    "register_device",
    "register_model",
    "register_op",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
