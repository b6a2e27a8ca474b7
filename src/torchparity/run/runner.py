"""The run: cells grouped (case, device, precision), each group's verdict and
timing rounds scheduled round-robin (``rounds``) on one worker at a time. Each
cell's row is on disk as soon as its verdict is known (with partial timing when
rounds are to come), each finished round too (rounds.jsonl), and the row again
when its last round is done; the environment is recorded beside them. An
interrupted run keeps all of it and ``--resume`` measures only what is missing."""

from __future__ import annotations

import contextlib
import datetime as _dt
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchparity._core import environment
from torchparity._core import row as row_mod
from torchparity._core.errors import error_fields
from torchparity._core.rundir import RunDir
from torchparity._core.status import MEASURED_STATUSES, Status
from torchparity.axes.matrix import Cell
from torchparity.cases.case import PluginSpec
from torchparity.cell.context import RunSettings, precheck
from torchparity.cell.execute import finish_row
from torchparity.run import instructions
from torchparity.run.warm_cells import RoundTask, VerdictTask
from torchparity.run.worker import InProcessExecutor, IsolatedExecutor
from torchparity.timing.rounds import (
    Group,
    Resumed,
    RoundResult,
    RoundsConfig,
    Schedule,
    Sinks,
    group_cells,
    verdict_part,
)


@dataclass
class RunPlan:
    """What a run directory is asked to hold: its cells and how to execute them."""

    run_dir: Path
    cells: list[Cell]
    settings: RunSettings
    plugins: list[PluginSpec] = field(default_factory=list)
    isolate: bool = True
    timeout: float = 300.0
    selection: dict[str, Any] = field(default_factory=dict)  # the CLI options, for --resume
    rounds: RoundsConfig = field(default_factory=RoundsConfig)
    count_instructions: bool = False  # CPU cells: user-space instructions per call (callgrind)


def new_run_id() -> str:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{environment.short_host()}"


ProgressFn = Callable[[int, int, Cell, float], None]


@dataclass
class Phases:
    """Where a run's wall time went, as it measured it: the backends' prepare
    (export, compile, session creation: the rows' ``prepare_s``), the rest of
    the verdict tasks (reference, outputs, comparison, localization), the
    timing rounds, and what the caller adds (rendering)."""

    prepare_s: float = 0.0
    verdict_s: float = 0.0  # verdict tasks' wall time, prepare and round 1 included
    round1_s: float = 0.0  # the timed calls of round 1, which verdict tasks measure
    timing_s: float = 0.0
    rendering_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def add_row(self, row: Mapping[str, Any]) -> None:
        value = row.get("prepare_s")
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            self.prepare_s += float(value)

    def add_round(self, result: RoundResult) -> None:
        if result.index == 0:
            self.round1_s += sum(result.samples_s) * result.number

    def timed(self, attr: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn``, its wall time added to ``attr``."""

        def run(*args: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args)
            finally:
                setattr(self, attr, getattr(self, attr) + time.perf_counter() - began)

        return run

    def line(self) -> str:
        """``phases: prepare/compile 12.0 s, verdicts 3.1 s, ...`` over the wall time so far."""
        total = time.perf_counter() - self.started
        prepare = min(self.prepare_s, self.verdict_s) if self.verdict_s else self.prepare_s
        round1 = min(self.round1_s, self.verdict_s - prepare) if self.verdict_s else 0.0
        verdicts = max(self.verdict_s - prepare - round1, 0.0)
        timing = self.timing_s + round1
        known = prepare + verdicts + timing + self.rendering_s
        parts = [
            ("prepare/compile", prepare),
            ("verdicts", verdicts),
            ("timing", timing),
            ("rendering", self.rendering_s),
            ("other", max(total - known, 0.0)),
        ]
        shown = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in parts)
        return f"phases: {shown} (wall {total:.1f} s)"


Executor = InProcessExecutor | IsolatedExecutor


def _died(answer: Any) -> bool:
    return isinstance(answer, dict) and answer.get("status") in (Status.CRASH, Status.TIMEOUT)


Settle = Callable[[dict[str, Any], Group], dict[str, Any] | None]


def ask(
    executor: Executor,
    make: Callable[[Group], Any],
    cells: Group,
    timeout: float,
    settle: Settle | None = None,
) -> dict[str, Any]:
    """A group task's answer per cell. When the worker crashes or hangs on
    the group, ``settle`` may answer for every cell at once (the case's own
    code died); else each cell is asked alone, so the fault costs one cell's row."""
    answer = executor.run(make(cells), timeout * len(cells))
    if not _died(answer):
        return answer
    settled = settle(answer, cells) if settle is not None else None
    if settled is not None:
        return settled
    if len(cells) == 1:
        return {cells[0].id: answer}
    out: dict[str, Any] = {}
    for cell in cells:
        out.update(ask(executor, make, (cell,), timeout, settle))
    return out


# What died, in the words of a row, for a worker that crashed or hung in a stage
# that runs before any backend is involved.
_CASE_CODE = {
    "build": "building the case (its module or its inputs)",
    "reference": "the case's own forward in eager at fp64 (the reference)",
}
CaseKey = tuple[str, int, str]  # what a case's build and reference depend on


def _case_key(cell: Cell) -> CaseKey:
    return (cell.case, cell.sweep_batch, cell.mode)


class CaseDeaths:
    """Cases whose own code crashed or hung the worker while it built them or
    computed their reference: that row, blamed on the case, is every cell's of
    the case (each backend's, each device's and precision's), decided once."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.rows: dict[CaseKey, dict[str, Any]] = {}

    def known(self, group: Group) -> dict[str, Any] | None:
        row = self.rows.get(_case_key(group[0]))
        return None if row is None else {c.id: dict(row) for c in group}

    def settle(self, answer: dict[str, Any], cells: Group) -> dict[str, Any] | None:
        """Every cell's row when the worker died in a case stage of one of ``cells``."""
        where = self.executor.died_in()
        if where is None or where[1] not in _CASE_CODE:
            return None
        dead = next((c for c in cells if c.id == where[0]), None)
        if dead is None:
            return None
        what = "crashed" if answer.get("status") == Status.CRASH else "did not finish"
        row = {
            **answer,
            "reason": f"{where[1]}: {_CASE_CODE[where[1]]} {what}: {answer.get('reason', '')}",
            "error_stage": where[1],
        }
        self.rows[_case_key(dead)] = row
        return self.known(cells)


def _verdicts(
    executor: Executor, plan: RunPlan, group: Group, deaths: CaseDeaths
) -> dict[str, dict[str, Any]]:
    rounds = max(1, plan.rounds.rounds)
    answers = deaths.known(group) or ask(
        executor, lambda g: VerdictTask(g, rounds), group, plan.timeout, deaths.settle
    )
    return {cid: ({"row": a, "round": None} if _died(a) else a) for cid, a in answers.items()}


def _counted(
    counter: instructions.Counter | None, cell: Cell, row: dict[str, Any]
) -> dict[str, Any]:
    """``--count-instructions``: a measured cell's instructions per call,
    counted after its timing by the run's one counting process."""
    if counter is None or row.get("status") not in MEASURED_STATUSES:
        return row
    return {**row, **counter.count(cell, row)}


def _counter(plan: RunPlan) -> instructions.Counter | None:
    if not plan.count_instructions:
        return None
    spec = instructions.spec_for(plan.settings, plan.plugins)
    return instructions.Counter(spec, max(plan.timeout, 600.0))


def _executor(plan: RunPlan) -> Executor:
    if plan.isolate:
        return IsolatedExecutor(plan.plugins, plan.settings, plan.timeout)
    return InProcessExecutor(plan.plugins, plan.settings)


class RunInterrupted(KeyboardInterrupt):
    """The run stopped on SIGINT or SIGTERM (SIGHUP, SIGBREAK) after keeping
    what it had: ``where`` names the step and what is on disk."""

    def __init__(self, signum: int, where: str = "") -> None:
        super().__init__(where)
        self.signum = signum
        self.where = where

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGBREAK") if hasattr(signal, name)
)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGHUP, SIGBREAK) raise ``RunInterrupted`` as SIGINT raises
    KeyboardInterrupt, so the run's clean-up (the worker killed, the rows kept)
    runs for them too. Only the main thread can hold signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise RunInterrupted(signum)

    previous = {s: signal.signal(s, stop) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """A second Ctrl-C or SIGTERM while the rows are being kept waits for it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = (signal.SIGINT, *_STOP_SIGNALS)
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _prepare(plan: RunPlan) -> tuple[RunDir, dict[str, Any]]:
    """The run directory with env.json and run.json; the env fields rows carry."""
    run_dir = RunDir(plan.run_dir).create()
    current = environment.collect()
    env = run_dir.read_env() or current
    env.setdefault("run_id", plan.run_dir.name)
    if plan.selection.get("absent_devices"):  # `--device present`: one line in the report, no rows
        env["absent_devices"] = plan.selection["absent_devices"]
    run_dir.write_env(env)
    run_dir.write_selection(plan.selection)
    # Rows say where they ran (a resume may run elsewhere) and with which seed.
    return run_dir, {**current, "run_id": env["run_id"], "seed": plan.settings.seed}


def resumed_cells(run_dir: RunDir, cells: list[Cell]) -> dict[str, Resumed]:
    """Cells of ``cells`` whose verdict row an interrupted run wrote with partial
    timing, with the rounds rounds.jsonl holds for them (none: measured again)."""
    partial = run_dir.partial_rows()
    stored = run_dir.read_rounds() if partial else {}
    out: dict[str, Resumed] = {}
    for cell in cells:
        row = partial.get(cell.id)
        rounds = [RoundResult.from_record(r) for r in stored.get(cell.id, {}).values()]
        kept = [r for r in rounds if r is not None]
        if row is not None and kept:
            out[cell.id] = Resumed(verdict_part(dict(row)), kept, int(row.get("rounds") or 0))
    return out


def _prechecked(
    todo: list[Cell],
    resumed: dict[str, Resumed],
    keep: Callable[[Mapping[str, Any]], None],
    env: dict[str, Any],
) -> list[Cell]:
    """The cells to run; those that cannot run here are rows at once, no worker needed."""
    runnable = []
    for cell in todo:
        if cell.id in resumed:  # its verdict is on disk
            runnable.append(cell)
            continue
        try:
            reason = precheck(cell)
        except Exception as exc:  # noqa: BLE001 - a precheck that raises is the cell's error row, and the run goes on
            keep(finish_row(cell, error_fields(exc, "precheck"), env))
            continue
        if reason:
            keep(finish_row(cell, {"status": Status.SKIP.value, "reason": reason}, env))
        else:
            runnable.append(cell)
    return runnable


def _round_kept(out: Any, cell: Cell, result: RoundResult, phases: Phases | None) -> None:
    out.append(result.record(cell.id))
    if phases is not None:
        phases.add_round(result)


def execute_plan(
    plan: RunPlan,
    progress: ProgressFn | None = None,
    on_row: Callable[[Mapping[str, Any]], None] | None = None,
    phases: Phases | None = None,
) -> list[dict[str, Any]]:
    """Run the plan's cells that the run directory does not hold yet (and the
    missing rounds of cells an interrupted run left with partial timing);
    return all rows of the run directory. ``on_row`` sees each cell's final
    row as it is kept; ``phases`` gets the time of each part. On SIGINT or
    SIGTERM the worker is stopped, every verdict and finished round kept, and
    ``RunInterrupted`` raised."""
    run_dir, env = _prepare(plan)
    done = run_dir.done_cell_ids()
    todo = [c for c in plan.cells if c.id not in done]
    resumed = resumed_cells(run_dir, todo)
    counter = _counter(plan)  # starts its process at the first counted cell
    started = time.perf_counter()
    with (
        stop_signals_interrupt(),
        run_dir.results_writer() as writer,
        run_dir.rounds_writer() as rounds_out,
    ):

        def keep(row: Mapping[str, Any]) -> None:
            writer.append(row)
            if phases is not None:
                phases.add_row(row)
            if on_row is not None:
                on_row(row)

        runnable = _prechecked(todo, resumed, keep, env)
        schedule = Schedule(group_cells(runnable), plan.rounds, resumed=resumed)
        sinks = Sinks(
            emit=lambda cell, row: keep(finish_row(cell, _counted(counter, cell, row), env)),
            partial=lambda cell, row: writer.append(finish_row(cell, row, env)),
            round_done=lambda cell, result: _round_kept(rounds_out, cell, result, phases),
            step=(lambda i, n, cell: progress(i, n, cell, time.perf_counter() - started))
            if progress
            else None,
        )
        if runnable:
            try:
                _run_schedule(plan, schedule, sinks, run_dir, phases or Phases())
            finally:
                if counter is not None:
                    counter.close()  # its valgrind process is in a session of its own
        if progress and todo:  # in tasks: each group's verdict and timing rounds
            steps = schedule.total_steps or 1
            progress(steps, steps, todo[-1], time.perf_counter() - started)
    run_dir.compact_results()
    return run_dir.rows()


def _run_schedule(
    plan: RunPlan, schedule: Schedule, sinks: Sinks, run_dir: RunDir, phases: Phases
) -> None:
    executor = _executor(plan)
    rounds = max(1, plan.rounds.rounds)
    deaths = CaseDeaths(executor)
    try:
        schedule.run(
            phases.timed("verdict_s", lambda g: _verdicts(executor, plan, g, deaths)),
            phases.timed(
                "timing_s",
                lambda g, i: ask(executor, lambda c: RoundTask(c, i, rounds), g, plan.timeout),
            ),
            sinks,
        )
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM by stop_signals_interrupt
        with signals_held():
            executor.close(kill=True)  # first: a worker must not outlive the run
            assert sinks.partial is not None
            schedule.flush_partial(sinks.partial)
        signum = exc.signum if isinstance(exc, RunInterrupted) else signal.SIGINT
        raise RunInterrupted(signum, _stopped_at(schedule, run_dir, plan)) from None
    finally:
        executor.close()


def _stopped_at(schedule: Schedule, run_dir: RunDir, plan: RunPlan) -> str:
    """Where the run stopped and what it kept, in one line."""
    wanted = {c.id for c in plan.cells}
    rows = [r for r in run_dir.rows() if r.get("cell_id") in wanted]
    partial = sum(1 for r in rows if row_mod.timing_partial(r))
    finished = sum(len(v) for k, v in run_dir.read_rounds().items() if k in wanted)
    return (
        f"stopped during {schedule.where}; kept {len(rows)} of {len(plan.cells)} cells' rows "
        f"({partial} with partial timing) and {finished} finished timing rounds"
    )


def terminal_progress(stream: Any = None) -> ProgressFn:
    """A one-line progress bar with ETA and the current cell (for terminals)."""
    stream = stream or sys.stderr

    def show(done: int, total: int, cell: Cell, elapsed: float) -> None:
        width = 24
        frac = done / total if total else 1.0
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        eta = elapsed / done * (total - done) if done else 0.0
        label = "done" if done == total else cell.id
        stream.write(f"\r[{bar}] {done}/{total} {elapsed:5.0f}s eta {eta:4.0f}s  {label[:60]:<60}")
        if done == total:
            stream.write("\n")
        stream.flush()

    return show
