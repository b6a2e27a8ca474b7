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
from typing import Any

import torch

from torchparity.axes.devices import get_device
from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision, Tolerance, get_precision
from torchparity.backends import get_backend
from torchparity.backends.base import PrepareContext
from torchparity.cases.case import CASES, Case
from torchparity.cases.inputs import tensor_digest
from torchparity.cases.outputs import flatten
from torchparity.cases.samples import Sample, SampleSource, SamplesUnavailable
from torchparity.verdicts import drift as drift_mod

SAME_ERROR_LIMIT = 3  # samples failing alike before the rest are not retried
FALLBACK_BUDGET_S = 30.0  # seconds of one-by-one retries after a batch fails
# Samples per prepared module: OpInfo entries have up to ~1200 samples, and an
# export or compile of one graph that size costs more than its chunks together.
MAX_BATCH = 64


@dataclass
class Outcome:
    """What happened to one sample."""

    sample: Sample
    status: str = "pass"  # pass, fail, error, invalid
    reason: str = ""
    max_ulp: float = 0.0
    drift: drift_mod.Drift | None = None  # vs fp64 reference (informative for non-eager)
    eager_diff: float = 0.0

    def rank(self) -> tuple[int, float]:
        order = {"error": 3, "fail": 2, "pass": 1, "invalid": 0}[self.status]
        return order, self.max_ulp if math.isfinite(self.max_ulp) else 1e300


@dataclass
class _Batch:
    """The prepared batch (or per-sample fallbacks) and their outputs."""

    outputs: dict[int, Any] = field(default_factory=dict)  # sample index -> output
    errors: dict[int, str] = field(default_factory=dict)  # sample index -> "stage: message"
    prepared: Any = None  # the batch callable when the whole batch prepared and ran
    prepare_s: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)
    retries_began: float | None = None


def _line(exc: BaseException) -> str:
    from torchparity._core.errors import first_line  # one wording for every error reason

    return first_line(exc)


def _run(module: torch.nn.Module, inputs: tuple) -> Any:
    with torch.no_grad():  # the pipeline's one grad mode
        return module(*inputs)


def _per_sample(backend: Any, outputs: Any, chunk: Sequence[Sample], eager: dict) -> list[Any]:
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


def _context(
    cell: Cell, precision: Precision, settings: Any, samples: Sequence[Sample]
) -> PrepareContext:
    """The pipeline's context and cache key (engine/cache_keys.py) for a chunk of samples."""
    from torchparity.cell.pipeline import prepare_context

    cache = settings.cache_dir if settings.use_artifact_cache else None
    case_print = f"{cell.case}|{[s.label for s in samples]}"
    return prepare_context(
        cell,
        get_device(cell.device),
        precision,
        cache,
        case_print,
        tensor_digest(list(_flat_inputs(samples))),
        settings.backend_options.get(cell.backend, {}),
        settings.seed,
    )


def _prepare_batch(
    source: SampleSource,
    samples: list[Sample],
    cell: Cell,
    precision: Precision,
    settings: Any,
    eager: dict,
) -> _Batch:
    """Prepare and run the samples as one module per chunk of ``MAX_BATCH``;
    a chunk that fails is retried one sample at a time."""
    backend = get_backend(cell.backend)
    tdev = get_device(cell.device).torch_device()
    batch = _Batch()
    began = time.perf_counter()
    chunks = [samples[i : i + MAX_BATCH] for i in range(0, len(samples), MAX_BATCH)]
    batch.notes["batches"] = len(chunks)
    for chunk in chunks:
        inputs = tuple(x.to(tdev) for x in _flat_inputs(chunk))
        ctx = _context(cell, precision, settings, chunk)
        try:
            with torch.no_grad():
                prepared = backend.prepare(source.module(chunk), inputs, ctx)
                outputs = _per_sample(backend, backend.run(prepared, inputs), chunk, eager)
        except Exception as exc:  # find the samples that fail, within a budget of retries
            batch.notes.setdefault("batch_error", _line(exc))
            _prepare_each(source, chunk, cell, precision, settings, batch, eager)
            continue
        if len(chunks) == 1:  # the one callable of the cell: timed below
            batch.prepared = (prepared, inputs)
        batch.outputs.update({s.index: out for s, out in zip(chunk, outputs, strict=True)})
        batch.notes.update(ctx.notes)
    batch.prepare_s = time.perf_counter() - began
    return batch


def _prepare_each(
    source: SampleSource,
    samples: list[Sample],
    cell: Cell,
    precision: Precision,
    settings: Any,
    batch: _Batch,
    eager: dict,
) -> None:
    backend = get_backend(cell.backend)
    tdev = get_device(cell.device).torch_device()
    last, repeats = "", 0
    if batch.retries_began is None:  # one budget for all of a cell's retries
        batch.retries_began = time.perf_counter()
    began = batch.retries_began
    for s in samples:
        if repeats >= SAME_ERROR_LIMIT:
            batch.errors[s.index] = f"{last} (as the {repeats} samples before; not retried)"
            continue
        if time.perf_counter() - began > FALLBACK_BUDGET_S:
            batch.errors[s.index] = (
                f"not isolated: the batch failed ({batch.notes.get('batch_error')}) "
                f"and the per-sample retries ran past {FALLBACK_BUDGET_S:g}s"
            )
            continue
        inputs = tuple(x.to(tdev) for x in s.inputs)
        ctx = _context(cell, precision, settings, [s])
        stage = "prepare"
        try:
            with torch.no_grad():
                prepared = backend.prepare(source.module([s]), inputs, ctx)
                stage = "run"
                (batch.outputs[s.index],) = _per_sample(
                    backend, backend.run(prepared, inputs), [s], eager
                )
            last, repeats = "", 0
        except Exception as exc:
            message = f"{stage}: {_line(exc)}"
            repeats = repeats + 1 if message == last else 1
            last = message
            batch.errors[s.index] = message


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
            outcome.status, outcome.reason = "fail", "output shapes or dtypes differ from eager's"
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
                    "fail",
                    f"{name}: dtype {a.dtype} != eager's {e.dtype}",
                )
    outcome.max_ulp = float(verdict.columns()["max_ulp"])
    if not verdict.passed:
        outcome.status, outcome.reason = "fail", f"vs {against}: {verdict.reason}"
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
        except Exception as exc:
            invalid[s.index] = f"eager rejects the sample: {_line(exc)}"
            continue
        try:
            reference[s.index] = _run(module, _upcast(s.inputs))[0]
        except Exception:  # no fp64 kernel: the sample is judged against eager only
            pass
    return eager, reference, invalid


def execute_multisample(cell: Cell, case: Case, settings: Any) -> dict[str, Any]:
    """Run one multi-sample cell and return its row (the pipeline's contract)."""
    from torchparity._core.errors import error_fields
    from torchparity.cell.pipeline import timing_columns, tolerance_for
    from torchparity.timing.timer import measure

    row: dict[str, Any] = {"status": "pass", "reason": "", "batch": 1}
    stage = "samples"
    try:
        source: SampleSource = case.extra["samples"]
        precision = get_precision(cell.precision)
        device = get_device(cell.device)
        row.update(device.configure(settings.device_options))  # --tf32 etc., as stage_precheck does
        try:
            samples = source.samples(precision.dtype, cell.device, cell.suite)
        except SamplesUnavailable as exc:
            return {"status": "skip", "reason": str(exc)}
        stage = "reference"
        eager, reference, invalid = _eager_and_reference(source, samples)
        valid = [s for s in samples if s.index in eager]
        row.update(samples=len(samples), samples_invalid=len(invalid))
        if not valid:
            first = next(iter(invalid.values()), "no samples")
            return {**row, "status": "skip", "reason": f"no valid sample: {first}"}
        stage = "prepare"
        tolerance = tolerance_for(case, precision)
        batch = _prepare_batch(source, valid, cell, precision, settings, eager)
        row["prepare_s"] = batch.prepare_s
        row.update({f"backend_{k}": v for k, v in batch.notes.items()})
        stage = "drift"
        outcomes = []
        for s in valid:
            if s.index in batch.errors:
                outcomes.append(Outcome(s, "error", batch.errors[s.index], math.inf))
                continue
            outcomes.append(
                _judge(
                    s,
                    batch.outputs[s.index],
                    eager[s.index],
                    reference.get(s.index),
                    cell.backend,
                    precision,
                    tolerance,
                )
            )
        row.update(_summary(outcomes, tolerance))
        row.update(_save_worst(cell, settings, max(outcomes, key=Outcome.rank)))
        if batch.prepared is not None:
            stage = "timing"
            prepared, inputs = batch.prepared
            backend = get_backend(cell.backend)

            def call() -> Any:
                with torch.no_grad():
                    return backend.run(prepared, inputs)

            row.update(timing_columns(measure(call, device.time_block, settings.timing), 1))
    except Exception as exc:  # a cell's failure is a finding, not a crash
        row.update(error_fields(exc, stage))
    return row


def _summary(outcomes: list[Outcome], tolerance: Tolerance) -> dict[str, Any]:
    """The row's verdict and columns from the samples' outcomes."""
    counts = {k: sum(o.status == k for o in outcomes) for k in ("pass", "fail", "error")}
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
    status = "error" if counts["error"] else "fail" if counts["fail"] else "pass"
    row["status"] = status
    if status != "pass":
        n = counts[status]
        row["reason"] = (
            f"{n}/{len(outcomes)} samples {status}; worst #{worst.sample.index} "
            f"[{worst.sample.label}]: {worst.reason}"
        )[:600]
    return row


def _save_worst(cell: Cell, settings: Any, worst: Outcome) -> dict[str, Any]:
    """The worst sample's inputs in ``RUN_DIR/samples/`` and the command replaying it."""
    if settings.output_dir is None or worst.status == "pass":
        return {}
    from torchparity._core.rundir import RunDir

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
    from torchparity.cases.case import load_all

    record = torch.load(path, weights_only=True)  # tensors, strings and ints only
    load_all(list(plugins))
    cell = Cell(**record["cell"])
    case = CASES[cell.case]
    precision = get_precision(cell.precision)
    source: SampleSource = case.extra["samples"]
    # The source rebuilds the sample's call; the saved tensors replace its inputs.
    regenerated = source.samples(precision.dtype, cell.device, cell.suite)
    sample = next(s for s in regenerated if s.index == record["index"])
    sample.inputs = tuple(record["inputs"])
    eager, reference, invalid = _eager_and_reference(source, [sample])
    if invalid:
        print(invalid[sample.index])
        return Outcome(sample, "invalid", invalid[sample.index])

    from torchparity.cell.pipeline import RunSettings

    batch = _Batch()  # no caches, no stored outputs: a replay writes nothing
    _prepare_each(
        source, [sample], cell, precision, RunSettings(use_artifact_cache=False), batch, eager
    )
    from torchparity.cell.pipeline import tolerance_for

    tolerance = tolerance_for(case, precision)
    if sample.index in batch.errors:
        outcome = Outcome(sample, "error", batch.errors[sample.index])
    else:
        outcome = _judge(
            sample,
            batch.outputs[sample.index],
            eager[sample.index],
            reference.get(sample.index),
            cell.backend,
            precision,
            tolerance,
        )
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
    return 0 if outcome.status in ("pass", "invalid") else 1


if __name__ == "__main__":
    raise SystemExit(main())
