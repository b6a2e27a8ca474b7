"""Multi-sample cells: a case that declares ``extra["samples"]`` (a
:class:`SampleSource`) runs *all* its sample inputs for the cell's dtype
through the backend in one cell, compares each, and reports the worst.

Cost is what shapes this module: an ONNX export or an inductor compile costs
a second or more, so the samples of a cell are batched into one module
(``forward`` takes every sample's tensors and returns one output per sample)
and prepared once. When the batch cannot be prepared or run, samples are
prepared one by one to find which fail; after ``SAME_ERROR_LIMIT`` samples
fail with the same message the rest are not retried (an op the backend lacks
fails on every sample, and each retry would cost another export).

Verdicts, per sample:
- ``eager``: eager at the cell's dtype against the fp64 reference (the same
  module on the sample's values upcast to float64), rounded to the output
  dtype: the best the dtype can do;
- other backends: against eager at the same dtype (output dtypes must match).
Samples eager itself rejects are ``invalid`` (not the backend's finding).
The worst sample's inputs are saved under ``RUN_DIR/samples/`` with a
command that replays it (``python -m torchparity.cell.multisample FILE``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

from torchparity._core.errors import first_line
from torchparity._core.row import add_columns
from torchparity._core.rundir import RunDir
from torchparity._core.status import Status
from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision, Tolerance
from torchparity.backends.base import Backend, PrepareContext, backend_columns
from torchparity.cases.case import load_all
from torchparity.cases.inputs import tensor_digest
from torchparity.cases.outputs import flatten
from torchparity.cases.samples import Sample, SampleSource, SamplesUnavailable
from torchparity.cell.context import RunSettings, resolve
from torchparity.cell.pipeline import timing_columns
from torchparity.cell.stages import CellRun, Stages, check_precheck
from torchparity.timing.timer import measure
from torchparity.verdicts import drift as drift_mod

SAME_ERROR_LIMIT = 3  # samples failing alike before the rest are not retried
FALLBACK_BUDGET_S = 30.0  # seconds of one-by-one retries after a batch fails
# Samples per prepared module: OpInfo entries have up to ~1200 samples, and an
# export or compile of one graph that size costs more than its chunks together.
MAX_BATCH = 64
INVALID = "invalid"  # a sample's outcome (not a row's status): eager itself rejects it


@dataclass
class Outcome:
    """What happened to one sample."""

    sample: Sample
    status: str = Status.PASS  # a Status, or "invalid" (eager rejects the sample)
    reason: str = ""
    max_ulp: float = 0.0
    drift: drift_mod.Drift | None = None  # vs fp64 reference (informative for non-eager)
    eager_diff: float = 0.0

    def rank(self) -> tuple[int, float]:
        order = {Status.ERROR: 3, Status.FAIL: 2, Status.PASS: 1, INVALID: 0}[self.status]
        return order, self.max_ulp if math.isfinite(self.max_ulp) else 1e300


@dataclass
class SamplesState(CellRun):
    """What the multi-sample stages hand each other; each field is set by the
    stage named beside it."""

    source: SampleSource = field(init=False, repr=False)  # samples
    samples: list[Sample] = field(default_factory=list)  # samples
    eager: dict[int, Any] = field(default_factory=dict)  # reference: index -> eager's output
    reference: dict[int, Any] = field(default_factory=dict)  # reference: index -> fp64 output
    valid: list[Sample] = field(default_factory=list)  # reference: the samples eager takes
    outputs: dict[int, Any] = field(default_factory=dict)  # prepare: index -> backend's output
    errors: dict[int, str] = field(default_factory=dict)  # prepare: index -> "stage: message"
    # prepare: the batch callable and its inputs when the whole batch prepared and ran
    prepared: tuple[Any, tuple] | None = None
    notes: dict[str, Any] = field(default_factory=dict)  # prepare: the backend's notes
    effective_precision: str | None = None  # prepare: the precision that ran, when the backend says
    retries_began: float | None = None


def _run(module: torch.nn.Module, inputs: tuple) -> Any:
    with torch.no_grad():  # the pipeline's one grad mode
        return module(*inputs)


def _per_sample(backend: Backend, outputs: Any, chunk: Sequence[Sample], eager: dict) -> list[Any]:
    """The backend's outputs of a chunk, one per sample. A graph backend returns
    the flat tensor leaves of the whole chunk (backends/flat.py): they are split
    by the number of tensor leaves eager gave each sample."""
    if not backend.returns_flat_leaves:
        return list(outputs)
    leaves = flatten(outputs).tensors  # numbers (a scripted allclose's bool) count as eager's do
    counts = [len(flatten(eager[s.index]).tensors) for s in chunk]
    if sum(counts) != len(leaves):
        raise RuntimeError(
            f"{backend.name} returned {len(leaves)} output tensors where eager "
            f"returns {sum(counts)} for these samples"
        )
    split, start = [], 0
    for n in counts:
        split.append(leaves[start : start + n])
        start += n
    return split


def _upcast(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(x.double() if x.is_floating_point() else x for x in inputs)


def _flat_inputs(samples: Sequence[Sample]) -> tuple[torch.Tensor, ...]:
    return tuple(t for s in samples for t in s.inputs)


def _context(s: SamplesState, samples: Sequence[Sample]) -> PrepareContext:
    """The cell's backend context and cache key for a chunk of samples."""
    case_print = f"{s.cell.case}|{[x.label for x in samples]}"
    digest = tensor_digest(list(_flat_inputs(samples)))
    return s.ctx.prepare_context(case_print, digest, s.ctx.artifact_cache)


def _prepare_batch(s: SamplesState) -> float:
    """Prepare and run the valid samples as one module per chunk of ``MAX_BATCH``;
    a chunk that fails is retried one sample at a time. Returns the seconds spent."""
    backend, tdev = s.ctx.backend, s.ctx.device.torch_device()
    began = time.perf_counter()
    chunks = [s.valid[i : i + MAX_BATCH] for i in range(0, len(s.valid), MAX_BATCH)]
    s.notes["batches"] = len(chunks)
    for chunk in chunks:
        inputs = tuple(x.to(tdev) for x in _flat_inputs(chunk))
        ctx = _context(s, chunk)
        try:
            with torch.no_grad():
                prepared = backend.prepare(s.source.module(chunk), inputs, ctx)
                outputs = _per_sample(backend, backend.run(prepared, inputs), chunk, s.eager)
        except Exception as exc:  # noqa: BLE001 - find the samples that fail, within a budget of retries
            s.notes.setdefault("batch_error", first_line(exc))
            _prepare_each(s, chunk)
            continue
        if len(chunks) == 1:  # the one callable of the cell: timed below
            s.prepared = (prepared, inputs)
        s.outputs.update({x.index: out for x, out in zip(chunk, outputs, strict=True)})
        s.notes.update(ctx.notes)
        s.effective_precision = ctx.effective_precision or s.effective_precision
    return time.perf_counter() - began


def _prepare_each(s: SamplesState, samples: list[Sample]) -> None:
    backend, tdev = s.ctx.backend, s.ctx.device.torch_device()
    last, repeats = "", 0
    if s.retries_began is None:  # one budget for all of a cell's retries
        s.retries_began = time.perf_counter()
    began = s.retries_began
    for sample in samples:
        if repeats >= SAME_ERROR_LIMIT:
            s.errors[sample.index] = f"{last} (as the {repeats} samples before; not retried)"
            continue
        if time.perf_counter() - began > FALLBACK_BUDGET_S:
            s.errors[sample.index] = (
                f"not isolated: the batch failed ({s.notes.get('batch_error')}) "
                f"and the per-sample retries ran past {FALLBACK_BUDGET_S:g}s"
            )
            continue
        inputs = tuple(x.to(tdev) for x in sample.inputs)
        ctx = _context(s, [sample])
        step = "prepare"  # the per-sample error says which step failed (not a stage)
        try:
            with torch.no_grad():
                prepared = backend.prepare(s.source.module([sample]), inputs, ctx)
                step = "run"
                (s.outputs[sample.index],) = _per_sample(
                    backend, backend.run(prepared, inputs), [sample], s.eager
                )
            last, repeats = "", 0
        except Exception as exc:  # noqa: BLE001 - a failing sample is recorded, then retried within the budget
            message = f"{step}: {first_line(exc)}"
            repeats = repeats + 1 if message == last else 1
            last = message
            s.errors[sample.index] = message


def _comparable(t: torch.Tensor) -> torch.Tensor:
    """A leaf the drift metrics can read: dense, with conjugation resolved."""
    if t.layout != torch.strided:
        t = t.to_dense()
    return t.resolve_conj().resolve_neg() if t.is_complex() else t.resolve_neg()


def _leaves(
    tree: Any, like: list[torch.Tensor] | None = None
) -> tuple[list[str], list[torch.Tensor]]:
    """Flattened comparable leaves; a real leaf of shape ``(*s, 2)`` where ``like``
    holds a complex one of shape ``s`` is read as complex (ONNX graphs carry
    complex tensors as real and imaginary parts in a last dimension)."""
    flat = flatten(tree)
    names, leaves = flat.names, flat.tensors
    leaves = [_comparable(t) for t in leaves]
    for i, (t, ref) in enumerate(zip(leaves, like or [], strict=False)):
        if (
            ref.is_complex()
            and not t.is_complex()
            and tuple(t.shape) == (*ref.shape, 2)
            and t.dtype in (torch.float32, torch.float64)
        ):
            leaves[i] = torch.view_as_complex(t.contiguous())
    return names, leaves


def _judge(
    sample: Sample,
    actual: Any,
    eager: Any,
    reference: Any,
    backend: str,
    precision: Precision,
    tolerance: Tolerance,
) -> Outcome:
    """One sample's verdict (see the module docstring)."""
    outcome = Outcome(sample)
    _, want = _leaves(eager)
    names, got = _leaves(actual, want)
    if not sample.compare_values:
        shapes = [(tuple(t.shape), t.dtype) for t in got] == [
            (tuple(t.shape), t.dtype) for t in want
        ]
        if not shapes:
            outcome.status, outcome.reason = (
                Status.FAIL,
                "output shapes or dtypes differ from eager's",
            )
        return outcome
    if reference is not None:
        _, ref = _leaves(reference)
        ref = [
            r.to(a.dtype) if r.is_floating_point() and a.is_floating_point() else r
            for a, r in zip(got, ref, strict=False)
        ]
        outcome.drift = drift_mod.compare(names, got, ref, precision.compute_dtype, tolerance)
    if backend == "eager":
        if outcome.drift is None:
            return outcome  # no fp64 reference for this sample: nothing to judge against
        verdict = outcome.drift
        against = "fp64 reference"
    else:
        verdict = drift_mod.compare(names, got, want, precision.compute_dtype, tolerance)
        outcome.eager_diff = drift_mod.max_abs_diff(got, want)
        against = "eager"
        for name, a, e in zip(names, got, want, strict=False):
            if a.dtype != e.dtype and verdict.passed:
                outcome.status, outcome.reason = (
                    Status.FAIL,
                    f"{name}: dtype {a.dtype} != eager's {e.dtype}",
                )
    outcome.max_ulp = float(verdict.columns()["max_ulp"])
    if not verdict.passed:
        outcome.status, outcome.reason = Status.FAIL, f"vs {against}: {verdict.reason}"
    return outcome


def _eager_and_reference(source: SampleSource, samples: list[Sample]) -> tuple[dict, dict, dict]:
    """Eager at the cell's dtype (a sample eager rejects is invalid) and the fp64 reference."""
    eager: dict[int, Any] = {}
    reference: dict[int, Any] = {}
    invalid: dict[int, str] = {}
    for s in samples:
        if s.invalid:
            invalid[s.index] = s.invalid
            continue
        module = source.module([s])
        try:
            eager[s.index] = _run(module, s.inputs)[0]
        except Exception as exc:  # noqa: BLE001 - a sample eager rejects is invalid, not a crash
            invalid[s.index] = f"eager rejects the sample: {first_line(exc)}"
            continue
        try:
            reference[s.index] = _run(module, _upcast(s.inputs))[0]
        except Exception:  # noqa: BLE001 - no fp64 kernel: the sample is judged against eager only
            pass
    return eager, reference, invalid


def stage_samples(s: SamplesState) -> bool:
    """The case's samples for the cell's dtype (a source without any: a skip)."""
    s.row["batch"] = 1
    add_columns(s.row, s.ctx.configure_device())  # --tf32 etc., as the inference precheck does
    s.source = s.ctx.case.extra["samples"]
    try:
        s.samples = s.source.samples(s.ctx.precision.dtype, s.cell.device, s.cell.suite)
    except SamplesUnavailable as exc:
        cast(dict, s.row).clear()  # a skip row says only why
        s.row.update(status=Status.SKIP, reason=str(exc))
        return False
    return True


def stage_reference(s: SamplesState) -> bool:
    """Eager at the cell's dtype and the fp64 reference of every sample."""
    s.eager, s.reference, invalid = _eager_and_reference(s.source, s.samples)
    s.valid = [x for x in s.samples if x.index in s.eager]
    s.row["samples"], s.row["samples_invalid"] = len(s.samples), len(invalid)
    if not s.valid:
        first = next(iter(invalid.values()), "no samples")
        s.row.update(status=Status.SKIP, reason=f"no valid sample: {first}")
        return False
    return True


def stage_prepare(s: SamplesState) -> bool:
    """The backend's callables for the samples (and their outputs: preparing
    runs them, so a failing sample is found while the batch is isolated)."""
    s.row["prepare_s"] = _prepare_batch(s)
    add_columns(s.row, backend_columns(s.notes, s.effective_precision))
    return True


def stage_compare(s: SamplesState) -> bool:
    """Each sample's verdict; the row has the worst."""
    outcomes = []
    for x in s.valid:
        if x.index in s.errors:
            outcomes.append(Outcome(x, Status.ERROR, s.errors[x.index], math.inf))
            continue
        outcomes.append(
            _judge(
                x,
                s.outputs[x.index],
                s.eager[x.index],
                s.reference.get(x.index),
                s.cell.backend,
                s.ctx.precision,
                s.ctx.tolerance,
            )
        )
    add_columns(s.row, _summary(outcomes, s.ctx.tolerance))
    add_columns(s.row, _save_worst(s.cell, s.settings, max(outcomes, key=Outcome.rank)))
    return True


def stage_timing(s: SamplesState) -> bool:
    """One window over the batch callable, when the whole batch prepared as one."""
    if s.prepared is None:
        return True
    prepared, inputs = s.prepared
    backend = s.ctx.backend

    def call() -> Any:
        with torch.no_grad():
            return backend.run(prepared, inputs)

    add_columns(s.row, timing_columns(measure(call, s.ctx.device.time_block, s.settings.timing), 1))
    return True


SAMPLE_STAGES: Stages[SamplesState] = (
    ("precheck", check_precheck),
    ("samples", stage_samples),
    ("reference", stage_reference),
    ("prepare", stage_prepare),
    ("compare", stage_compare),
    ("timing", stage_timing),
)


OUTCOME_COUNTS = (Status.PASS, Status.FAIL, Status.ERROR)  # counted in the row


def _summary(outcomes: list[Outcome], tolerance: Tolerance) -> dict[str, Any]:
    """The row's verdict and columns from the samples' outcomes."""
    counts = {k: sum(o.status == k for o in outcomes) for k in OUTCOME_COUNTS}
    worst = max(outcomes, key=Outcome.rank)
    row: dict[str, Any] = {f"samples_{k}": n for k, n in counts.items()}
    row.update(
        worst_sample=worst.sample.index,
        worst_sample_label=worst.sample.label,
        max_ulp=worst.max_ulp,
        drift_policy="elementwise",
        atol=tolerance.atol,
        rtol=tolerance.rtol,
        eager_max_abs_diff=max(o.eager_diff for o in outcomes),
    )
    if worst.drift is not None:
        columns = worst.drift.columns()
        row.update(
            {k: columns[k] for k in ("max_abs_err", "max_rel_err", "cosine", "mismatch_frac")}
        )
    status = (
        Status.ERROR
        if counts[Status.ERROR]
        else Status.FAIL
        if counts[Status.FAIL]
        else Status.PASS
    )
    row["status"] = status
    if status != Status.PASS:
        n = counts[status]
        row["reason"] = (
            f"{n}/{len(outcomes)} samples {status}; worst #{worst.sample.index} "
            f"[{worst.sample.label}]: {worst.reason}"
        )[:600]
    return row


def _save_worst(cell: Cell, settings: RunSettings, worst: Outcome) -> dict[str, Any]:
    """The worst sample's inputs in ``RUN_DIR/samples/`` and the command replaying it."""
    if settings.output_dir is None or worst.status == Status.PASS:
        return {}

    path = RunDir(settings.output_dir).sample_file(cell.id)  # checked: inside the run directory
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "cell": cell.as_dict(),
        "index": worst.sample.index,
        "label": worst.sample.label,
        "inputs": list(worst.sample.inputs),
    }
    torch.save(record, path)
    return {
        "worst_sample_file": str(path),
        "reproducer": f"python -m torchparity.cell.multisample {path}",
    }


def replay(path: Path, plugins: Sequence[tuple[str, str]] = ()) -> Outcome:
    """Run a saved worst sample again through its backend and print the verdict."""

    record = torch.load(path, weights_only=True)  # tensors, strings and ints only
    load_all(list(plugins))
    # No caches, no stored outputs: a replay writes nothing.
    s = SamplesState(Cell(**record["cell"]), RunSettings(use_artifact_cache=False))
    s.ctx = resolve(s.cell, s.settings)
    s.source = s.ctx.case.extra["samples"]
    # The source rebuilds the sample's call; the saved tensors replace its inputs.
    regenerated = s.source.samples(s.ctx.precision.dtype, s.cell.device, s.cell.suite)
    sample = next(x for x in regenerated if x.index == record["index"])
    sample.inputs = tuple(record["inputs"])
    s.eager, s.reference, invalid = _eager_and_reference(s.source, [sample])
    if invalid:
        print(invalid[sample.index])
        return Outcome(sample, INVALID, invalid[sample.index])
    _prepare_each(s, [sample])
    if sample.index in s.errors:
        outcome = Outcome(sample, Status.ERROR, s.errors[sample.index])
    else:
        outcome = _judge(
            sample,
            s.outputs[sample.index],
            s.eager[sample.index],
            s.reference.get(sample.index),
            s.cell.backend,
            s.ctx.precision,
            s.ctx.tolerance,
        )
    cell = s.cell
    print(f"{cell.id} sample #{sample.index} [{sample.label}]: {outcome.status} {outcome.reason}")
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(
            "usage: python -m torchparity.cell.multisample RUN_DIR/samples/FILE.pt", file=sys.stderr
        )
        return 2
    outcome = replay(Path(args[0]))
    return 0 if outcome.status in (Status.PASS, INVALID) else 1


if __name__ == "__main__":
    raise SystemExit(main())
