"""The worker side of timing rounds: a group's cells prepared once and kept
warm, timed block by block in turn with the calibration workload.

A worker receives tasks. ``VerdictTask``: run the verdict stages of each cell
of a group (precheck .. eager, see ``pipeline``), keep the prepared callables,
and time round 1. ``RoundTask``: time one more round; a cell this worker does
not hold (a new worker after a crash, or one evicted to bound memory) is
prepared again from the artifact cache first, its verdict discarded.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from torchparity._core.clock import synced_time_block
from torchparity.axes.matrix import Cell
from torchparity.cell.context import RunSettings
from torchparity.cell.execute import execute_cell, own_path
from torchparity.cell.pipeline import (
    VERDICT_STAGES,
    CellState,
    record_timing,
    self_timed,
    timed_call,
)
from torchparity.cell.stages import run_stages
from torchparity.diagnose.after import after_cell
from torchparity.timing.calibration import BLOCK_SCALE, calibration_workload
from torchparity.timing.rounds import DEFAULT_ROUNDS, RoundResult, round_timing
from torchparity.timing.timer import block_size, measure_interleaved, warm_up

MAX_KEPT = 64  # prepared cells a worker keeps warm; older ones are prepared again when needed


@dataclass(frozen=True)
class VerdictTask:
    """Verdict and round 1 of a group's cells (``rounds``: how many the run plans)."""

    cells: tuple[Cell, ...]
    rounds: int


@dataclass(frozen=True)
class RoundTask:
    """One more timing round (``index`` counts from 0) of a group's cells."""

    cells: tuple[Cell, ...]
    index: int
    rounds: int


class WarmCells:
    """Prepared cells of one worker, least recently used first."""

    def __init__(self, settings: RunSettings, keep: int = MAX_KEPT) -> None:
        self.settings = settings
        self.keep = keep
        self.states: OrderedDict[str, CellState] = OrderedDict()
        self.numbers: dict[str, int] = {}  # calls per block, fixed in round 1
        self._calibration = calibration_workload()
        # Warm the calibration and fix its block size now: worker start-up is not any cell's time.
        config = round_timing(settings.timing, DEFAULT_ROUNDS)
        warm_up(self._calibration, synced_time_block, config)
        target = config.min_time / config.min_repeats * BLOCK_SCALE
        self.numbers[""] = block_size(self._calibration, synced_time_block, target)[0]

    def _hold(self, state: CellState) -> None:
        self.states[state.cell.id] = state
        self.states.move_to_end(state.cell.id)
        while len(self.states) > self.keep:
            evicted, _ = self.states.popitem(last=False)
            self.numbers.pop(evicted, None)

    def _time(
        self, states: list[CellState], rounds: int, index: int
    ) -> dict[str, RoundResult | str]:
        if not states:
            return {}
        config = round_timing(self.settings.timing, rounds)
        out: dict[str, RoundResult | str] = {}
        for state in states:
            # A backend that times itself (the C++ runner, in its own process) gets its
            # whole window in round 1 and is finalized then (which may close its runner);
            # the schedule asks no further round of it.
            own = self_timed(state, self.settings.timing) if index == 0 else None
            if own is not None:
                out[state.cell.id] = RoundResult(
                    index, own.samples_s, own.number, own.warmup_calls, self_timed=True
                )
        states = [s for s in states if s.cell.id not in out]
        if not states:
            return out
        fns = [timed_call(s) for s in states] + [self._calibration]
        numbers = [self.numbers.get(s.cell.id) for s in states] + [self.numbers.get("")]
        # Cells of a group share a device: its timer drains it (the calibration is CPU work).
        timer = states[0].ctx.device.time_block
        scale = [1.0] * len(states) + [BLOCK_SCALE]
        found = measure_interleaved(fns, timer, config, numbers, scale)
        calibration = found[-1]
        self.numbers[""] = calibration.number
        for state, m in zip(states, found, strict=False):
            self.numbers[state.cell.id] = m.number
            out[state.cell.id] = RoundResult(
                index, m.samples_s, m.number, m.warmup_calls, calibration.samples_s
            )
        return out

    def verdict(self, task: VerdictTask) -> dict[str, dict[str, Any]]:
        """Each cell's row (verdict, no timing columns) and round 1."""
        states, every, rows = [], [], {}
        own_rows: dict[str, dict[str, Any]] = {}
        for cell in task.cells:
            if own_path(cell):  # train and multisample cells: their own stages, one window
                own_rows[cell.id] = {
                    "row": execute_cell(cell, self.settings, after_cell),
                    "round": None,
                }
                continue
            state = CellState(cell, self.settings)
            if run_stages(state, VERDICT_STAGES):
                states.append(state)
                self._hold(state)
            every.append(state)
            rows[cell.id] = state.row
        first = self._time(states, task.rounds, 0)
        for state in states:
            record_timing(state, {})  # peak memory, threads, backend notes after round 1
        for state in every:
            after_cell(state)  # localization, as execute_cell does
        return {
            **{cid: {"row": row, "round": first.get(cid)} for cid, row in rows.items()},
            **own_rows,
        }

    def time_round(self, task: RoundTask) -> dict[str, RoundResult | str]:
        """Round ``task.index`` of the group; a cell that cannot be prepared
        again gets the reason instead of a result."""
        states: list[CellState] = []
        lost: dict[str, RoundResult | str] = {}
        for cell in task.cells:
            state = self.states.get(cell.id)
            if state is None:
                state = CellState(cell, self.settings)
                if not run_stages(state, VERDICT_STAGES):
                    lost[cell.id] = (
                        f"prepared again for round {task.index + 1}: {state.row.get('reason')}"
                    )
                    continue
                state.memory.stop()  # peak memory was recorded in round 1
                self._hold(state)
            states.append(state)
        return {**self._time(states, task.rounds, task.index), **lost}

    def handle(self, task: Any) -> Any:
        """The answer to one task: a Cell (the whole pipeline, one timing
        window), a VerdictTask or a RoundTask."""
        if isinstance(task, Cell):
            return execute_cell(task, self.settings, after_cell)
        if isinstance(task, VerdictTask):
            return self.verdict(task)
        if isinstance(task, RoundTask):
            return self.time_round(task)
        raise TypeError(f"unknown task {type(task).__name__}")
