"""One cell, start to finish: build, reference, prepare, run, drift, timing -> row.

This is what a worker process runs; it never raises for a cell's own failure
(those become ``error``/``fail`` rows), so a worker survives bad cells.
"""

from __future__ import annotations

import copy
import hashlib
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.verdicts import drift as drift_mod
from harness import output_store
from harness.backends import get_backend
from harness.backends.base import PrepareContext
from harness.engine.cases import CASES, Case, precision_unsupported
from harness.engine.devices import DeviceOptions, get_device
from harness.engine.inputs import cast_inputs, tensor_digest
from harness.engine.matrix import Cell
from harness.engine.memory import PeakMemory
from harness.engine.outputs import flatten_outputs
from harness.engine.precision import Precision, default_tolerance, get_precision
from harness.engine.reference import build_inputs, build_module, get_reference
from harness.engine.timing import TimingConfig, measure


@dataclass
class RunSettings:
    """Settings shared by every cell of a run (picklable: sent to workers)."""

    seed: int = 0
    timing: TimingConfig = field(default_factory=TimingConfig)
    cache_dir: Path | None = None  # reference files and backend artifacts
    use_artifact_cache: bool = True
    backend_options: dict[str, Any] = field(default_factory=dict)
    output_dir: Path | None = None  # where output_store keeps each cell's outputs
    device_options: DeviceOptions = field(default_factory=DeviceOptions)
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    interop_threads: int | None = None


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


def precheck(cell: Cell) -> str | None:
    """Why the cell cannot run here (device absent, backend cannot serve it), or None.
    Cheap: the runner calls it before sending a cell to a worker."""
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
    return backend.supports(cell, precision)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _message_line(exc: BaseException) -> str:
    for line in _ANSI.sub("", str(exc)).splitlines():
        if line.strip():
            return line.strip()
    return ""


def _first_line(exc: BaseException) -> str:
    """The first meaningful line of ``exc`` and of its root cause. A wrapper
    whose line only introduces details (ends with ":", like the ONNX exporter's
    "... step 1/3 ... Next steps:" or dynamo's "backend='inductor' raised:")
    gives way to the root cause it chains as ``__cause__``."""
    root, seen = exc, {id(exc)}
    while root.__cause__ is not None and id(root.__cause__) not in seen:
        root = root.__cause__
        seen.add(id(root))
    outer = f"{type(exc).__name__}: {_message_line(exc)}".rstrip(": ")
    if root is exc:
        return outer[:400]
    cause = f"{type(root).__name__}: {_message_line(root)}".rstrip(": ")
    if _message_line(exc).endswith(":") or not _message_line(exc):
        return f"{cause} (raised as {type(exc).__name__})"[:400]
    return f"{outer[:240]} (cause: {cause})"[:400]


def error_fields(exc: BaseException, stage: str) -> dict[str, Any]:
    return {
        "status": "error",
        "reason": f"{stage}: {_first_line(exc)}",
        "error_type": type(exc).__name__,
        "error_stage": stage,
        "traceback": traceback.format_exc(),
    }


def _tolerance(case: Case, precision: Precision):
    dtype = precision.compute_dtype
    return case.tolerances.get(dtype) or default_tolerance(dtype)


def _policy(case: Case) -> str:
    return "model" if case.kind == "model" else "elementwise"


def _cast_module(module: torch.nn.Module, precision: Precision, device: torch.device):
    return copy.deepcopy(module).to(device=device, dtype=precision.dtype)


def execute_cell(cell: Cell, settings: RunSettings) -> dict[str, Any]:
    """Run one cell and return its row (without the environment fields)."""
    row: dict[str, Any] = {"status": "pass", "reason": ""}
    stage = "precheck"
    try:
        skip = precheck(cell)
        if skip:
            return {"status": "skip", "reason": skip}
        case = CASES[cell.case]
        if case.extra.get("samples") is not None:  # several samples per cell (issue 17)
            from harness.engine.multisample import execute_multisample

            return execute_multisample(cell, case, settings)
        precision = get_precision(cell.precision)
        device = get_device(cell.device)
        backend = get_backend(cell.backend)
        row["batch"] = case.batch
        row.update(device.configure(settings.device_options))

        stage = "build"
        module = build_module(case, settings.seed)
        inputs = build_inputs(case, settings.seed)
        stage = "reference"
        ref = get_reference(case, module, inputs, settings.cache_dir)
        row["input_digest"] = ref.input_digest

        memory = PeakMemory(device)
        memory.start()
        stage = "cast"
        tdev = device.torch_device()
        cell_module = _cast_module(module, precision, tdev)
        cell_inputs = cast_inputs(inputs, precision.dtype, tdev)

        stage = "prepare"
        key = hashlib.sha256(
            f"{cell.case}|{cell.precision}|{cell.device}|{ref.input_digest}|{settings.seed}|"
            f"{torch.__version__}".encode()
        ).hexdigest()[:20]
        ctx = PrepareContext(
            cell=cell,
            device=device,
            precision=precision,
            cache_dir=(settings.cache_dir / "artifacts" / cell.backend)
            if settings.cache_dir and settings.use_artifact_cache
            else None,
            cache_key=key,
            options=settings.backend_options.get(cell.backend, {}),
        )
        device.synchronize()
        began = time.perf_counter()
        prepared = backend.prepare(cell_module, cell_inputs, ctx)
        device.synchronize()
        row["prepare_s"] = time.perf_counter() - began
        row.update({f"backend_{k}": v for k, v in ctx.notes.items()})

        stage = "run"
        outputs = backend.run(prepared, cell_inputs)
        device.synchronize()
        names, leaves = flatten_outputs(outputs)
        row["output_digest"] = tensor_digest(leaves)
        row["leaf_names"] = names
        row.update(output_store.save_quietly(settings.output_dir, cell.id, names, leaves))

        stage = "drift"
        tolerance = _tolerance(case, precision)
        drift = drift_mod.compare(
            names, leaves, ref.outputs, precision.compute_dtype, tolerance, _policy(case)
        )
        if names != ref.names and len(names) == len(ref.names):
            row["leaf_names_reference"] = ref.names
        row.update(drift.columns())
        row["leaves"] = drift.leaf_records()
        if cell.backend != "eager":
            eager = get_backend("eager").prepare(
                _cast_module(module, precision, tdev), cell_inputs, ctx
            )
            _, eager_leaves = flatten_outputs(eager(*cell_inputs))
            row["eager_max_abs_diff"] = drift_mod.max_abs_diff(leaves, eager_leaves)
        else:
            row["eager_max_abs_diff"] = 0.0
        if not drift.passed:
            row["status"] = "fail"
            row["reason"] = drift.reason

        stage = "timing"
        memory.pause()
        measurement = measure(
            lambda: backend.run(prepared, cell_inputs), device.time_block, settings.timing
        )
        row.update(memory.stop())
        row.update(measurement.columns(case.batch))
        row["samples_ms"] = [s * 1e3 for s in measurement.samples_s]
        row["torch_threads"] = torch.get_num_threads()
        row["torch_interop_threads"] = torch.get_num_interop_threads()
        backend.finalize(prepared, ctx)  # facts known only after the calls (recompilations)
        row.update({f"backend_{k}": v for k, v in ctx.notes.items()})
    except Exception as exc:  # a cell's failure is a finding, not a crash
        row.update(error_fields(exc, stage))
    return row


def apply_known_failures(cell: Cell, row: dict[str, Any]) -> dict[str, Any]:
    """A fail or error matching a known-failure mark of the case becomes xfail;
    expectations and blame columns (harness/verdicts/expectations.py)."""
    from harness.verdicts import expectations

    return expectations.apply(CASES.get(cell.case), cell, row)
