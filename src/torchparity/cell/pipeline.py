"""One cell, start to finish, as a short list of named stages:

    precheck -> build -> reference -> prepare -> call -> compare -> eager -> timing

``execute_cell`` runs them for ``torchparity run`` inside a worker; ``fuzz``
uses the same rules (precheck, tolerance, cache keys, output naming, exception
summaries) on many inputs per cell. It never raises for a cell's own failure:
a stage's exception becomes an ``error`` row naming the stage, so a worker
survives bad cells.

Rules kept here once:
- every consumer (reference, eager, the backend's prepare, call and timing)
  gets its own copy of the inputs; the row says when a call modified them;
- every call runs under ``torch.no_grad()`` (the one grad mode), and a graph
  backend's flat leaves are named after eager's outside the timed call;
- an output with nothing to compare, or a reference any output would match
  (all zeros, independent of the inputs), is an ``error`` with a reason, never a pass.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from torchparity._core.errors import error_fields
from torchparity._core.status import Status
from torchparity.axes.devices import Device, DeviceOptions, get_device
from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision, Tolerance, default_tolerance, get_precision
from torchparity.backends import get_backend
from torchparity.backends.base import Backend, PrepareContext
from torchparity.cases.cache_keys import case_fingerprint, cell_key
from torchparity.cases.case import CASES, Case, precision_unsupported
from torchparity.cases.constant import vacuous_reason
from torchparity.cases.inputs import cast_inputs, tensor_digest
from torchparity.cases.outputs import Flattened, flat_leaves, flatten
from torchparity.cases.reference import (
    Reference,
    build_inputs,
    build_module,
    clone_inputs,
    get_reference,
)
from torchparity.timing.measurement import Measurement
from torchparity.timing.memory import PeakMemory
from torchparity.timing.timer import TimingConfig, measure
from torchparity.verdicts import drift as drift_mod


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
    # Localization after a cell (verdicts/localize.py): "auto" for failing model
    # cells, "all" for every model cell, "off".
    localize: str = "auto"
    interop_threads: int | None = None
    train: Any = None  # engine/training.TrainSettings for train cells (None: its defaults)


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


# -- rules shared by run and fuzz ---------------------------------------------------


def train_unsupported(cell: Cell, backend: Backend, precision: Precision) -> str | None:
    """Why a train cell cannot run, or None (the infer precheck ran first)."""
    case = CASES.get(cell.case)
    if case is not None and case.kind != "model":
        return f"{case.kind} cases have no parameters to train"
    if precision.name == "fp16":
        return "pure fp16 training has no fp32 master weights or loss scaling; use amp-fp16"
    return backend.train_unsupported(cell, precision)


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
    if cell.mode == "train":
        return train_unsupported(cell, backend, precision)
    return backend.supports(cell, precision)


def cast_module(module: torch.nn.Module, device: Device, precision: Precision) -> torch.nn.Module:
    """A private copy of ``module`` on the cell's device, in the cell's precision."""
    return copy.deepcopy(module).to(device=device.torch_device(), dtype=precision.dtype)


def tolerance_for(case: Case, precision: Precision) -> Tolerance:
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
        options=options,
    )


class NothingToCompare(Exception):
    """The outputs hold nothing a verdict could rest on."""


def name_outputs(backend: Backend, output: Any, reference: Reference) -> Flattened:
    """The backend's output as named tensor leaves. A graph backend's flat
    leaves take eager's names; a count that differs is an error that says what
    the deployed graph lacks and the usual fix."""
    if not backend.returns_flat_leaves:
        return flatten(output)
    leaves = [x for x in flat_leaves(output) if isinstance(x, torch.Tensor)]
    if len(leaves) != len(reference.names):
        dropped = (
            f"; not tensors, so not in any graph: {', '.join(reference.dropped)}"
            if reference.dropped
            else ""
        )
        raise NothingToCompare(
            f"{backend.name} returned {len(leaves)} output tensors where the model's output has "
            f"{len(reference.names)} tensor leaves ({', '.join(reference.names) or 'none'}){dropped}; "
            "return only the tensors you deploy from forward (e.g. use_cache=False, return_dict=False)"
        )
    return Flattened(list(reference.names), leaves, list(reference.dropped))


def check_comparable(case: Case, output: Flattened, reference: Reference) -> list[str]:
    """The reference leaf names both sides have; ``NothingToCompare`` when a
    verdict would be vacuous (no tensor leaves, or no elements)."""
    if not reference.names and not output.names:
        what = ", ".join(reference.dropped or output.dropped) or "an empty container"
        raise NothingToCompare(f"no output tensors to compare: the module's output is {what}")
    common = [n for n in reference.names if n in set(output.names)]
    if not common:
        raise NothingToCompare(
            f"no output leaf in common: the reference has {', '.join(reference.names) or 'none'}, "
            f"the backend {', '.join(output.names) or 'none'}"
        )
    numel = sum(t.numel() for n, t in zip(output.names, output.tensors, strict=True) if n in common)
    if numel == 0 and not case.empty_output_ok:
        shapes = ", ".join(
            f"{n}{tuple(t.shape)}" for n, t in zip(output.names, output.tensors, strict=True)
        )
        raise NothingToCompare(
            f"outputs have no elements ({shapes}): nothing to compare (a batch of 0 or a zero-size "
            "input?); a case that expects empty output says so with empty_output_ok=True"
        )
    return common


def mutated_inputs(before: tuple, after: tuple) -> list[int]:
    """Indices of tensor inputs a call changed in place."""
    changed = []
    for i, (a, b) in enumerate(zip(before, after, strict=True)):
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            if a.shape != b.shape or not torch.equal(a.cpu(), b.cpu()):
                changed.append(i)
    return changed


# -- the stages of one cell ---------------------------------------------------------


@dataclass
class CellState:
    """What the stages hand each other for one cell."""

    cell: Cell
    settings: RunSettings
    row: dict[str, Any] = field(default_factory=lambda: {"status": "pass", "reason": ""})
    case: Case = None  # type: ignore[assignment]
    precision: Precision = None  # type: ignore[assignment]
    device: Device = None  # type: ignore[assignment]
    backend: Backend = None  # type: ignore[assignment]
    module: torch.nn.Module = None  # type: ignore[assignment]
    inputs: tuple = ()  # pristine, float64/int64 on CPU
    cell_inputs: tuple = ()  # pristine, cast to the cell's precision and device
    case_print: str = ""
    reference: Reference = None  # type: ignore[assignment]
    ctx: PrepareContext = None  # type: ignore[assignment]
    prepared: Callable[..., Any] = None  # type: ignore[assignment]
    output: Flattened = None  # type: ignore[assignment]
    memory: PeakMemory = None  # type: ignore[assignment]

    def fresh_inputs(self) -> tuple:
        return clone_inputs(self.cell_inputs)

    def cast_module(self) -> torch.nn.Module:
        return cast_module(self.module, self.device, self.precision)


def stage_precheck(s: CellState) -> bool:
    reason = precheck(s.cell)
    if reason:
        s.row.update(status=Status.SKIP.value, reason=reason)
        return False
    s.case, s.precision = CASES[s.cell.case], get_precision(s.cell.precision)
    s.device, s.backend = get_device(s.cell.device), get_backend(s.cell.backend)
    s.row["batch"] = s.case.batch
    s.row.update(s.device.configure(s.settings.device_options))
    return True


def stage_build(s: CellState) -> bool:
    s.module = build_module(s.case, s.settings.seed)
    s.inputs = build_inputs(s.case, s.settings.seed)
    s.case_print = case_fingerprint(s.case, s.module)
    return True


def stage_reference(s: CellState) -> bool:
    s.reference = get_reference(
        s.case, s.module, s.inputs, s.settings.cache_dir, s.case_print, s.settings.seed
    )
    s.row["input_digest"] = s.reference.input_digest
    vacuous = vacuous_reason(s.case, s.module, s.reference, s.case_print, s.settings.seed)
    if vacuous:
        raise NothingToCompare(vacuous)
    return True


def stage_prepare(s: CellState) -> bool:
    s.memory = PeakMemory(s.device)
    s.memory.start()
    s.cell_inputs = cast_inputs(clone_inputs(s.inputs), s.precision.dtype, s.device.torch_device())
    cache = s.settings.cache_dir if s.settings.use_artifact_cache else None
    options = s.settings.backend_options.get(s.cell.backend, {})
    s.ctx = prepare_context(
        s.cell,
        s.device,
        s.precision,
        cache,
        s.case_print,
        s.reference.input_digest,
        options,
        s.settings.seed,
    )
    module = s.cast_module()
    s.device.synchronize()
    began = time.perf_counter()
    with torch.no_grad():
        s.prepared = s.backend.prepare(module, s.fresh_inputs(), s.ctx)
    s.device.synchronize()
    s.row["prepare_s"] = time.perf_counter() - began
    s.row.update({f"backend_{k}": v for k, v in s.ctx.notes.items()})
    return True


def stage_call(s: CellState) -> bool:
    inputs = s.fresh_inputs()
    with torch.no_grad():
        output = s.backend.run(s.prepared, inputs)
    s.device.synchronize()
    s.memory.pause()  # peak memory: cast, prepare and call; not eager's copy below
    changed = mutated_inputs(s.cell_inputs, inputs)
    if changed:
        s.row["mutates_inputs"] = changed
    s.output = name_outputs(s.backend, output, s.reference)
    s.row["output_digest"] = tensor_digest(s.output.tensors)
    s.row["leaf_names"] = s.output.names
    if s.output.dropped:
        s.row["dropped_leaves"] = s.output.dropped
    return True


def _save_outputs(s: CellState) -> None:
    """Outputs into the run directory's outputs/: a convenience, never a verdict."""
    if s.settings.output_dir is None:
        return
    from torchparity._core.rundir import RunDir

    try:
        path = RunDir(s.settings.output_dir).save_outputs(
            s.cell.id, s.output.names, s.output.tensors
        )
        s.row["output_file"] = path.name
    except Exception as exc:  # noqa: BLE001 - storing must not touch the cell's status
        s.row["output_store_error"] = f"{type(exc).__name__}: {exc}"[:200]


def stage_compare(s: CellState) -> bool:
    common = check_comparable(s.case, s.output, s.reference)
    missing = [n for n in s.reference.names if n not in common]
    if missing:
        s.row["missing_leaves"] = missing
    actual = s.output.by_name()
    expected = dict(zip(s.reference.names, s.reference.outputs, strict=True))
    _save_outputs(s)
    tolerance = tolerance_for(s.case, s.precision)
    drift = drift_mod.compare(
        common,
        [actual[n] for n in common],
        [expected[n] for n in common],
        s.precision.compute_dtype,
        tolerance,
        policy_for(s.case),
    )
    s.row.update(drift.columns())
    s.row["leaves"] = drift.leaf_records()
    if not drift.passed:
        s.row.update(status=Status.FAIL.value, reason=drift.reason)
    return True


def stage_eager(s: CellState) -> bool:
    if s.cell.backend == "eager":
        s.row["eager_max_abs_diff"] = 0.0
        return True
    eager = get_backend("eager")
    with torch.no_grad():
        out = flatten(eager.prepare(s.cast_module(), (), s.ctx)(*s.fresh_inputs()))
    theirs = out.by_name()
    common = [n for n in s.output.names if n in theirs]
    s.row["eager_max_abs_diff"] = drift_mod.max_abs_diff(
        [s.output.by_name()[n] for n in common], [theirs[n] for n in common]
    )
    return True


def timed_call(s: CellState) -> Callable[[], Any]:
    """The timed region: the backend call on the cell's own copy of the inputs."""
    inputs = s.fresh_inputs()
    backend, prepared = s.backend, s.prepared

    def call() -> Any:
        with torch.no_grad():
            return backend.run(prepared, inputs)

    return call


def self_timed(s: CellState, config: TimingConfig) -> Measurement | None:
    """A backend whose calls run outside this process (the C++ runner) times
    itself; None for every other backend (the pipeline times ``run``)."""
    return s.backend.measure(s.prepared, s.fresh_inputs(), config, s.device)


def record_timing(s: CellState, columns: dict[str, Any]) -> None:
    """The timing columns, and what is known once the calls are done: peak
    memory, threads, the backend's notes (recompilations)."""
    s.row.update(s.memory.stop())
    s.row.update(columns)
    s.row["torch_threads"] = torch.get_num_threads()
    s.row["torch_interop_threads"] = torch.get_num_interop_threads()
    s.backend.finalize(s.prepared, s.ctx)
    s.row.update({f"backend_{k}": v for k, v in s.ctx.notes.items()})


def timing_columns(measurement: Measurement, batch: int) -> dict[str, Any]:
    """A one-window measurement's row columns, its samples included (compare's fallback test reads them)."""
    return measurement.columns(batch)


def stage_timing(s: CellState) -> bool:
    """One window of timing, for cells run whole (``execute_cell``: ``assert_parity``,
    and tasks given as a bare Cell); a run's cells are timed in rounds (``warm_cells``)."""
    measurement = self_timed(s, s.settings.timing) or measure(
        timed_call(s), s.device.time_block, s.settings.timing
    )
    record_timing(s, timing_columns(measurement, s.case.batch))
    return True


STAGES: tuple[tuple[str, Callable[[CellState], bool]], ...] = (
    ("precheck", stage_precheck),
    ("build", stage_build),
    ("reference", stage_reference),
    ("prepare", stage_prepare),
    ("call", stage_call),
    ("compare", stage_compare),
    ("eager", stage_eager),
    ("timing", stage_timing),
)


# Everything but the timing: the verdict, and a prepared callable kept for timing rounds.
VERDICT_STAGES = tuple((name, stage) for name, stage in STAGES if name != "timing")


def run_stages(
    state: CellState, stages: tuple[tuple[str, Callable[[CellState], bool]], ...] = STAGES
) -> bool:
    """Run ``stages`` over ``state``; True when every one completed (none
    skipped, raised or found nothing to compare)."""
    for name, stage in stages:
        try:
            if not stage(state):
                return False
        except NothingToCompare as exc:
            state.row.update(
                status=Status.ERROR.value,
                reason=f"{name}: {exc}",
                error_stage=name,
                error_type="NothingToCompare",
            )
            return False
        except Exception as exc:  # a cell's failure is a finding, not a crash
            state.row.update(error_fields(exc, name))
            return False
    return True
