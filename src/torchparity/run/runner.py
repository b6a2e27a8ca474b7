"""The run: cells grouped (case, device, precision), each group's verdict and
timing rounds scheduled round-robin (``rounds``) on one worker at a time, each
row streamed to disk as its last round completes, with the environment
recorded beside them; resumable."""

from __future__ import annotations

import datetime as _dt
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchparity._core import environment
from torchparity._core.errors import error_fields
from torchparity._core.row import Row
from torchparity._core.rundir import RunDir
from torchparity._core.status import MEASURED_STATUSES, Status
from torchparity.axes.matrix import Cell
from torchparity.cases.case import PluginSpec
from torchparity.cell.execute import finish_row
from torchparity.cell.pipeline import RunSettings, precheck
from torchparity.run import instructions
from torchparity.run.warm_cells import RoundTask, VerdictTask
from torchparity.run.worker import InProcessExecutor, IsolatedExecutor
from torchparity.timing.rounds import Group, RoundsConfig, Schedule, group_cells


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


Executor = InProcessExecutor | IsolatedExecutor


def _died(answer: Any) -> bool:
    return isinstance(answer, dict) and answer.get("status") in ("crash", "timeout")


def ask(
    executor: Executor, make: Callable[[Group], Any], cells: Group, timeout: float
) -> dict[str, Any]:
    """A group task's answer per cell. When the worker crashes or hangs on
    the group, each cell is asked alone, so the fault costs one cell's row."""
    answer = executor.run(make(cells), timeout * len(cells))
    if not _died(answer):
        return answer
    if len(cells) == 1:
        return {cells[0].id: answer}
    out: dict[str, Any] = {}
    for cell in cells:
        out.update(ask(executor, make, (cell,), timeout))
    return out


def _verdicts(executor: Executor, plan: RunPlan, group: Group) -> dict[str, dict[str, Any]]:
    rounds = max(1, plan.rounds.rounds)
    answers = ask(executor, lambda g: VerdictTask(g, rounds), group, plan.timeout)
    return {cid: ({"row": a, "round": None} if _died(a) else a) for cid, a in answers.items()}


def _counted(
    counter: instructions.Counter | None, cell: Cell, row: dict[str, Any]
) -> dict[str, Any]:
    """``--count-instructions``: a measured cell's instructions per call,
    counted after its timing by the run's one counting process."""
    if counter is None or row.get("status") not in MEASURED_STATUSES:
        return row
    return {**row, **counter.count(cell)}


def _counter(plan: RunPlan) -> instructions.Counter | None:
    if not plan.count_instructions:
        return None
    spec = instructions.spec_for(plan.settings, plan.plugins)
    return instructions.Counter(spec, max(plan.timeout, 600.0))


def _executor(plan: RunPlan) -> Executor:
    if plan.isolate:
        return IsolatedExecutor(plan.plugins, plan.settings, plan.timeout)
    return InProcessExecutor(plan.plugins, plan.settings)


def execute_plan(plan: RunPlan, progress: ProgressFn | None = None) -> list[Row]:
    """Run the plan's cells that the run directory does not hold yet and
    return all rows of the run directory."""
    run_dir = RunDir(plan.run_dir).create()
    current = environment.collect()
    env = run_dir.read_env() or current
    env.setdefault("run_id", plan.run_dir.name)
    if plan.selection.get("absent_devices"):  # `--device present`: one line in the report, no rows
        env["absent_devices"] = plan.selection["absent_devices"]
    run_dir.write_env(env)
    env = {
        **current,
        "run_id": env["run_id"],
    }  # rows say where they ran (a resume may be elsewhere)
    run_dir.write_selection(plan.selection)

    done = run_dir.done_cell_ids()
    todo = [c for c in plan.cells if c.id not in done]
    started = time.perf_counter()
    with run_dir.results_writer() as writer:
        runnable = []
        for cell in todo:  # cells that cannot run here are rows at once, no worker needed
            try:
                reason = precheck(cell)
            except Exception as exc:
                writer.append(finish_row(cell, error_fields(exc, "precheck"), env))
                continue
            if reason:
                writer.append(
                    finish_row(cell, {"status": Status.SKIP.value, "reason": reason}, env)
                )
            else:
                runnable.append(cell)
        schedule = Schedule(group_cells(runnable), plan.rounds)
        if runnable:
            executor, counter = _executor(plan), _counter(plan)
            try:
                rounds = max(1, plan.rounds.rounds)
                schedule.run(
                    lambda g: _verdicts(executor, plan, g),
                    lambda g, i: ask(executor, lambda c: RoundTask(c, i, rounds), g, plan.timeout),
                    lambda cell, row: writer.append(
                        finish_row(cell, _counted(counter, cell, row), env)
                    ),
                    (lambda i, n, cell: progress(i, n, cell, time.perf_counter() - started))
                    if progress
                    else None,
                )
            finally:
                executor.close()
                if counter is not None:
                    counter.close()
        if progress and todo:  # in tasks: each group's verdict and timing rounds
            steps = schedule.total_steps or 1
            progress(steps, steps, todo[-1], time.perf_counter() - started)
    return run_dir.rows()


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
