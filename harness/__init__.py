"""torchparity's engine: cases, matrix, backends, timing, drift, runner, results, reports.

The public registration API for user cases and backends is re-exported here.
"""

from harness.backends import register_backend
from harness.backends.base import Backend, PrepareContext
from harness.engine.cases import Case, KnownFailure, register_case, register_model, register_op
from harness.engine.devices import Device, register_device
from harness.engine.inputs import InputGen
from harness.engine.precision import Tolerance

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
