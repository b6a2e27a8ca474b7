"""An inference cell, start to finish, as named stages (cell/stages.py runs them):

    precheck -> build -> reference -> prepare -> call -> compare -> eager -> timing

``execute_cell`` runs them for ``torchparity run`` inside a worker (a run's
cells stop before timing and are timed in rounds, run/warm_cells.py);
``fuzz`` uses the same context and rules (cell/context.py: precheck,
tolerance, cache keys; output naming here) on many inputs per cell.

Rules kept here once:
- every consumer (reference, eager, the backend's prepare, call and timing)
  gets its own copy of the inputs; the row says when a call modified them;
- every call runs under ``torch.no_grad()`` (the one grad mode), and a graph
  backend's flat leaves are named after eager's outside the timed call;
- an output with nothing to compare, or a reference any output would match
  (all zeros, independent of the inputs), is an ``error`` with a reason, never a pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from torchparity._core.row import add_columns
from torchparity._core.rundir import RunDir
from torchparity._core.status import Status
from torchparity.backends import get_backend
from torchparity.backends.base import Backend, PrepareContext
from torchparity.cases.cache_keys import case_fingerprint
from torchparity.cases.case import Case
from torchparity.cases.constant import vacuous_reason
from torchparity.cases.inputs import cast_inputs, tensor_digest
from torchparity.cases.outputs import Flattened, flat_leaves, flatten, no_tensor_output
from torchparity.cases.reference import (
    Reference,
    as_flattened,
    build_inputs,
    build_module,
    clone_inputs,
    get_reference,
    nondeterminism_fields,
)
from torchparity.cell import int8
from torchparity.cell.stages import CellRun, NothingToCompare, Stages, check_precheck
from torchparity.timing.measurement import Measurement
from torchparity.timing.memory import PeakMemory
from torchparity.timing.timer import TimingConfig, measure
from torchparity.verdicts import drift as drift_mod
from torchparity.verdicts.output_dtype import dtype_mismatch, dtype_text

# -- rules of the inference stages ----------------------------------------------------


def name_outputs(
    backend: Backend, output: Any, reference: Reference, flat: bool = False
) -> Flattened:
    """The backend's output as named tensor leaves. A graph backend's flat
    leaves (or any int8 cell's: ``flat``, the converted program returns them)
    take eager's names; a count that differs is an error that says what
    the deployed graph lacks and the usual fix."""
    if not (backend.returns_flat_leaves or flat):
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
class CellState(CellRun):
    """What the inference stages hand each other for one cell; each field is
    set by the stage named beside it."""

    module: torch.nn.Module = field(init=False, repr=False)  # build
    inputs: tuple = ()  # build: pristine, float64/int64 on CPU
    case_print: str = ""  # build
    reference: Reference = field(init=False, repr=False)  # reference
    cell_inputs: tuple = ()  # prepare: pristine, cast to the cell's precision and device
    prepare_ctx: PrepareContext = field(init=False, repr=False)  # prepare
    prepared: Callable[..., Any] = field(init=False, repr=False)  # prepare
    memory: PeakMemory = field(init=False, repr=False)  # prepare
    output: Flattened = field(init=False, repr=False)  # call

    def fresh_inputs(self) -> tuple:
        return clone_inputs(self.cell_inputs)

    def cast_module(self) -> torch.nn.Module:
        return self.ctx.cast_module(self.module)

    @property
    def batch(self) -> int:
        """Items per call: the cell's batch in a sweep, else the case's."""
        return self.cell.sweep_batch or self.ctx.case.batch


def stage_precheck(s: CellState) -> bool:
    if not check_precheck(s):
        return False
    s.row["batch"] = s.batch
    add_columns(s.row, s.ctx.configure_device())
    return True


def stage_build(s: CellState) -> bool:
    s.module = build_module(s.ctx.case, s.ctx.seed)
    s.inputs = build_inputs(s.ctx.case, s.ctx.seed, s.cell.sweep_batch or None)
    s.case_print = case_fingerprint(s.ctx.case, s.module)
    return True


def load_reference(s: CellState) -> bool:
    """The fp64 reference on ``s.inputs``; False (the row says why) when two
    fp64 calls disagree, as no verdict rests on such a reference."""
    s.reference = get_reference(
        s.ctx.case, s.module, s.inputs, s.settings.cache_dir, s.case_print, s.ctx.seed
    )
    s.row["input_digest"] = s.reference.input_digest
    s.row["reference_cache"] = s.reference.cache
    # What keys the cell's artifacts: a process that rebuilds the cell later
    # (instruction counting under valgrind, where MKL takes other kernels and
    # fp64 bits differ) must key them as this one did.
    s.row["behaviour_fingerprint"] = s.reference.fingerprint
    flagged = nondeterminism_fields(s.reference)
    if flagged:
        add_columns(s.row, flagged)
        return False
    return True


def stage_reference(s: CellState) -> bool:
    """The reference, and whether it can carry a verdict: what eager cannot
    return at fp64 (no tensor) is the case's on every backend, decided here,
    before any backend runs."""
    if not load_reference(s):
        return False
    nothing = no_tensor_output(as_flattened(s.reference))
    if nothing:
        raise NothingToCompare(nothing)
    vacuous = vacuous_reason(s.ctx.case, s.module, s.reference, s.case_print, s.ctx.seed)
    if vacuous:
        raise NothingToCompare(vacuous)
    return True


@dataclass
class RebuiltState(CellState):
    """A cell rebuilt after its verdict ran in another process (instruction
    counting): ``known`` is that process's row, whose ``input_digest`` and
    ``behaviour_fingerprint`` key the cell's artifacts."""

    known: dict[str, Any] = field(default_factory=dict)


def stage_known_reference(s: RebuiltState) -> bool:
    """The reference's identity as the verdict's process found it, without
    computing anything: no fp64 forward, no probe (under valgrind MKL takes
    other kernels, its fp64 bits differ, and a fingerprint of its own would
    rebuild, and re-seal, every artifact). Without a known identity, the
    reference from the cache as usual, minus the verdict checks."""
    if s.known.get("input_digest") and s.known.get("behaviour_fingerprint"):
        s.reference = Reference([], [], s.known["input_digest"])
        s.reference.fingerprint = s.known["behaviour_fingerprint"]
        return True
    s.reference = get_reference(
        s.ctx.case, s.module, s.inputs, s.settings.cache_dir, s.case_print, s.ctx.seed
    )
    return True


def stage_prepare(s: CellState) -> bool:
    device, precision = s.ctx.device, s.ctx.precision
    s.memory = PeakMemory(device)
    s.memory.start()
    s.cell_inputs = cast_inputs(clone_inputs(s.inputs), precision.dtype, device.torch_device())
    s.prepare_ctx = s.ctx.prepare_context(
        s.case_print, s.reference.input_digest, s.ctx.artifact_cache
    )
    if precision.quant is not None:
        s.prepare_ctx.calibration = int8.calibration(s.ctx)
    s.prepare_ctx.fingerprint = s.reference.fingerprint  # artifacts of another model: rebuilt
    module = s.cast_module()
    device.synchronize()
    began = time.perf_counter()
    with torch.no_grad():
        s.prepared = s.ctx.backend.prepare(module, s.fresh_inputs(), s.prepare_ctx)
    device.synchronize()
    s.row["prepare_s"] = time.perf_counter() - began
    add_columns(s.row, s.prepare_ctx.row_columns())
    return True


def stage_call(s: CellState) -> bool:
    inputs = s.fresh_inputs()
    with torch.no_grad():
        output = s.ctx.backend.run(s.prepared, inputs)
    s.ctx.device.synchronize()
    s.memory.pause()  # peak memory: cast, prepare and call; not eager's copy below
    changed = mutated_inputs(s.cell_inputs, inputs)
    if changed:
        s.row["mutates_inputs"] = changed
    s.output = name_outputs(
        s.ctx.backend, output, s.reference, flat=s.ctx.precision.quant is not None
    )
    s.row["output_digest"] = tensor_digest(s.output.tensors)
    s.row["output_dtype"] = dtype_text(s.output.names, s.output.tensors)
    s.row["leaf_names"] = s.output.names
    if s.output.dropped:
        s.row["dropped_leaves"] = s.output.dropped
    return True


def _save_outputs(s: CellState) -> None:
    """Outputs into the run directory's outputs/: a convenience, never a verdict."""
    if s.settings.output_dir is None:
        return

    try:
        path = RunDir(s.settings.output_dir).save_outputs(
            s.cell.id, s.output.names, s.output.tensors
        )
        s.row["output_file"] = path.name
    except Exception as exc:  # noqa: BLE001 - storing must not touch the cell's status
        s.row["output_store_error"] = f"{type(exc).__name__}: {exc}"[:200]


def _fp64_drift(s: CellState, common: list[str], policy: str) -> drift_mod.Drift:
    """The outputs' drift from the fp64 reference on the ``common`` leaves."""
    actual = s.output.by_name()
    expected = dict(zip(s.reference.names, s.reference.outputs, strict=True))
    return drift_mod.compare(
        common,
        [actual[n] for n in common],
        [expected[n] for n in common],
        s.ctx.precision.compute_dtype,
        s.ctx.tolerance,
        policy,
    )


def stage_compare(s: CellState) -> bool:
    common = check_comparable(s.ctx.case, s.output, s.reference)
    missing = [n for n in s.reference.names if n not in common]
    if missing:
        s.row["missing_leaves"] = missing
    _save_outputs(s)
    if s.ctx.precision.quant is not None:
        return compare_int8(s, common)
    drift = _fp64_drift(s, common, s.ctx.policy)
    add_columns(s.row, drift.columns())
    s.row["leaves"] = drift.leaf_records()
    if not drift.passed:
        s.row.update(status=Status.FAIL, reason=drift.reason)
    return True


def compare_int8(s: CellState, common: list[str]) -> bool:
    """An int8 cell's verdicts: fidelity to the quantized reference, agreement
    with fp32 eager (cell/int8.py). The drift from the fp64 reference is kept
    as facts, not as a verdict; ``tolerance_used`` is fidelity's share of its bounds."""
    result, extra, dtype_reason = int8.judge(
        s.prepare_ctx,
        s.cast_module,
        s.fresh_inputs,
        s.output,
        list(s.reference.names),
        common,
        s.ctx.tolerance,
    )
    drift = _fp64_drift(s, common, "model")
    add_columns(s.row, drift.columns())
    add_columns(s.row, extra)
    add_columns(s.row, result.columns())
    s.row["drift_policy"] = "int8"
    s.row["tolerance_used"] = result.fidelity_share
    s.row["leaves"] = drift.leaf_records()
    s.row["int8_leaves"] = result.leaf_records()
    if not result.passed:
        s.row.update(status=Status.FAIL, reason=result.reason)
    fail_dtype(s, dtype_reason)
    return True


def fail_dtype(s: CellState, reason: str) -> None:
    """A fail for an output dtype other than eager's (verdicts/output_dtype.py),
    after any numeric reason the row already has."""
    if not reason:
        return
    if s.row.get("status") == Status.FAIL and s.row.get("reason"):
        reason = f"{s.row.get('reason')}; {reason}"
    s.row.update(status=Status.FAIL, reason=reason)


def eager_outputs(s: CellState) -> Flattened:
    """Eager's outputs at the cell's device and precision, on the cell's inputs."""
    eager = get_backend("eager")
    with torch.no_grad():
        return flatten(eager.prepare(s.cast_module(), (), s.prepare_ctx)(*s.fresh_inputs()))


def stage_eager(s: CellState) -> bool:
    if s.ctx.precision.quant is not None:  # eager at int8 is the quantized reference
        return True  # compare_int8 recorded eager_max_abs_diff
    if s.cell.backend == "eager":
        s.row["eager_max_abs_diff"] = 0.0
        return True
    theirs, ours = eager_outputs(s).by_name(), s.output.by_name()
    common = [n for n in s.output.names if n in theirs]
    s.row["eager_max_abs_diff"] = drift_mod.max_abs_diff(
        [ours[n] for n in common], [theirs[n] for n in common]
    )
    fail_dtype(
        s,
        dtype_mismatch(
            common, [ours[n] for n in common], [theirs[n] for n in common], s.cell.precision
        ),
    )
    return True


def timed_call(s: CellState) -> Callable[[], Any]:
    """The timed region: the backend call on the cell's own copy of the inputs."""
    inputs = s.fresh_inputs()
    backend, prepared = s.ctx.backend, s.prepared

    def call() -> Any:
        with torch.no_grad():
            return backend.run(prepared, inputs)

    return call


def self_timed(s: CellState, config: TimingConfig) -> Measurement | None:
    """A backend whose calls run outside this process (the C++ runner) times
    itself; None for every other backend (the pipeline times ``run``)."""
    return s.ctx.backend.measure(s.prepared, s.fresh_inputs(), config, s.ctx.device)


def record_timing(s: CellState, columns: dict[str, Any]) -> None:
    """The timing columns, and what is known once the calls are done: peak
    memory, threads, the backend's notes (recompilations)."""
    add_columns(s.row, s.memory.stop())
    add_columns(s.row, columns)
    s.row["torch_threads"] = torch.get_num_threads()
    s.row["torch_interop_threads"] = torch.get_num_interop_threads()
    s.ctx.backend.finalize(s.prepared, s.prepare_ctx)
    add_columns(s.row, s.prepare_ctx.row_columns())


def timing_columns(measurement: Measurement, batch: int) -> dict[str, Any]:
    """A one-window measurement's row columns, its samples included (compare's fallback test reads them)."""
    return measurement.columns(batch)


def stage_timing(s: CellState) -> bool:
    """One window of timing, for cells run whole (``execute_cell``: ``assert_parity``,
    and tasks given as a bare Cell); a run's cells are timed in rounds (``warm_cells``)."""
    measurement = self_timed(s, s.settings.timing) or measure(
        timed_call(s), s.ctx.device.time_block, s.settings.timing
    )
    record_timing(s, timing_columns(measurement, s.batch))
    return True


STAGES: Stages[CellState] = (
    ("precheck", stage_precheck),
    ("build", stage_build),
    ("reference", stage_reference),
    ("prepare", stage_prepare),
    ("call", stage_call),
    ("compare", stage_compare),
    ("eager", stage_eager),
    ("timing", stage_timing),
)


# Up to the prepared callable of a cell whose verdict ran elsewhere (run/instructions.py).
REBUILD_STAGES: Stages[RebuiltState] = (
    ("precheck", stage_precheck),
    ("build", stage_build),
    ("reference", stage_known_reference),
    ("prepare", stage_prepare),
)

# Everything but the timing: the verdict, and a prepared callable kept for timing rounds.
VERDICT_STAGES: Stages[CellState] = tuple(
    (name, stage) for name, stage in STAGES if name != "timing"
)
