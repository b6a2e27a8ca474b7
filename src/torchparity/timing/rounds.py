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

import functools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from torchparity._core import stats
from torchparity._core.row import ROUNDS_PLANNED, TIMING_PARTIAL
from torchparity._core.status import Status
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
    return (cell.case, cell.suite, cell.device, cell.precision, cell.mode, str(cell.sweep_batch))


def group_cells(cells: Iterable[Cell]) -> list[tuple[Cell, ...]]:
    """Cells of the same case, device, precision, mode and batch, in first-seen order,
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

    def record(self, cell_id: str) -> dict[str, Any]:
        """The line of rounds.jsonl for this round of ``cell_id``."""
        return {
            "cell_id": cell_id,
            "round": self.index,
            "samples_s": list(self.samples_s),
            "number": self.number,
            "warmup_calls": self.warmup_calls,
            "calibration_samples_s": list(self.calibration_samples_s),
            "self_timed": self.self_timed,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RoundResult | None:
        """A round read back from rounds.jsonl; None when the record has the wrong shape."""
        samples = _floats(record.get("samples_s"))
        calibration = _floats(record.get("calibration_samples_s", []))
        number, index = record.get("number"), record.get("round")
        if samples is None or calibration is None:
            return None
        if not isinstance(number, int) or not isinstance(index, int):
            return None
        warmup = record.get("warmup_calls")
        return cls(
            index,
            samples,
            number,
            warmup if isinstance(warmup, int) else 0,
            calibration,
            record.get("self_timed") is True,
        )


def _floats(value: Any) -> list[float] | None:
    """A JSON list of numbers as floats; None for anything else."""
    if not isinstance(value, list):
        return None
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in value):
        return None
    return [float(x) for x in value]


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
RoundDoneFn = Callable[[Cell, RoundResult], None]


@functools.cache
def timing_column_names() -> frozenset[str]:
    """Every column ``CellRounds.columns`` can write (derived from a full example,
    so a new timing column is covered without a list to keep in step)."""
    one = RoundResult(0, [1e-3, 1e-3], 1, 0, [1e-3, 1e-3])
    return frozenset(CellRounds([one]).columns(1, CellRounds([one])))


def verdict_part(row: dict[str, Any]) -> dict[str, Any]:
    """A row without its timing-round columns and partial marker: what a resumed
    cell's timing is derived onto again."""
    drop = timing_column_names() | {TIMING_PARTIAL, ROUNDS_PLANNED, "rounds_note"}
    return {k: v for k, v in row.items() if k not in drop}


@dataclass
class Resumed:
    """A cell whose verdict an interrupted run wrote, with the rounds it finished."""

    row: dict[str, Any]  # its stored row, timing columns removed (``verdict_part``)
    rounds: list[RoundResult]
    shown: int = 0  # rounds its stored row covers


@dataclass
class _Pending:
    cell: Cell
    group: Group
    row: dict[str, Any]
    rounds: CellRounds
    shown: int = 0  # rounds covered by the last row written for the cell

    def has(self, index: int) -> bool:
        return any(r.index == index for r in self.rounds.rounds)


def _measured_s(results: Iterable[RoundResult]) -> float:
    return sum(sum(r.samples_s) * r.number for r in results)


@dataclass
class Sinks:
    """Where results go as soon as they are known: ``emit`` a cell's final row,
    ``partial`` a row whose verdict is final and whose timing has rounds to come,
    ``round_done`` each finished timing round."""

    emit: EmitFn
    partial: EmitFn | None = None
    round_done: RoundDoneFn | None = None
    step: StepFn | None = None


class Schedule:
    """Round-robin over groups: round 1 (verdict and first timing) over every
    group, then each further round over every group while the time budget
    lasts. A cell's verdict goes out at once (``partial``, when rounds are to
    come) and each round as it finishes (``round_done``); its final row when
    its last round is done (or at once when it has nothing more to time, or
    when a round crashes it). ``resumed`` cells (an interrupted run's) skip the
    verdict and are timed only in the rounds they lack."""

    def __init__(
        self,
        groups: Sequence[Group],
        config: RoundsConfig,
        clock: Callable[[], float] = time.perf_counter,
        resumed: dict[str, Resumed] | None = None,
    ) -> None:
        self.groups = [g for g in groups if g]
        self.config = config
        self.clock = clock
        self.pending: dict[str, _Pending] = {}
        self.rounds_done = 0
        self.stopped_by_budget = False
        self.where = "before the first cell"  # the step in progress, for an interrupt's message
        for group in self.groups:
            for cell in group:
                r = (resumed or {}).get(cell.id)
                if r is not None and r.rounds:
                    rounds = CellRounds(sorted(r.rounds, key=lambda x: x.index))
                    self.pending[cell.id] = _Pending(cell, group, dict(r.row), rounds, r.shown)

    def _row(self, p: _Pending, partial: bool = False) -> dict[str, Any]:
        eager = next((self.pending.get(c.id) for c in p.group if c.backend == "eager"), None)
        row = dict(p.row)
        row.update(p.rounds.columns(int(row.get("batch") or 1), eager.rounds if eager else None))
        if partial:
            row.update({TIMING_PARTIAL: True, ROUNDS_PLANNED: self.config.rounds})
        elif self.stopped_by_budget:
            row["rounds_note"] = (
                f"time budget of {self.config.time_budget:g}s reached after {self.rounds_done} round(s)"
            )
        return row

    def _emit_cell(self, p: _Pending, emit: EmitFn) -> None:
        emit(p.cell, self._row(p))

    def _emit_group(self, group: Group, emit: EmitFn) -> None:
        for cell in group:
            if cell.id in self.pending:
                self._emit_cell(self.pending[cell.id], emit)
        for cell in group:
            self.pending.pop(cell.id, None)

    def flush_partial(self, partial: EmitFn) -> int:
        """On an interrupt: a row with every finished round for each cell whose
        last written row covers fewer. Returns how many were written."""
        written = 0
        for p in self.pending.values():
            if len(p.rounds.rounds) > p.shown and not p.rounds.self_timed:
                partial(p.cell, self._row(p, partial=True))
                p.shown = len(p.rounds.rounds)
                written += 1
        return written

    @property
    def total_steps(self) -> int:
        """Tasks the schedule plans: each group's verdict and each further round."""
        return len(self.groups) * max(1, self.config.rounds)

    def run(
        self,
        verdict: VerdictFn,
        time_round: RoundFn,
        emit: EmitFn | Sinks,
        step: StepFn | None = None,
    ) -> None:
        sinks = emit if isinstance(emit, Sinks) else Sinks(emit, step=step)
        started = self.clock()
        first_measured = _measured_s(
            r for p in self.pending.values() for r in p.rounds.rounds if r.index == 0
        )
        for done, group in enumerate(self.groups):
            if sinks.step:
                sinks.step(done, len(self.groups) * max(1, self.config.rounds), group[0])
            first_measured += self._verdicts(group, verdict, sinks)
        self.rounds_done = 1
        estimate = 2.0 * first_measured  # a timing-only round: measured time plus warm-ups
        for index in range(1, self.config.rounds):
            if not budget_allows(self.clock() - started, estimate, self.config.time_budget):
                self.stopped_by_budget = True
                break
            began = self.clock()
            self._round(index, time_round, sinks, len(self.groups) * index)
            self.rounds_done = index + 1
            estimate = self.clock() - began
        for group in self.groups:  # budget reached, or a single round: what is left
            self._emit_group(group, sinks.emit)

    def _verdicts(self, group: Group, verdict: VerdictFn, sinks: Sinks) -> float:
        """The verdict and round 1 of the group's cells not resumed; their
        rows go out now. Returns the seconds round 1 measured."""
        new = tuple(c for c in group if c.id not in self.pending)
        if not new:
            return 0.0
        self.where = f"the verdict and round 1 of {max(1, self.config.rounds)} of {new[0].id}"
        answers = verdict(new)
        measured = 0.0
        for cell in new:
            answer = answers.get(cell.id) or {
                "row": {"status": Status.ERROR.value, "reason": "no answer"}
            }
            first = answer.get("round")
            if first is None:
                sinks.emit(cell, answer["row"])
                continue
            p = _Pending(cell, group, answer["row"], CellRounds([first]))
            self.pending[cell.id] = p
            measured += _measured_s([first])
            if sinks.round_done:
                sinks.round_done(cell, first)
            if self.config.rounds <= 1 or first.self_timed:  # nothing more to time
                self._emit_cell(self.pending.pop(cell.id), sinks.emit)
            elif sinks.partial:
                sinks.partial(cell, self._row(p, partial=True))
                p.shown = 1
        return measured

    def _round(self, index: int, time_round: RoundFn, sinks: Sinks, done: int) -> None:
        last = index == self.config.rounds - 1
        for n, group in enumerate(self.groups):
            alive = tuple(
                c
                for c in group
                if c.id in self.pending
                and not self.pending[c.id].rounds.self_timed
                and not self.pending[c.id].has(index)
            )
            if alive:
                if sinks.step:
                    sinks.step(done + n, self.total_steps, alive[0])
                self.where = f"round {index + 1} of {self.config.rounds} of {alive[0].id}"
                self._take(index, alive, time_round(alive, index), sinks)
            if last:
                self._emit_group(group, sinks.emit)
            else:
                for cell in alive:  # a crashed cell is done: its row goes out now
                    if self.pending[cell.id].row.get("status") in (Status.CRASH, Status.TIMEOUT):
                        self._emit_cell(self.pending.pop(cell.id), sinks.emit)

    def _take(self, index: int, alive: Group, answers: dict[str, Any], sinks: Sinks) -> None:
        for cell in alive:
            answer = answers.get(cell.id, "no answer")
            p = self.pending[cell.id]
            if isinstance(answer, RoundResult):
                p.rounds.add(answer)
                if sinks.round_done:
                    sinks.round_done(cell, answer)
            elif isinstance(answer, dict):  # the worker crashed or hung on this cell
                p.row.update(
                    status=answer.get("status", "crash"),
                    reason=f"timing round {index + 1}: {answer.get('reason', '')}",
                )
                p.row.update({k: v for k, v in answer.items() if k not in ("status", "reason")})
            else:
                p.row.setdefault("round_errors", []).append(str(answer))
