"""torchparity: a benchmark and conformance suite for PyTorch deployment paths.

The public surface: registering cases, ops, backends and devices, and the types
they take. ``torchparity.testing`` holds ``assert_parity``; ``torchparity.strategies``
the sample-input strategies of op cases. Names are resolved on first use: importing a submodule (the pytest plugin, which every
pytest run in the environment loads) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torchparity.axes.devices import Device, register_device
    from torchparity.backends import register_backend
    from torchparity.backends.base import Backend, PrepareContext
    from torchparity.backends.options import BackendOption
    from torchparity.cases.case import (
        Case,
        KnownFailure,
        register_case,
        register_model,
        register_op,
    )
    from torchparity.cases.generation import Generation
    from torchparity.cases.inputs import InputGen
    from torchparity.cases.shapes import DynamicDim
    from torchparity.cases.tolerance import Tolerance

_EXPORTS = {
    "Backend": "torchparity.backends.base",
    "BackendOption": "torchparity.backends.options",
    "Case": "torchparity.cases.case",
    "Device": "torchparity.axes.devices",
    "DynamicDim": "torchparity.cases.shapes",
    "Generation": "torchparity.cases.generation",
    "InputGen": "torchparity.cases.inputs",
    "KnownFailure": "torchparity.cases.case",
    "PrepareContext": "torchparity.backends.base",
    "Tolerance": "torchparity.cases.tolerance",
    "register_backend": "torchparity.backends",
    "register_case": "torchparity.cases.case",
    "register_device": "torchparity.axes.devices",
    "register_model": "torchparity.cases.case",
    "register_op": "torchparity.cases.case",
}
__all__ = [
    "Backend",
    "BackendOption",
    "Case",
    "Device",
    "DynamicDim",
    "Generation",
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
    raise AttributeError(f"module 'torchparity' has no attribute {name!r}")
