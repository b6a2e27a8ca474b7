"""The run: cells executed one after another, each row streamed to disk as it
completes, with the environment recorded beside them; resumable."""

from __future__ import annotations

import datetime as _dt
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import environment
from harness.engine.cases import PluginSpec
from harness.engine.matrix import Cell
from harness.engine.pipeline import RunSettings, apply_known_failures, error_fields, precheck
from harness.engine.worker import InProcessExecutor, IsolatedExecutor
from harness.row import Row
from harness.rundir import RunDir
from harness.status import Status


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


def new_run_id() -> str:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{environment.short_host()}"


ProgressFn = Callable[[int, int, Cell, float], None]


def finish_row(cell: Cell, row: dict[str, Any], env: dict[str, Any]) -> Row:
    """The row in contract order: the cell, the verdict, the measurements, the environment."""
    row = apply_known_failures(cell, row)
    out: dict[str, Any] = {**cell.as_dict(), "mode": row.pop("mode", cell.mode),
                           "status": str(row.pop("status")), "reason": row.pop("reason", "")}
    out.update(row)
    out.update(environment.row_fields(env))
    out["cell_id"] = cell.id
    out["run_id"] = env.get("run_id")
    out["finished_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return out  # type: ignore[return-value]


def execute_plan(plan: RunPlan, progress: ProgressFn | None = None) -> list[Row]:
    """Run the plan's cells that the run directory does not hold yet and
    return all rows of the run directory."""
    run_dir = RunDir(plan.run_dir).create()
    current = environment.collect()
    env = run_dir.read_env() or current
    env.setdefault("run_id", plan.run_dir.name)
    run_dir.write_env(env)
    env = {**current, "run_id": env["run_id"]}  # rows say where they ran (a resume may be elsewhere)
    run_dir.write_selection(plan.selection)

    done = run_dir.done_cell_ids()
    todo = [c for c in plan.cells if c.id not in done]
    executor: InProcessExecutor | IsolatedExecutor | None = None
    started = time.perf_counter()
    with run_dir.results_writer() as writer:
        try:
            for i, cell in enumerate(todo):
                if progress:
                    progress(i, len(todo), cell, time.perf_counter() - started)
                try:
                    reason = precheck(cell)
                except Exception as exc:
                    row: dict[str, Any] = error_fields(exc, "precheck")
                else:
                    if reason:
                        row = {"status": Status.SKIP.value, "reason": reason}
                    else:
                        if executor is None:
                            executor = (
                                IsolatedExecutor(plan.plugins, plan.settings, plan.timeout)
                                if plan.isolate
                                else InProcessExecutor(plan.plugins, plan.settings)
                            )
                        row = executor.run(cell)
                writer.append(finish_row(cell, row, env))
            if progress and todo:
                progress(len(todo), len(todo), todo[-1], time.perf_counter() - started)
        finally:
            if executor is not None:
                executor.close()
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
        stream.write(
            f"\r[{bar}] {done}/{total} {elapsed:5.0f}s eta {eta:4.0f}s  {label[:60]:<60}"
        )
        if done == total:
            stream.write("\n")
        stream.flush()

    return show
