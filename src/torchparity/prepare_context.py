"""What a backend may need while preparing one cell (:class:`PrepareContext`),
and how what it reports becomes row columns.

Below both the backends (which receive it) and the training loop (whose
``TrainJob`` carries it to a backend with its own loop), so neither imports
the other for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchparity.axes.devices import Device
from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision
from torchparity.cases.shapes import DynamicDim


@dataclass
class PrepareContext:
    """What a backend may need while preparing one cell.

    ``cache_dir`` is a directory the backend may keep artifacts in (None when
    caching is off); ``cache_key`` identifies the case, precision, input
    signature and library versions, and a backend adds its own options to it.
    """

    cell: Cell
    device: Device
    precision: Precision
    cache_dir: Path | None = None
    cache_key: str = ""
    # The run's cache root, which also keeps the runners a backend builds or
    # installs (the C++ runner, the JavaScript packages); None (--no-cache, or no
    # run): they go to a private temporary directory of the process.
    runner_cache: Path | None = None
    # The module's behavioural fingerprint (cases/cache_keys.py): sealed with each
    # artifact; an entry sealed for another one is rebuilt ("model changed").
    fingerprint: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # backend facts for the row
    # The submodule's path in the case's model when localization prepares one
    # layer alone ("" for the whole model): lets a backend that treats layers
    # differently (a plugin that perturbs one) recognise it.
    module_path: str = ""
    # int8 precisions: the calibration batches (input tuples, cast like the
    # cell's inputs) drawn from the case's input factory (backends/quantize.py).
    calibration: tuple[tuple, ...] = ()
    # Shape mode (cell/shapes.py): the dims to declare dynamic while building
    # the artifact, the way the backend's users declare them (empty: a static
    # build). A backend that can read its artifact's input signature back puts
    # the requested dims it found static in ``notes["static_dims"]``.
    dynamic: tuple[DynamicDim, ...] = ()
    # The precision that actually ran, in torchparity's names (fp32, bf16, ...),
    # when the runtime says it differs or may differ from the cell's (OpenVINO's
    # CPU plugin); None: the cell's precision ran.
    effective_precision: str | None = None

    def row_columns(self) -> dict[str, Any]:
        """The row columns of what the backend reported (``backend_columns``)."""
        return backend_columns(self.notes, self.effective_precision)


def backend_columns(
    notes: Mapping[str, Any], effective_precision: str | None = None
) -> dict[str, Any]:
    """What a backend reported, as row columns: its notes as ``backend_*``, and
    ``effective_precision`` when it set one."""
    columns = {f"backend_{k}": v for k, v in notes.items()}
    if effective_precision is not None:
        columns["effective_precision"] = effective_precision
    return columns
