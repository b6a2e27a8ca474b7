"""Fuzzing op parity with hypothesis: one property per (op, backend, device, precision).

The property, for inputs drawn from the op's strategy:
- backend ``eager``: eager at the cell's precision agrees with the fp64
  reference (the op in eager at fp64 on CPU, on the very same input values);
- any other backend: its output agrees with eager's at the same precision.
Agreement is the op's elementwise tolerance, NaN/inf positions identical and
integer/bool outputs exact (``drift.compare``), and the same output dtypes.
``hypothesis.target`` steers toward the largest error (in ULPs).

Every divergence is recorded, not just raised: the shrunk example, both
outputs summarised, the metric and a one-line reproducer go to
``divergences.jsonl`` / ``divergences.csv`` in the run directory. Prepare
(export, script) failures are recorded the same way. A divergence on a cell
with a known-failure mark is ``xfail``. Fuzzing runs in this process; prepared
backend callables are cached per input signature, so a backend exports once
per (dtype, shape) signature, not once per example.
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from torchparity._core import environment
from torchparity._core.errors import first_line
from torchparity._core.files import safe_file_stem
from torchparity._core.row import Row, add_columns
from torchparity._core.rundir import DIVERGENCES_CSV, RunDir
from torchparity._core.status import Status
from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision, get_precision
from torchparity.backends import get_backend
from torchparity.backends.base import PrepareContext
from torchparity.cases.cache_keys import behaviour_probe, case_fingerprint
from torchparity.cases.case import CASES, Case, load_entry_point_plugins, load_plugin
from torchparity.cases.inputs import cast_inputs
from torchparity.cases.outputs import flatten
from torchparity.cases.reference import Reference, build_module, clone_inputs
from torchparity.cases.seeds import seeds_for
from torchparity.cell.context import CellContext, RunSettings, precheck, resolve
from torchparity.cell.execute import finish_row
from torchparity.cell.pipeline import NothingToCompare, name_outputs
from torchparity.verdicts import drift as drift_mod

INLINE_VALUES = 32  # inputs with more elements go to an .npy file beside the tables


@dataclass(frozen=True)
class FuzzProfile:
    """How hard to search. ``shapes`` is how many entries of each shape pool
    a strategy uses (0 = all): it bounds the signatures a backend prepares."""

    name: str
    max_examples: int
    shapes: int
    derandomize: bool
    max_signatures: int = 0  # distinct input signatures per property (0 = any)
    shrink: bool = True
    # Seconds per property: after the first ``max_examples``, more rounds of
    # examples run while this lasts (0 = no more rounds), so a backend costing
    # a microsecond a call gets hundreds of examples and one costing an export
    # per signature reuses the signatures it prepared (see ``budget_rounds``).
    time_budget_s: float = 0.0
    max_budget_examples: int = 2000  # cap on the examples of all budget rounds


# ci: an ONNX export costs ~1-2 s on a laptop core, so each property may
# prepare two signatures (fewer when the first export already took half the
# budget); examples with another are rejected (regenerated). The budget (1 s,
# about what a ci property cost on average with 12 examples) then buys more
# examples: hundreds for eager, about a hundred for TorchScript.
PROFILES: dict[str, FuzzProfile] = {
    "ci": FuzzProfile(
        "ci", max_examples=12, shapes=2, derandomize=True, max_signatures=2, time_budget_s=1.0
    ),
    "dev": FuzzProfile(
        "dev", max_examples=60, shapes=4, derandomize=False, max_signatures=8, time_budget_s=20.0
    ),
    "deep": FuzzProfile("deep", max_examples=400, shapes=0, derandomize=False),
}


def hypothesis_settings(
    profile: FuzzProfile, examples: int | None = None, derandomize: bool | None = None
) -> Any:
    """The hypothesis settings of a profile: no deadline (first calls export,
    so timing is no verdict), no example database (runs are reproducible from
    the recorded example, not from a hidden cache)."""
    from hypothesis import HealthCheck, Phase, settings

    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    if profile.shrink:
        phases.append(Phase.shrink)
    return settings(
        max_examples=examples or profile.max_examples,
        derandomize=profile.derandomize if derandomize is None else derandomize,
        deadline=None,
        database=None,
        phases=phases,
        # hypothesis types HealthCheck's members through its metaclass, not as HealthCheck
        suppress_health_check=list(HealthCheck),  # pyright: ignore[reportArgumentType]
        report_multiple_bugs=False,
        print_blob=False,
    )


class Finding(Exception):
    """An example on which the backend disagrees (or cannot prepare or run)."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__(record["reason"])
        self.record = record


class OverBudget(Exception):
    """The example needs a signature beyond the profile's budget (rejected)."""


class StrategyError(Exception):
    """Eager itself rejected a drawn example: the op's strategy is wrong."""


@dataclass
class Target:
    """One property: an op on a backend, device and precision."""

    case: Case
    backend: str
    device: str
    precision: str

    @property
    def cell(self) -> Cell:
        return Cell(self.case.name, "op", "ops", self.device, self.precision, self.backend)


@dataclass
class Checker:
    """Runs one example of a target; keeps the per-signature prepared callables."""

    target: Target
    max_signatures: int = 0
    cache_dir: Path | None = None  # backend artifacts shared between runs (None: this run only)
    seen: set[tuple] = field(default_factory=set)  # input signatures checked so far
    prepared: dict[tuple, Any] = field(default_factory=dict)  # signature -> callable or Exception
    prepare_s: float = 0.0
    cache_hits: int = 0  # signatures served from --cache-dir
    examples: int = 0
    worst: float = 0.0
    # Budget rounds: None = the first round's rule (max_signatures); else a new
    # signature is allowed only while this says its preparing still fits.
    allow_new_signature: Callable[[], bool] | None = None
    first_round: bool = True

    def __post_init__(self) -> None:
        # The run's defaults (seed 0, no backend options); artifacts under cache_dir.
        self.ctx: CellContext = resolve(self.target.cell, RunSettings(cache_dir=self.cache_dir))
        self.precision: Precision = self.ctx.precision
        self.tdev = self.ctx.device.torch_device()
        module = build_module(self.ctx.case, self.ctx.seed)
        self.case_print = case_fingerprint(self.ctx.case, module)
        self.fingerprint = behaviour_probe(self.ctx.case, module).fingerprint
        self.reference_module = copy.deepcopy(module).to(torch.float64)
        self.module = module.to(device=self.tdev, dtype=self.precision.dtype)
        self.backend = self.ctx.backend
        self.eager = get_backend("eager").prepare(self.module, (), self._ctx(""))
        self.tolerance = self.ctx.tolerance

    def _ctx(self, signature: str) -> PrepareContext:
        """The cell's backend context and cache key, with the input signature as the inputs."""
        ctx = self.ctx.prepare_context(self.case_print, signature, self.cache_dir)
        ctx.fingerprint = self.fingerprint  # an artifact of another behaviour is rebuilt
        return ctx

    def _prepared(self, inputs: tuple) -> Any:
        signature = tuple((str(x.dtype), tuple(x.shape)) for x in inputs)
        if signature not in self.prepared:
            began = time.perf_counter()
            ctx = self._ctx(repr(signature))
            try:
                with torch.no_grad():
                    module = copy.deepcopy(self.module)  # the backend's own copy, as in run
                    self.prepared[signature] = self.backend.prepare(
                        module, clone_inputs(inputs), ctx
                    )
                self.cache_hits += ctx.notes.get("cache") == "hit"
            except Exception as exc:  # noqa: BLE001 - an export failure is a finding, remembered per signature
                self.prepared[signature] = exc
            self.prepare_s += time.perf_counter() - began
        return self.prepared[signature]

    def check(self, args: tuple) -> float:
        """Run one example; return the metric (max ULP error, or mismatch count
        for integer outputs); raise ``Finding`` on a divergence."""
        inputs = cast_inputs(tuple(args), self.precision.dtype, self.tdev)
        signature = tuple((str(x.dtype), tuple(x.shape)) for x in inputs)
        if signature not in self.seen:
            if self.allow_new_signature is not None:
                if not self.allow_new_signature():
                    raise OverBudget(signature)
            elif self.max_signatures and len(self.seen) >= self.max_signatures:
                raise OverBudget(signature)
            self.seen.add(signature)
        self.examples += 1
        try:
            with torch.no_grad():
                expected_out = self.eager(*clone_inputs(inputs))
        except Exception as exc:
            raise StrategyError(f"eager rejected a drawn example: {first_line(exc)}") from exc
        if self.target.backend == "eager":
            # Eager at this precision against the fp64 reference on the same values.
            actual_out = expected_out
            ref_inputs = tuple(
                x.cpu().double() if x.is_floating_point() else x.cpu() for x in clone_inputs(inputs)
            )
            with torch.no_grad():
                expected_out = self.reference_module(*ref_inputs)
            against = "fp64 reference"
        else:
            prepared = self._prepared(inputs)
            if isinstance(prepared, Exception):
                raise Finding(self._record("prepare", inputs, None, None, prepared))
            try:
                with torch.no_grad():
                    actual_out = self.backend.run(prepared, clone_inputs(inputs))
            except Exception as exc:
                raise Finding(self._record("run", inputs, None, expected_out, exc)) from exc
            against = "eager"
        expected_flat = flatten(expected_out)
        eager_side = Reference(
            expected_flat.names, expected_flat.tensors, "", expected_flat.dropped
        )
        try:
            actual_flat = name_outputs(self.backend, actual_out, eager_side)
        except NothingToCompare as exc:
            raise Finding(self._record("run", inputs, None, expected_out, exc)) from exc
        names, actual, expected = actual_flat.names, actual_flat.tensors, expected_flat.tensors
        if against == "fp64 reference":
            # The best a dtype can do is the reference rounded to it (an fp64
            # result beyond fp32's range *is* inf in fp32), so compare to that.
            expected = [
                e.to(a.dtype) if e.is_floating_point() and a.is_floating_point() else e
                for a, e in zip(actual, expected, strict=False)
            ]
        result = drift_mod.compare(
            names,
            actual,
            expected,
            self.precision.compute_dtype,
            self.tolerance,
            self.ctx.policy,
        )
        metric = (
            max((lf.max_ulp if lf.max_ulp else float(lf.mismatches)) for lf in result.leaves)
            if result.leaves
            else 0.0
        )
        metric = metric if math.isfinite(metric) else 1e30
        self.worst = max(self.worst, metric)
        dtype_reason = _dtype_mismatch(names, actual, expected) if against == "eager" else ""
        if not result.passed or dtype_reason:
            reason = result.reason or dtype_reason
            raise Finding(
                self._record(
                    "mismatch",
                    inputs,
                    actual_out,
                    expected_out,
                    None,
                    reason=f"vs {against}: {reason}",
                    metric=metric,
                )
            )
        return metric

    def _record(
        self,
        kind: str,
        inputs: tuple,
        actual: Any,
        expected: Any,
        exc: BaseException | None,
        reason: str = "",
        metric: float | None = None,
    ) -> dict:
        t = self.target
        if exc is not None:
            reason = f"{kind}: {first_line(exc)}"
        return {
            "op": t.case.name,
            "backend": t.backend,
            "device": t.device,
            "precision": t.precision,
            "kind": kind,
            "reason": reason,
            "metric": "max_ulp",
            "metric_value": metric,
            "atol": self.tolerance.atol,
            "rtol": self.tolerance.rtol,
            "_inputs": [x.detach().cpu() for x in inputs],
            "actual": summarize(actual),
            "expected": summarize(expected),
        }


def _dtype_mismatch(
    names: list[str], actual: list[torch.Tensor], expected: list[torch.Tensor]
) -> str:
    for name, a, e in zip(names, actual, expected, strict=False):
        if a.dtype != e.dtype:
            return f"{name}: dtype {a.dtype} != eager's {e.dtype}"
    return ""


def _value_text(v: float | int | bool) -> str:
    if isinstance(v, float) and not math.isfinite(v):
        return "float('nan')" if math.isnan(v) else ("float('inf')" if v > 0 else "-float('inf')")
    return repr(v)


def _list_text(values: Any) -> str:
    if isinstance(values, list):
        return "[" + ", ".join(_list_text(v) for v in values) + "]"
    return _value_text(values)


def summarize(tree: Any) -> list[dict[str, Any]] | None:
    """Output leaves summarised: shape, dtype, values when small, else statistics."""
    if tree is None:
        return None
    flat = flatten(tree)
    names, leaves = flat.names, flat.tensors
    out = []
    for name, t in zip(names, leaves, strict=True):
        t = t.detach().cpu()
        item: dict[str, Any] = {"leaf": name, "shape": list(t.shape), "dtype": str(t.dtype)}
        wide = t.double() if t.is_floating_point() else t.long() if t.dtype != torch.bool else t
        if t.numel() <= INLINE_VALUES:
            item["values"] = wide.tolist()
        elif t.is_floating_point():
            finite = wide[torch.isfinite(wide)]
            item.update(
                min=float(finite.min()) if finite.numel() else None,
                max=float(finite.max()) if finite.numel() else None,
                nan=int(torch.isnan(wide).sum()),
                inf=int(torch.isinf(wide).sum()),
            )
        out.append(item)
    return out


def _input_expr(x: torch.Tensor, npy: Path | None) -> str:
    """A Python expression rebuilding ``x`` exactly (floats via float64, which
    holds every fp16/bf16/fp32 value)."""
    dtype = f"torch.{str(x.dtype).removeprefix('torch.')}"
    if npy is not None:
        return f"torch.from_numpy(__import__('numpy').load({str(npy)!r})).to({dtype})"
    values = x.double().tolist() if x.is_floating_point() else x.tolist()
    wide = "torch.float64" if x.is_floating_point() else dtype
    expr = f"torch.tensor({_list_text(values)}, dtype={wide})"
    if x.numel() == 0:
        expr += f".reshape({tuple(x.shape)!r})"
    return f"{expr}.to({dtype})" if x.is_floating_point() else expr


def _save_inputs(record: dict[str, Any], directory: Path, stem: str) -> list[dict[str, Any]]:
    described = []
    for i, x in enumerate(record.pop("_inputs")):
        item: dict[str, Any] = {"shape": list(x.shape), "dtype": str(x.dtype)}
        npy = None
        if x.numel() > INLINE_VALUES:
            directory.mkdir(parents=True, exist_ok=True)
            npy = (directory / f"{safe_file_stem(stem)}-arg{i}.npy").resolve()
            wide = x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
            np.save(npy, wide.numpy())
            item["npy"] = str(npy)
        else:
            item["values"] = x.double().tolist() if x.is_floating_point() else x.tolist()
        item["expr"] = _input_expr(x, npy)
        described.append(item)
    return described


def reproducer(record: dict[str, Any], plugins: Sequence[tuple[str, str]] = ()) -> str:
    """A one-line Python command that replays the example and prints both outputs."""
    args = ", ".join(item["expr"] for item in record["inputs"])
    plug = f", plugins={[list(p) for p in plugins]!r}" if plugins else ""
    return (
        f"import torch; from torchparity.fuzz.properties import replay; replay({record['op']!r}, "
        f"{record['backend']!r}, {record['precision']!r}, {record['device']!r}, "
        f"[{args}]{plug})"
    )


def replay(
    op: str,
    backend: str,
    precision: str,
    device: str,
    inputs: list[torch.Tensor],
    plugins: list | None = None,
) -> dict[str, Any] | None:
    """Run one recorded example again; print and return the divergence (None if it agrees)."""

    load_entry_point_plugins()
    for spec in plugins or []:
        load_plugin(tuple(spec))  # type: ignore[arg-type]
    checker = Checker(Target(CASES[op], backend, device, precision))
    try:
        metric = checker.check(tuple(inputs))
    except Finding as finding:
        record = {k: v for k, v in finding.record.items() if k != "_inputs"}
        print(json.dumps(record, indent=2, default=str))
        return record
    print(f"{op} on {backend}/{device}/{precision}: agrees (max_ulp {metric:g})")
    return None


@dataclass
class TargetResult:
    """What fuzzing one target found: its row and its divergence (if any)."""

    row: Row
    divergence: dict[str, Any] | None = None


def fuzz_target(
    target: Target,
    profile: FuzzProfile,
    examples: int | None = None,
    out_dir: Path | None = None,
    plugins: Sequence[tuple[str, str]] = (),
    cache_dir: Path | None = None,
) -> TargetResult:
    """Fuzz one (op, backend, device, precision); never raises for the op's own failures."""
    from hypothesis import given, reject
    from hypothesis import target as steer

    case, cell = target.case, target.cell
    row = Row()
    add_columns(row, cell.as_dict())
    row.update(status=Status.PASS, reason="")
    began = time.perf_counter()
    skip = _skip_reason(target)
    if skip:
        row.update(status=Status.SKIP, reason=skip)
        return TargetResult(row)
    strategy_factory: Callable[[int], Any] | None = case.extra.get("strategy")
    checker: Checker | None = None
    found: list[dict[str, Any]] = []
    rounds = 0
    try:
        checker = Checker(target, profile.max_signatures, cache_dir)
        strategy = strategy_factory(profile.shapes)  # type: ignore[misc]

        def prop(args: tuple) -> None:
            try:
                metric = checker.check(args)
            except OverBudget:
                reject()
            except Finding as finding:
                found.append(finding.record)  # the last one raised is the shrunk one
                raise
            steer(metric, label="max_ulp")

        with warnings.catch_warnings():
            # Exporters warn per example (deprecations, tracer notes): noise at fuzzing volume.
            warnings.simplefilter("ignore")
            # A fresh hypothesis test per round: settings decorate a function once.
            rounds = _search(
                target, profile, examples, checker, lambda: given(strategy)(prop), found, began
            )
    except Finding:
        pass
    except StrategyError as exc:
        row.update(status=Status.ERROR, reason=f"strategy: {exc}")
    except Exception as exc:  # noqa: BLE001 - hypothesis errors (unsatisfiable), harness bugs: a row, not a crash
        row.update(status=Status.ERROR, reason=first_line(exc))
    divergence = None
    if found:
        divergence = found[-1]
        mark = case.known_failure(target.backend, target.device, target.precision)
        divergence["status"] = Status.XFAIL.value if mark else "new"  # a divergence's status
        divergence["known"] = mark.describe() if mark else ""
        stem = f"{case.name}-{target.backend}-{target.device}-{target.precision}"
        divergence["inputs"] = _save_inputs(
            divergence, RunDir(out_dir or Path(".")).divergence_inputs, stem
        )
        divergence["reproducer"] = reproducer(divergence, plugins)
        row.update(status=Status.FAIL, reason=divergence["reason"])  # finish_row applies the mark
    elif (
        case.known_failure(target.backend, target.device, target.precision)
        and row.get("status") == Status.PASS
    ):
        row["reason"] = "known failure mark did not reproduce (xpass)"
    if checker is not None:
        row["rounds"], row["time_budget_s"] = rounds, profile.time_budget_s
        row["examples"], row["max_ulp"] = checker.examples, checker.worst
        row["signatures"], row["prepared"] = len(checker.seen), len(checker.prepared)
        row["prepare_s"], row["cache_hits"] = checker.prepare_s, checker.cache_hits
    row["profile"], row["wall_s"] = profile.name, time.perf_counter() - began
    row["check"] = "vs fp64 reference" if target.backend == "eager" else "vs eager"
    return TargetResult(row, divergence)


def _search(
    target: Target,
    profile: FuzzProfile,
    examples: int | None,
    checker: Checker,
    make_test: Callable[[], Any],
    found: list[dict[str, Any]],
    began: float,
) -> int:
    """The first round (``examples`` or the profile's), the seeds, then the
    time budget's rounds; returns the number of rounds."""
    budgeted = examples is None and profile.time_budget_s > 0  # --examples: exactly that many
    if budgeted:
        checker.allow_new_signature = signature_admission(profile, checker, began)
    hypothesis_settings(profile, examples)(make_test())()
    checker.first_round = False
    _check_seeds(checker, target.case, target, found)
    return 1 + (budget_rounds(profile, checker, make_test, began) if budgeted else 0)


def signature_admission(profile: FuzzProfile, checker: Checker, began: float) -> Callable[[], bool]:
    """Whether a property under a time budget may prepare a new input signature:
    the first always; in the first round no more than ``max_signatures``; and
    only while preparing one more (at the mean prepare time so far) fits half
    the budget. Eager prepares nothing, so it keeps drawing new shapes; a
    backend that exports per signature reuses the artifacts it has."""
    deadline = began + profile.time_budget_s

    def admit() -> bool:
        if not checker.seen:
            return True
        if (
            checker.first_round
            and profile.max_signatures
            and len(checker.seen) >= profile.max_signatures
        ):
            return False
        mean = checker.prepare_s / len(checker.prepared) if checker.prepared else 0.0
        return (
            checker.prepare_s + mean <= profile.time_budget_s / 2
            and time.perf_counter() + mean < deadline
        )

    return admit


def budget_rounds(
    profile: FuzzProfile, checker: Checker, make_test: Callable[[], Any], began: float
) -> int:
    """More rounds of examples while the property's time budget lasts; returns
    how many ran. Each round is sized from the time an example has cost so
    far (preparing excluded) and seeded by its number, so a machine as fast
    runs the same examples; new signatures follow :func:`signature_admission`."""
    from hypothesis import seed
    from hypothesis.errors import Unsatisfiable

    deadline = began + profile.time_budget_s
    rounds, spent = 0, 0
    while spent < profile.max_budget_examples:
        left = deadline - time.perf_counter()
        run_s = max(time.perf_counter() - began - checker.prepare_s, 1e-6)
        per_example = run_s / max(checker.examples, 1)
        size = min(int(0.8 * left / per_example), profile.max_budget_examples - spent)
        if size < 4:  # too little time left for a round worth its set-up
            break
        rounds += 1
        try:
            hypothesis_settings(profile, size, derandomize=False)(seed(rounds)(make_test()))()
        except Unsatisfiable:  # nearly every draw needs a signature the budget denies
            break
        spent += size
    return rounds


def _check_seeds(checker: Checker, case: Case, target: Target, found: list[dict[str, Any]]) -> None:
    """Inputs from seed sources (e.g. OpInfo's samples for an op of the same
    name) checked before the search; a divergence on one is a finding as
    any other (fixed inputs: nothing to shrink)."""

    for args in seeds_for(case, get_precision(target.precision).dtype):
        try:
            checker.check(args)
        except (OverBudget, StrategyError):
            continue  # a seed the op (as the catalog wraps it) does not take
        except Finding as finding:
            found.append(finding.record)
            raise


def _skip_reason(target: Target) -> str | None:
    """The pipeline's precheck (device, precision, autocast, backend), after the
    fuzz-only rule that an op needs a strategy."""
    if target.case.extra.get("strategy") is None:
        return f"{target.case.name} has no fuzzing strategy"
    return precheck(target.cell)


DIVERGENCE_COLUMNS = [
    "op",
    "backend",
    "device",
    "precision",
    "status",
    "kind",
    "reason",
    "metric",
    "metric_value",
    "atol",
    "rtol",
    "input_shapes",
    "input_dtypes",
    "known",
    "reproducer",
]


def divergences_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The flat divergence table (inputs and outputs stay in the JSONL)."""
    rows = []
    for r in records:
        flat = {k: r.get(k) for k in DIVERGENCE_COLUMNS}
        flat["input_shapes"] = " ".join(str(tuple(i["shape"])) for i in r.get("inputs", []))
        flat["input_dtypes"] = " ".join(i["dtype"] for i in r.get("inputs", []))
        rows.append(flat)
    return pd.DataFrame(rows, columns=DIVERGENCE_COLUMNS)


def write_divergences_csv(records: list[dict[str, Any]], run_dir: Path) -> Path:
    """divergences.csv from the records (divergences.jsonl is streamed as they are found)."""
    return RunDir(run_dir).write_csv(divergences_frame(records), DIVERGENCES_CSV)


ProgressFn = Callable[[int, int, Cell, float], None]


def fuzz_run(
    targets: list[Target],
    profile: FuzzProfile,
    run_dir: Path,
    examples: int | None = None,
    plugins: Sequence[tuple[str, str]] = (),
    progress: ProgressFn | None = None,
    cache_dir: Path | None = None,
) -> tuple[list[dict], list[dict]]:
    """Fuzz every target in turn; stream rows to results.jsonl and divergences
    to divergences.jsonl; return (rows, divergences)."""

    rd = RunDir(run_dir).create()
    env = environment.collect()
    env.setdefault("run_id", run_dir.name)
    rd.write_env(env)
    rows: list[dict] = []
    found: list[dict] = []
    started = time.perf_counter()
    with rd.results_writer() as results, rd.divergences_writer() as divergences:
        for i, target in enumerate(targets):
            if progress:
                progress(i, len(targets), target.cell, time.perf_counter() - started)
            outcome = fuzz_target(target, profile, examples, run_dir, plugins, cache_dir)
            row = outcome.row
            cell = target.cell
            for key in cell.as_dict():
                row.pop(key, None)
            row = finish_row(cell, row, env)  # a known-failure mark turns fail into xfail
            results.append(row)
            rows.append(dict(row))
            if outcome.divergence is not None:
                found.append(outcome.divergence)
                divergences.append(outcome.divergence)
        if progress and targets:
            progress(len(targets), len(targets), targets[-1].cell, time.perf_counter() - started)
    write_divergences_csv(found, run_dir)
    return rows, found
