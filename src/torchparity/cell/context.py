"""A cell's parts, resolved once: ``resolve(cell, settings)`` -> :class:`CellContext`.

Every path that executes a cell (inference, training, multi-sample OpInfo
cells, fuzz properties, localization) starts from the same context: the
case, precision, device and backend the cell names, the tolerance and drift
policy it is judged by, the run's settings, and the one way a backend's
:class:`PrepareContext` (artifact directory, cache key) is made. The rules
that decide whether a cell can run here at all (``precheck``) live here too,
so the runner asks them before a cell goes to a worker.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from torchparity.axes.devices import Device, DeviceOptions, get_device
from torchparity.axes.matrix import Cell
from torchparity.axes.precision import (
    Precision,
    Tolerance,
    default_tolerance,
    get_precision,
    int8_tolerance,
)
from torchparity.backends import backend_names, get_backend, quantize
from torchparity.backends.base import Backend, PrepareContext
from torchparity.cases.cache_keys import cell_key
from torchparity.cases.case import CASES, Case, precision_unsupported
from torchparity.cases.generation import generation_of
from torchparity.timing.timer import TimingConfig
from torchparity.train_loop import TrainSettings


@dataclass
class RunSettings:
    """Settings shared by every cell of a run (picklable: sent to workers)."""

    seed: int = 0
    timing: TimingConfig = field(default_factory=TimingConfig)
    cache_dir: Path | None = None  # reference files and backend artifacts
    use_artifact_cache: bool = True
    backend_options: dict[str, Any] = field(default_factory=dict)
    output_dir: Path | None = None  # the run directory: each cell's outputs go to its outputs/
    device_options: DeviceOptions = field(default_factory=DeviceOptions)
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    # Localization after a cell (diagnose/localize.py): "auto" for failing model
    # cells, "all" for every model cell, "off".
    localize: str = "auto"
    interop_threads: int | None = None
    train: TrainSettings | None = None  # for train cells (None: TrainSettings' defaults)
    # Generate cells (--max-new-tokens): the tokens each prompt generates
    # (None: the case's declaration's, cell/generate.py).
    max_new_tokens: int | None = None


def apply_thread_settings(settings: RunSettings) -> None:
    """Pin torch's thread pools so every backend runs under the same threads.
    Inter-op threads can only be set before first use; a failure keeps the default."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    if settings.interop_threads:
        try:
            torch.set_num_interop_threads(settings.interop_threads)
        except RuntimeError:
            pass


# -- whether a cell can run here ------------------------------------------------------


def train_unsupported(cell: Cell, backend: Backend, precision: Precision) -> str | None:
    """Why a train cell cannot run, or None (the infer precheck ran first)."""
    case = CASES.get(cell.case)
    if case is not None and case.kind != "model":
        return f"{case.kind} cases have no parameters to train"
    if precision.name == "fp16":
        return "pure fp16 training has no fp32 master weights or loss scaling; use amp-fp16"
    return backend.train_unsupported(cell, precision)


def shape_unsupported(cell: Cell, backend: Backend) -> str | None:
    """Why a shape cell cannot run (the infer precheck ran first), or None."""
    case = CASES.get(cell.case)
    if case is not None and not case.dynamic:
        return f"{cell.case} declares no dynamic dims (dynamic=[DynamicDim(...)]; docs/shapes.md)"
    if not backend.shapes:
        return (
            f"{cell.backend} does not take part in shape mode (docs/shapes.md lists those that do)"
        )
    return None


def precheck(cell: Cell) -> str | None:
    """Why the cell cannot run here (device absent, precision or autocast not
    served by the backend), or None. Cheap: the runner calls it before sending
    a cell to a worker, fuzz before building a property."""
    reason = get_device(cell.device).unavailable()
    if reason:
        return f"{cell.device}: {reason}"
    case = CASES.get(cell.case)
    reason = precision_unsupported(case, cell.precision) if case is not None else None
    if reason:
        return reason
    backend = get_backend(cell.backend)
    precision = get_precision(cell.precision)
    if precision.autocast is not None and not backend.supports_autocast:
        return f"{cell.backend} does not run under autocast ({cell.precision})"
    if precision.quant is not None:
        reason = int8_unsupported(cell, case, backend, precision)
        if reason:
            return reason
    if cell.mode == "train":
        return train_unsupported(cell, backend, precision)
    if cell.mode == "shape":
        return backend.supports(cell, precision) or shape_unsupported(cell, backend)
    if cell.mode == "generate":
        return generation_unsupported(case, backend, precision)
    return backend.supports(cell, precision)


def generation_unsupported(case: Case | None, backend: Backend, precision: Precision) -> str | None:
    """Why a generate cell cannot run (cell/generate.py), or None."""
    if case is not None and generation_of(case.extra) is None:
        return (
            f"{case.name} declares no generation "
            "(register_model(..., generation=Generation(...)); docs/generation.md)"
        )
    return backend.generation_unsupported(case, precision)


def int8_unsupported(
    cell: Cell, case: Case | None, backend: Backend, precision: Precision
) -> str | None:
    """Why an int8 cell cannot run (its quantized reference is the pt2e
    module on the CPU, for model cases, in inference), or None."""
    if cell.mode != "infer":
        return f"{cell.precision} is an inference precision (no {cell.mode} cells)"
    if case is not None and case.kind != "model":
        return f"{cell.precision} quantizes models; {case.name} is an {case.kind} case"
    if cell.device != "cpu":
        return f"{cell.precision}: the quantized reference (pt2e, XNNPACK) runs on the CPU, not {cell.device}"
    if precision.quant not in backend.quantized_modes:
        return f"{cell.backend} does not serve {cell.precision} (int8 cells run on: {', '.join(int8_backends(precision))})"
    return quantize.missing()


def int8_backends(precision: Precision) -> list[str]:
    """The backends (built-in and registered) that serve ``precision``'s int8
    mode (a backend module imports its runtime only when it prepares)."""
    names = []
    for name in backend_names():
        try:
            backend = get_backend(name)
        except Exception:  # noqa: BLE001 - a backend that does not load serves nothing here
            continue
        if precision.quant in backend.quantized_modes:
            names.append(name)
    return names


# -- rules every path shares ------------------------------------------------------------


def cast_module(module: torch.nn.Module, device: Device, precision: Precision) -> torch.nn.Module:
    """A private copy of ``module`` on the cell's device, in the cell's precision."""
    return copy.deepcopy(module).to(device=device.torch_device(), dtype=precision.dtype)


def tolerance_for(case: Case, precision: Precision) -> Tolerance:
    if precision.quant is not None:  # a case's int8 budget under torch.int8
        return int8_tolerance(case.tolerances.get(torch.int8), precision.quant)
    dtype = precision.compute_dtype
    return case.tolerances.get(dtype) or default_tolerance(dtype)


def policy_for(case: Case) -> str:
    return "model" if case.kind == "model" else "elementwise"


def prepare_context(
    cell: Cell,
    device: Device,
    precision: Precision,
    cache_dir: Path | None,
    case_print: str,
    input_digest: str,
    options: dict[str, Any],
    seed: int = 0,
) -> PrepareContext:
    """The backend's context: its artifact directory and the cell's cache key
    (those of the backend whose artifacts it runs, e.g. torchscript for torchscript-cpp)."""
    owner = get_backend(cell.backend).artifact_backend or cell.backend
    key = cell_key(case_print, input_digest, cell.precision, cell.device, owner, options, seed)
    return PrepareContext(
        cell=cell,
        device=device,
        precision=precision,
        cache_key=key,
        cache_dir=cache_dir / "artifacts" / owner if cache_dir else None,
        runner_cache=cache_dir,
        options=options,
    )


# -- the context --------------------------------------------------------------------------


@dataclass(frozen=True)
class CellContext:
    """One cell's resolved parts and the run's settings; read-only."""

    cell: Cell
    settings: RunSettings
    case: Case
    precision: Precision
    device: Device
    backend: Backend
    tolerance: Tolerance
    policy: str  # the drift policy: "model" or "elementwise"

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def options(self) -> dict[str, Any]:
        """The backend's options of this run (``--backend-option``)."""
        return self.settings.backend_options.get(self.cell.backend, {})

    @property
    def train(self) -> TrainSettings:
        return self.settings.train or TrainSettings()

    @property
    def artifact_cache(self) -> Path | None:
        """Where backend artifacts are cached (None: caching is off)."""
        return self.settings.cache_dir if self.settings.use_artifact_cache else None

    def configure_device(self) -> dict[str, Any]:
        """Apply the run's device options in this process; the facts a row records."""
        return self.device.configure(self.settings.device_options)

    def prepare_context(
        self, case_print: str, input_digest: str, cache_dir: Path | None
    ) -> PrepareContext:
        """A fresh backend context for the module ``case_print`` on inputs
        ``input_digest`` (together the cache key), caching under ``cache_dir``."""
        return prepare_context(
            self.cell,
            self.device,
            self.precision,
            cache_dir,
            case_print,
            input_digest,
            self.options,
            self.seed,
        )

    def cast_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return cast_module(module, self.device, self.precision)


def resolve(cell: Cell, settings: RunSettings) -> CellContext:
    """The cell's parts from the registries (``KeyError`` for a name none holds)."""
    case, precision = CASES[cell.case], get_precision(cell.precision)
    return CellContext(
        cell=cell,
        settings=settings,
        case=case,
        precision=precision,
        device=get_device(cell.device),
        backend=get_backend(cell.backend),
        tolerance=tolerance_for(case, precision),
        policy=policy_for(case),
    )
