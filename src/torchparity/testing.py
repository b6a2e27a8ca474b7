"""Parity checks inside a user's own tests: ``assert_parity(model, inputs, ...)``.

A check is a transient case (the user's module and inputs) expanded over the
backends, precisions and devices asked for and run cell by cell through the
runner's executor and the one cell pipeline (``execute_cell``, ``finish_row``),
so a check's rows are the rows ``torchparity run`` would write. It raises
``ParityError`` (an ``AssertionError``) with a short drift table when a cell
fails, errors, crashes or times out, and ``unittest.SkipTest`` (a skip under
pytest and unittest) when no cell could run here.

Isolation (a worker process per check) needs a case the worker can rebuild:
pass ``"pkg.module:case_name"``, a case registered by an importable module,
instead of a module instance. The pytest plugin (``torchparity.pytest_plugin``)
supplies the test's name, its known-failure marks and the ``--parity-out``
collection through :data:`CONTEXT`.
"""

from __future__ import annotations

import copy
import math
import unittest
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from torchparity._core import environment
from torchparity._core.row import Row
from torchparity._core.status import BAD_STATUSES, Status
from torchparity.axes.devices import DEVICES
from torchparity.axes.matrix import expand
from torchparity.axes.precision import PRECISIONS, Tolerance
from torchparity.backends import backend_names
from torchparity.cases.case import CASES, Case, KnownFailure, PluginSpec, load_all
from torchparity.cell.context import RunSettings
from torchparity.cell.execute import finish_row
from torchparity.run.worker import InProcessExecutor, IsolatedExecutor
from torchparity.timing.timer import TimingConfig

TABLE_COLUMNS = (
    "backend",
    "precision",
    "status",
    "max_abs_err",
    "max_rel_err",
    "atol",
    "rtol",
    "reason",
)


class ParityError(AssertionError):
    """A parity check found cells that fail, error, crash or time out."""

    def __init__(self, message: str, result: ParityResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class ParityResult:
    """The rows of one check (one per cell), in matrix order."""

    case: str
    rows: list[Row]

    @property
    def bad(self) -> list[Row]:
        return [r for r in self.rows if r.get("status") in BAD_STATUSES]

    def table(self) -> str:
        return drift_table(self.rows)


@dataclass
class CheckContext:
    """What a test runner supplies to the checks of the running test."""

    name: str  # default case name (the test's)
    test: str = ""  # the test's id, kept in each row's ``test`` column
    known_failures: tuple[KnownFailure, ...] = ()
    output_dir: Path | None = None  # where cells store their outputs (--parity-out)
    env: dict[str, Any] = field(default_factory=dict)
    record: Callable[[ParityResult], None] | None = None
    taken: set[str] = field(default_factory=set)  # case names used in this session
    base: str | None = None

    def next_name(self) -> str:
        """The test's name (its id when another test took the name), numbered
        from its second check on: unique in the session, so cell ids are too."""
        if self.base is None:
            self.base = self.name if self.name not in self.taken or not self.test else self.test
        name, n = self.base, 1
        while name in self.taken:
            n += 1
            name = f"{self.base}#{n}"
        self.taken.add(name)
        return name


CONTEXT: ContextVar[CheckContext | None] = ContextVar("torchparity_check", default=None)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return format(value, ".3g")
    return str(value).replace("\n", " ")


def drift_table(rows: Sequence[Row], reason_width: int = 90) -> str:
    """A compact fixed-width table of the cells' verdicts and drift (device
    added when the check spans several)."""
    columns: list[str] = list(TABLE_COLUMNS)
    if len({r.get("device") for r in rows}) > 1:
        columns.insert(2, "device")
    cells = [[_fmt(r.get(c))[:reason_width] for c in columns] for r in rows]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells
    ]
    return "\n".join(lines)


def pipeline_inputs(inputs: Any) -> tuple:
    """The user's inputs in the pipeline's convention: CPU, floats as float64,
    integers as int64 (each cell casts floats to its precision)."""
    items = inputs if isinstance(inputs, tuple | list) else (inputs,)

    def convert(x: Any) -> Any:
        if not isinstance(x, torch.Tensor):
            return copy.deepcopy(x)
        x = x.detach().cpu()
        if x.is_floating_point():
            return x.to(torch.float64)
        if x.dtype != torch.bool and not x.is_complex():
            return x.to(torch.int64)
        return x.clone()

    return tuple(convert(x) for x in items)


def _check_axes(backends: Sequence[str], precisions: Sequence[str], devices: Sequence[str]) -> None:
    for values, valid, what in (
        (backends, backend_names(), "backend"),
        (precisions, list(PRECISIONS), "precision"),
        (devices, list(DEVICES), "device"),
    ):
        if not values:
            raise ValueError(f"no {what} given; valid: {', '.join(valid)}")
        for v in values:
            if v not in valid:
                raise ValueError(f"unknown {what} {v!r}; valid: {', '.join(valid)}")


def _transient_case(
    name: str,
    model: torch.nn.Module | Callable[[], torch.nn.Module],
    inputs: Any,
    *,
    batch: int | None,
    policy: str,
    tolerances: Mapping[torch.dtype, Tolerance] | None,
    known_failures: Iterable[KnownFailure],
) -> Case:
    if inputs is None:
        raise ValueError("assert_parity(model, inputs): inputs are required with a module")
    if policy not in ("model", "elementwise"):
        raise ValueError(f"unknown policy {policy!r}; valid: model, elementwise")
    fixed = pipeline_inputs(inputs)
    if isinstance(model, torch.nn.Module):
        # a copy on the CPU: the reference runs there, each cell moves its own copy
        factory: Callable[[], torch.nn.Module] = lambda: copy.deepcopy(model).cpu()  # noqa: E731
    elif callable(model):
        factory = model
    else:
        raise TypeError(
            f"model must be a torch.nn.Module, a factory or 'pkg.module:case', not "
            f"{type(model).__name__}"
        )
    first = next((x for x in fixed if isinstance(x, torch.Tensor) and x.dim()), None)
    return Case(
        name=name,
        kind="model" if policy == "model" else "op",
        make_module=factory,
        make_inputs=lambda gen, n: pipeline_inputs(fixed),
        batch=batch or (int(first.shape[0]) if first is not None else 1),
        tolerances=dict(tolerances or {}),
        known_failures=tuple(known_failures),
        reinit_weights=False,  # the user's weights are the point of the check
        description=f"assert_parity({type(model).__name__})",
        source=__name__,
    )


def _registered_case(spec: str, inputs: Any) -> tuple[Case, list[PluginSpec]]:
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"malformed case {spec!r}; expected 'pkg.module:case_name'")
    if inputs is not None:
        raise ValueError("a registered case brings its own inputs; pass inputs=None")
    plugins: list[PluginSpec] = [("module", module)]
    load_all(plugins)
    if name not in CASES:
        raise ValueError(f"{module} registers no case {name!r}")
    return CASES[name], plugins


@contextmanager
def _registered(case: Case, extra_marks: tuple[KnownFailure, ...]):
    """``case`` in the registry for the check's duration (with the test's
    known-failure marks), the registry as it was afterwards."""
    before = CASES.get(case.name)
    if before is not None and before is not case:
        raise ValueError(f"case name {case.name!r} is taken by a registered case; pass name=")
    CASES[case.name] = replace(case, known_failures=case.known_failures + extra_marks)
    try:
        yield
    finally:
        if before is None:
            CASES.pop(case.name, None)
        else:
            CASES[case.name] = before


_ENV: dict[str, Any] = {}


def _environment() -> dict[str, Any]:
    if not _ENV:
        _ENV.update(environment.collect(), run_id="assert_parity")
    return _ENV


def assert_parity(
    model: torch.nn.Module | Callable[[], torch.nn.Module] | str,
    inputs: Any = None,
    *,
    backends: Sequence[str] = ("eager",),
    precisions: Sequence[str] = ("fp32",),
    devices: Sequence[str] = ("cpu",),
    name: str | None = None,
    tolerances: Mapping[torch.dtype, Tolerance] | None = None,
    known_failures: Iterable[KnownFailure] = (),
    policy: str = "model",
    batch: int | None = None,
    min_time: float = 0.05,
    isolate: bool = False,
    timeout: float = 300.0,
    seed: int = 0,
    backend_options: Mapping[str, Mapping[str, Any]] | None = None,
    cache_dir: Path | None = None,
) -> ParityResult:
    """Run ``model`` on ``inputs`` through every (backend, precision, device)
    cell against the fp64 CPU eager reference; raise ``ParityError`` with the
    drift table when any cell fails, errors, crashes or times out.

    ``model``: an ``nn.Module`` (copied, never modified; its weights are kept),
    a zero-argument factory, or ``"pkg.module:case_name"`` (a registered case;
    the only form ``isolate=True`` accepts). ``policy``: ``"model"`` (relative
    L2 per output leaf) or ``"elementwise"`` (assert_close's rule). Global RNG
    state is restored afterwards. Returns the rows."""
    __tracebackhide__ = True  # pytest shows the user's call, not these frames
    _check_axes(backends, precisions, devices)
    ctx = CONTEXT.get()
    marks = ctx.known_failures if ctx else ()
    if isinstance(model, str):
        case, plugins = _registered_case(model, inputs)
    else:
        if isolate:
            raise ValueError(
                "isolate=True needs a case the worker can rebuild: pass "
                "'pkg.module:case_name' (a case registered by an importable module)"
            )
        case_name = name or (ctx.next_name() if ctx else type(model).__name__)
        case = _transient_case(
            case_name,
            model,
            inputs,
            batch=batch,
            policy=policy,
            tolerances=tolerances,
            known_failures=known_failures,
        )
        plugins = []
    settings = RunSettings(
        seed=seed,
        timing=TimingConfig(min_time=min_time),
        cache_dir=cache_dir,
        backend_options={k: dict(v) for k, v in (backend_options or {}).items()},
        output_dir=ctx.output_dir if ctx else None,
    )
    if isinstance(model, str):  # a registered case's own marks stay; these add to them
        marks = tuple(known_failures) + marks
    cells = expand([case], list(devices), list(precisions), list(backends), suite="assert_parity")
    with _registered(case, marks), torch.random.fork_rng(devices=[]):
        executor = (
            IsolatedExecutor(plugins, settings, timeout)
            if isolate
            else InProcessExecutor(plugins, settings)
        )
        try:
            rows = _run_cells(cells, executor, ctx)
        finally:
            executor.close()
    result = ParityResult(case.name, rows)
    if ctx and ctx.record:
        ctx.record(result)
    _verdict(result)
    return result


def _run_cells(
    cells: list, executor: InProcessExecutor | IsolatedExecutor, ctx: CheckContext | None
) -> list[Row]:
    """Each cell through the executor, then ``finish_row`` (known failures,
    environment fields), as the runner does; the test's id in ``test``."""
    env = ctx.env if ctx and ctx.env else _environment()
    rows: list[Row] = []
    for cell in cells:
        row = finish_row(cell, executor.run(cell), env)
        if ctx and ctx.test:
            row["test"] = ctx.test
        rows.append(row)
    return rows


def _verdict(result: ParityResult) -> None:
    __tracebackhide__ = True
    if result.bad:
        raise ParityError(
            f"parity check {result.case!r}: {len(result.bad)} of {len(result.rows)} "
            f"cells bad\n{result.table()}",
            result,
        )
    if all(r.get("status") == Status.SKIP.value for r in result.rows):
        reasons = sorted({str(r.get("reason")) for r in result.rows})
        raise unittest.SkipTest(
            f"parity check {result.case!r}: no cell runs here: {'; '.join(reasons)}"
        )
