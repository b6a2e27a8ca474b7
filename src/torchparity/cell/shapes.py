"""Shape-mode cells: does the artifact still give the same numbers at another shape?

A shape cell is (case, device, precision, backend, point): the backend builds
its artifact once at the case's export shape (its own inputs) with the case's
dynamic dims declared the way that backend's users declare them
(backends/dynamic.py), and the artifact runs at the run shape of ``point``
(below, inside or above the export shape; cases/shapes.py). Eager at the run
shape is the oracle; the fp64 reference at the run shape gives the usual
drift columns. Stages, on the one runner (cell/stages.py):

    precheck -> build -> reference -> prepare -> call -> compare -> eager

Each row says ``export_shape``, ``run_shape`` and ``shape_outcome``:

- ``match``: within tolerance of eager at the run shape;
- ``loud-error``: the backend refused, at build or at the run shape (a skip:
  an honest refusal);
- ``silent-mismatch``: it ran and gave other numbers than eager (a fail);
- ``silent-static``: dynamism was asked for and the artifact's own input
  signature holds the dim fixed (a fail, whatever the run then did).

The points of one artifact are consecutive cells of one worker, so the
artifact is built once for them (``_BUILT``), with or without the artifact cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from torchparity._core.errors import error_fields, first_line
from torchparity._core.row import add_columns
from torchparity._core.status import Status
from torchparity.cases.case import Case
from torchparity.cases.inputs import cast_inputs
from torchparity.cases.reference import clone_inputs, input_digest
from torchparity.cases.shapes import describe_sizes, export_sizes, resize_inputs, run_sizes
from torchparity.cell.pipeline import (
    CellState,
    eager_outputs,
    load_reference,
    stage_build,
    stage_call,
    stage_compare,
    stage_precheck,
)
from torchparity.cell.stages import NothingToCompare, Stages
from torchparity.timing.memory import PeakMemory
from torchparity.verdicts import drift as drift_mod

SHAPE_OUTCOMES = ("match", "loud-error", "silent-mismatch", "silent-static")
SILENT_OUTCOMES = ("silent-mismatch", "silent-static")


@dataclass
class ShapeState(CellState):
    """The inference state, plus the export-shape inputs (``inputs`` holds the
    run shape's) and the requested dims the artifact holds fixed."""

    # The run shape's sizes when given (fuzzing draws them); None: the cell's point's.
    sizes: dict[str, int] | None = None
    export_inputs: tuple = ()  # build: pristine, float64/int64 on CPU
    static_dims: list[str] = field(default_factory=list)  # prepare


def _shapes_text(inputs: tuple) -> str:
    return "; ".join(str(list(x.shape)) for x in inputs if isinstance(x, torch.Tensor))


def _outcome(s: ShapeState, outcome: str, status: Status, reason: str) -> bool:
    s.row["shape_outcome"] = outcome
    s.row.update(status=status, reason=reason)
    return False


def point_inputs(case: Case, seed: int, inputs: tuple, sizes: Mapping[str, int]) -> tuple:
    """The export inputs resampled to a run shape's sizes, as every cell of
    ``case`` at ``seed`` resamples them (localization rebuilds them so)."""
    return resize_inputs(inputs, case.dynamic, sizes, (case.name, seed))


def stage_shape_build(s: ShapeState) -> bool:
    """The module and the export-shape inputs, then the run shape of the
    cell's point (a skip when the declared range has no such size)."""
    stage_build(s)
    dims = s.ctx.case.dynamic
    s.export_inputs = s.inputs
    export = export_sizes(s.inputs, dims)
    s.row["export_shape"] = describe_sizes(export)
    s.row["export_input_shapes"] = _shapes_text(s.inputs)
    try:
        sizes = s.sizes if s.sizes is not None else run_sizes(dims, export, s.cell.shape_point)
    except ValueError as exc:
        s.row.update(status=Status.SKIP, reason=str(exc))
        return False
    s.inputs = point_inputs(s.ctx.case, s.ctx.seed, s.export_inputs, sizes)
    s.row["run_shape"] = describe_sizes(sizes)
    s.row["run_input_shapes"] = _shapes_text(s.inputs)
    if "batch" in sizes:
        s.row["batch"] = sizes["batch"]
    return True


# The last artifact built in this process: key -> (prepared, notes, seconds) or the exception.
_BUILT: dict[str, tuple[Callable[..., Any], dict[str, Any], float] | BaseException] = {}


def _build(s: ShapeState, key: str) -> tuple[Callable[..., Any], dict[str, Any], float]:
    """The artifact at the export shape, built once per key (the previous one is dropped)."""
    held = _BUILT.get(key)
    if held is None:
        _BUILT.clear()
        example = cast_inputs(
            clone_inputs(s.export_inputs), s.ctx.precision.dtype, s.ctx.device.torch_device()
        )
        began = time.perf_counter()
        try:
            with torch.no_grad():
                prepared = s.ctx.backend.prepare(s.cast_module(), example, s.prepare_ctx)
            held = (prepared, dict(s.prepare_ctx.notes), time.perf_counter() - began)
        except Exception as exc:  # noqa: BLE001 - the refusal is the finding; kept for the other points
            held = exc
        _BUILT[key] = held
    else:
        s.row["artifact_reused"] = True
    if isinstance(held, BaseException):
        raise held
    return held


def stage_shape_prepare(s: ShapeState) -> bool:
    """The backend's artifact at the export shape with the dims declared; a
    refusal is ``loud-error``; a requested dim the artifact's own signature
    fixes is remembered for the verdict (``silent-static``)."""
    device, precision = s.ctx.device, s.ctx.precision
    s.memory = PeakMemory(device)
    s.memory.start()
    s.cell_inputs = cast_inputs(clone_inputs(s.inputs), precision.dtype, device.torch_device())
    digest = input_digest(s.export_inputs)
    s.prepare_ctx = s.ctx.prepare_context(s.case_print, digest, s.ctx.artifact_cache)
    s.prepare_ctx.fingerprint = s.reference.fingerprint
    s.prepare_ctx.dynamic = s.ctx.case.dynamic
    options = sorted((str(k), str(v)) for k, v in s.ctx.options.items())
    key = f"{s.cell.id.rsplit('|', 1)[0]}|{digest}|{s.ctx.seed}|{options}"
    try:
        s.prepared, notes, seconds = _build(s, key)
    except Exception as exc:  # noqa: BLE001 - a refusal to build is the finding
        add_columns(s.row, error_fields(exc, "prepare"))
        s.row.pop("traceback", None)
        export = s.row.get("export_shape", "")
        return _outcome(
            s, "loud-error", Status.SKIP, f"loud-error building at {export}: {first_line(exc)}"
        )
    s.prepare_ctx.notes.update(notes)
    s.row["prepare_s"] = seconds
    add_columns(s.row, {f"backend_{k}": v for k, v in notes.items()})
    s.static_dims = list(notes.get("static_dims") or [])
    return True


def _static_reason(s: ShapeState, ran: str) -> str:
    return (
        f"silent-static: dims declared dynamic, the artifact's signature "
        f"({s.prepare_ctx.notes.get('input_signature', '')}) holds "
        f"{'; '.join(s.static_dims)}; {ran}"
    )


def stage_shape_call(s: ShapeState) -> bool:
    """The artifact at the run shape; an exception is ``loud-error``, or
    ``silent-static`` when the signature already fixed the dim."""
    try:
        return stage_call(s)
    except NothingToCompare:
        raise
    except Exception as exc:  # noqa: BLE001 - the refusal at the run shape is the finding
        s.row["run_error"] = first_line(exc)
        run = s.row.get("run_shape", "")
        if s.static_dims:
            return _outcome(
                s, "silent-static", Status.FAIL, _static_reason(s, f"at {run} it raised")
            )
        return _outcome(s, "loud-error", Status.SKIP, f"loud-error at {run}: {first_line(exc)}")


def stage_shape_verdict(s: ShapeState) -> bool:
    """The outcome: the artifact's outputs against eager's at the run shape
    (the fp64 verdict of ``compare`` stands beside it)."""
    eager = eager_outputs(s).by_name()
    common = [n for n in s.output.names if n in eager]
    actual = s.output.by_name()
    drift = drift_mod.compare(
        common,
        [actual[n] for n in common],
        [eager[n] for n in common],
        s.ctx.precision.compute_dtype,
        s.ctx.tolerance,
        s.ctx.policy,
    )
    s.row["eager_max_abs_diff"] = drift_mod.max_abs_diff(
        [actual[n] for n in common], [eager[n] for n in common]
    )
    run, export = s.row.get("run_shape", ""), s.row.get("export_shape", "")
    if s.static_dims:
        return _outcome(s, "silent-static", Status.FAIL, _static_reason(s, f"at {run} it ran"))
    if not drift.passed:
        return _outcome(
            s,
            "silent-mismatch",
            Status.FAIL,
            f"silent-mismatch at {run} (built at {export}) against eager: {drift.reason}",
        )
    s.row["shape_outcome"] = "match"
    return True


SHAPE_STAGES: Stages[ShapeState] = (
    ("precheck", stage_precheck),
    ("build", stage_shape_build),
    ("reference", load_reference),
    ("prepare", stage_shape_prepare),
    ("call", stage_shape_call),
    ("compare", stage_compare),
    ("eager", stage_shape_verdict),
)
