"""Measurement in interleaved rounds spread over the run.

A shared machine has slow minutes. Timing each cell in one short window lets
a slow minute land on a few whole cells; here every cell is timed in several
rounds, and the runner visits the cells round-robin (round 1 over every group,
then round 2 over every group, ...), so a slow minute touches every cell a
little. A *group* is the cells of one case, device, precision (and mode):
eager and each backend, timed block by block in turn in one worker, which
gives the paired speedup (``pairing``) for free.

This module is the pure part: which cells form a group, whether the time
budget allows another round, and a cell's statistics over its rounds. The
worker side (prepared callables kept warm) is ``warm_cells``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from torchparity._core import stats
from torchparity.axes.matrix import Cell
from torchparity.timing.pairing import pair_blocks, paired_speedup
from torchparity.timing.timer import TimingConfig

DEFAULT_ROUNDS = 3
DEFAULT_TIME_BUDGET = 300.0  # seconds for the whole run; a later round starts only within it
MIN_REPEATS_PER_ROUND = 5  # more, shorter blocks: one preemption spoils less of a round


@dataclass(frozen=True)
class RoundsConfig:
    """``rounds``: timing rounds per cell (1 = one window, as before);
    ``time_budget``: seconds the run may take before no further round starts
    (None: no limit). The first round always runs: every cell gets a time."""

    rounds: int = DEFAULT_ROUNDS
    time_budget: float | None = DEFAULT_TIME_BUDGET


def round_timing(config: TimingConfig, rounds: int) -> TimingConfig:
    """One round's share of the per-cell timing: ``min_time``, ``max_time``
    and the warm-up cap divided over the rounds, at least
    ``MIN_REPEATS_PER_ROUND`` blocks each."""
    if rounds <= 1:
        return config
    repeats = max(MIN_REPEATS_PER_ROUND, math.ceil(config.min_repeats / rounds))
    # Warm-up too: a cell is warm after its first round; a loaded machine must
    # not turn N rounds of warm-up into N times the cell's time.
    return replace(
        config,
        min_time=config.min_time / rounds,
        min_repeats=repeats,
        max_time=config.max_time / rounds,
        max_warmup_time=max(config.warmup_time, config.max_warmup_time / rounds),
    )


def group_key(cell: Cell) -> tuple[str, ...]:
    return (cell.case, cell.suite, cell.device, cell.precision, cell.mode)


def group_cells(cells: Iterable[Cell]) -> list[tuple[Cell, ...]]:
    """Cells of the same case, device, precision and mode, in first-seen order,
    eager first within a group (it is every other cell's pair)."""
    groups: dict[tuple[str, ...], list[Cell]] = {}
    for cell in cells:
        groups.setdefault(group_key(cell), []).append(cell)
    return [tuple(sorted(g, key=lambda c: c.backend != "eager")) for g in groups.values()]


def budget_allows(elapsed: float, per_round: float, budget: float | None) -> bool:
    """Whether another round, expected to take ``per_round`` seconds, ends
    within the budget when ``elapsed`` seconds have passed."""
    return budget is None or elapsed + per_round <= budget


@dataclass
class RoundResult:
    """One cell's timing in round ``index`` (what a worker returns)."""

    index: int
    samples_s: list[float]
    number: int
    warmup_calls: int = 0
    # The calibration workload's samples from the same window (its median is derived).
    calibration_samples_s: list[float] = field(default_factory=list)
    # The cell's backend timed itself (the C++ runner, in its own process): its
    # whole window was round 1, and the schedule times it no more.
    self_timed: bool = False


@dataclass
class CellRounds:
    """A cell's rounds so far and the statistics over them."""

    rounds: list[RoundResult] = field(default_factory=list)

    def add(self, result: RoundResult) -> None:
        self.rounds.append(result)

    @property
    def self_timed(self) -> bool:
        return any(r.self_timed for r in self.rounds)

    def columns(self, batch: int, eager: CellRounds | None = None) -> dict[str, Any]:
        """Timing columns (``stats.latency_columns``: the level as the median
        of round medians, the distribution of every sample), the round
        columns, the calibration figures and, given eager's rounds, the
        paired speedup."""
        rounds_s = [r.samples_s for r in self.rounds]
        if not any(rounds_s):
            return {}
        cols: dict[str, Any] = {
            **stats.latency_columns(rounds_s, batch, [r.number for r in self.rounds]),
            "number_per_repeat": self.rounds[0].number,
            "warmup_calls": sum(r.warmup_calls for r in self.rounds),
            **stats.round_columns(rounds_s),
        }
        calibration = [
            stats.median(r.calibration_samples_s) for r in self.rounds if r.calibration_samples_s
        ]
        if len(calibration) == len(self.rounds):
            cols["calibration_round_ms"] = [c * 1e3 for c in calibration]
            cols["calibration_ms"] = stats.median(calibration) * 1e3
        if eager is not None and eager is not self:
            theirs = {r.index: r.samples_s for r in eager.rounds}
            common = [r for r in self.rounds if r.index in theirs]
            pairs = pair_blocks([theirs[r.index] for r in common], [r.samples_s for r in common])
            speedup = paired_speedup(pairs)
            if speedup is not None:
                cols.update(speedup.columns())
        return cols


# -- the schedule -------------------------------------------------------------------

Group = tuple[Cell, ...]
# verdict(group) -> {cell id: {"row": row, "round": RoundResult | None}}
VerdictFn = Callable[[Group], dict[str, dict[str, Any]]]
# time_round(group, index) -> {cell id: RoundResult, or a crash/timeout row (dict), or a reason (str)}
RoundFn = Callable[[Group, int], dict[str, Any]]
EmitFn = Callable[[Cell, dict[str, Any]], None]
StepFn = Callable[[int, int, Cell], None]


@dataclass
class _Pending:
    cell: Cell
    row: dict[str, Any]
    rounds: CellRounds


def _measured_s(results: Iterable[RoundResult]) -> float:
    return sum(sum(r.samples_s) * r.number for r in results)


class Schedule:
    """Round-robin over groups: round 1 (verdict and first timing) over every
    group, then each further round over every group while the time budget
    lasts. A cell's row is emitted when its last round is done (or at once
    when it has nothing to time, or when a round crashes it)."""

    def __init__(
        self,
        groups: Sequence[Group],
        config: RoundsConfig,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.groups = [g for g in groups if g]
        self.config = config
        self.clock = clock
        self.pending: dict[str, _Pending] = {}
        self.rounds_done = 0
        self.stopped_by_budget = False

    def _emit_cell(self, p: _Pending, group: Group, emit: EmitFn) -> None:
        eager = next((self.pending.get(c.id) for c in group if c.backend == "eager"), None)
        row = dict(p.row)
        row.update(p.rounds.columns(int(row.get("batch") or 1), eager.rounds if eager else None))
        if self.stopped_by_budget:
            row["rounds_note"] = (
                f"time budget of {self.config.time_budget:g}s reached after {self.rounds_done} round(s)"
            )
        emit(p.cell, row)

    def _emit_group(self, group: Group, emit: EmitFn) -> None:
        for cell in group:
            if cell.id in self.pending:
                self._emit_cell(self.pending[cell.id], group, emit)
        for cell in group:
            self.pending.pop(cell.id, None)

    @property
    def total_steps(self) -> int:
        """Tasks the schedule plans: each group's verdict and each further round."""
        return len(self.groups) * max(1, self.config.rounds)

    def run(
        self, verdict: VerdictFn, time_round: RoundFn, emit: EmitFn, step: StepFn | None = None
    ) -> None:
        started = self.clock()
        total = self.total_steps
        done = 0
        first_measured = 0.0
        for group in self.groups:
            if step:
                step(done, total, group[0])
            done += 1
            answers = verdict(group)
            for cell in group:
                answer = answers.get(cell.id) or {"row": {"status": "error", "reason": "no answer"}}
                if answer.get("round") is None:
                    emit(cell, answer["row"])
                else:
                    self.pending[cell.id] = _Pending(
                        cell, answer["row"], CellRounds([answer["round"]])
                    )
                    first_measured += _measured_s([answer["round"]])
            if self.config.rounds <= 1:
                self._emit_group(group, emit)
        self.rounds_done = 1
        estimate = 2.0 * first_measured  # a timing-only round: measured time plus warm-ups
        for index in range(1, self.config.rounds):
            if not budget_allows(self.clock() - started, estimate, self.config.time_budget):
                self.stopped_by_budget = True
                break
            began = self.clock()
            self._round(index, time_round, emit, step, done, total)
            done += len(self.groups)
            self.rounds_done = index + 1
            estimate = self.clock() - began
        for group in self.groups:  # budget reached, or a single round: what is left
            self._emit_group(group, emit)

    def _round(
        self,
        index: int,
        time_round: RoundFn,
        emit: EmitFn,
        step: StepFn | None,
        done: int,
        total: int,
    ) -> None:
        last = index == self.config.rounds - 1
        for n, group in enumerate(self.groups):
            alive = tuple(
                c
                for c in group
                if c.id in self.pending and not self.pending[c.id].rounds.self_timed
            )
            if not alive:
                continue
            if step:
                step(done + n, total, alive[0])
            answers = time_round(alive, index)
            for cell in alive:
                answer = answers.get(cell.id, "no answer")
                p = self.pending[cell.id]
                if isinstance(answer, RoundResult):
                    p.rounds.add(answer)
                elif isinstance(answer, dict):  # the worker crashed or hung on this cell
                    p.row.update(
                        status=answer.get("status", "crash"),
                        reason=f"timing round {index + 1}: {answer.get('reason', '')}",
                    )
                    p.row.update({k: v for k, v in answer.items() if k not in ("status", "reason")})
                else:
                    p.row.setdefault("round_errors", []).append(str(answer))
            if last:
                self._emit_group(group, emit)
            else:
                for cell in alive:  # a crashed cell is done: its row goes out now
                    if self.pending[cell.id].row.get("status") in ("crash", "timeout"):
                        self._emit_cell(self.pending.pop(cell.id), group, emit)
