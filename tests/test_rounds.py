"""Timing rounds: grouping, the round-robin schedule, statistics over rounds,
the paired speedup and its interval, interleaved blocks. Synthetic samples
and fake clocks only: no test here asserts a time."""

import math

import numpy as np
import pytest

from torchparity._core.stats import log_spread
from torchparity.axes.matrix import Cell
from torchparity.timing.pairing import pair_blocks, paired_speedup
from torchparity.timing.rounds import (
    CellRounds,
    Resumed,
    RoundResult,
    RoundsConfig,
    Schedule,
    Sinks,
    budget_allows,
    group_cells,
    round_timing,
    timing_column_names,
    verdict_part,
)
from torchparity.timing.timer import TimingConfig, measure_interleaved


def _cell(case, backend, precision="fp32"):
    return Cell(case, "model", "s", "cpu", precision, backend)


def test_groups_are_case_device_precision_with_eager_first():
    cells = [
        _cell("a", "onnxruntime"),
        _cell("a", "eager"),
        _cell("b", "eager"),
        _cell("a", "eager", "bf16"),
        _cell("a", "compile"),
    ]
    groups = group_cells(cells)
    assert [[c.id for c in g] for g in groups] == [
        ["a|cpu|fp32|eager", "a|cpu|fp32|onnxruntime", "a|cpu|fp32|compile"],
        ["b|cpu|fp32|eager"],
        ["a|cpu|bf16|eager"],
    ]


def test_round_timing_splits_the_cells_time_over_rounds():
    config = TimingConfig(min_time=0.3, min_repeats=7, max_time=6.0)
    one = round_timing(config, 3)
    assert one.min_time == pytest.approx(0.1) and one.max_time == pytest.approx(2.0)
    assert one.min_repeats >= 5
    assert round_timing(config, 1) == config


def test_budget():
    assert budget_allows(10.0, 5.0, None)
    assert budget_allows(10.0, 5.0, 15.0)
    assert not budget_allows(10.0, 5.1, 15.0)


def _result(index, level, n=5):
    return RoundResult(
        index, [level * (1 + 0.01 * k) for k in range(n)], number=10, calibration_samples_s=[1e-4]
    )


class FakeWorker:
    """Answers verdict and round tasks with synthetic samples and logs the order."""

    def __init__(self, levels, crash=None, lost=None):
        self.levels = levels  # backend -> seconds per call
        self.log = []
        self.crash = crash or set()  # (cell id, round index) that crash
        self.lost = lost or set()

    def verdict(self, group):
        self.log.append(("verdict", group[0].case, group[0].precision))
        return {
            c.id: {
                "row": {"status": "pass", "reason": "", "batch": 4},
                "round": _result(0, self.levels[c.backend]),
            }
            for c in group
        }

    def time_round(self, group, index):
        self.log.append((index, group[0].case, group[0].precision))
        out = {}
        for c in group:
            if (c.id, index) in self.crash:
                out[c.id] = {"status": "crash", "reason": "worker killed by SIGSEGV"}
            elif (c.id, index) in self.lost:
                out[c.id] = "prepared again: error"
            else:
                out[c.id] = _result(index, self.levels[c.backend])
        return out


def _run(cells, worker, config, clock=None):
    emitted = []
    schedule = Schedule(group_cells(cells), config, **({"clock": clock} if clock else {}))
    schedule.run(worker.verdict, worker.time_round, lambda cell, row: emitted.append((cell, row)))
    return schedule, {c.id: row for c, row in emitted}, [c.id for c, _ in emitted]


def test_schedule_is_round_robin_over_groups_and_rows_come_after_the_last_round():
    cells = [_cell(case, b) for case in ("a", "b") for b in ("eager", "onnxruntime")]
    worker = FakeWorker({"eager": 2e-3, "onnxruntime": 1e-3})
    _, rows, order = _run(cells, worker, RoundsConfig(rounds=3, time_budget=None))
    assert worker.log == [
        ("verdict", "a", "fp32"),
        ("verdict", "b", "fp32"),
        (1, "a", "fp32"),
        (1, "b", "fp32"),
        (2, "a", "fp32"),
        (2, "b", "fp32"),
    ]
    assert sorted(order) == sorted(c.id for c in cells)  # exactly one row per cell
    ort = rows["a|cpu|fp32|onnxruntime"]
    assert ort["rounds"] == 3 and len(ort["round_medians_ms"]) == 3
    assert ort["samples_per_round"] == [5, 5, 5] and len(ort["samples_ms"]) == 15
    assert ort["latency_ms_median"] == pytest.approx(1.02)  # median of round medians, in ms
    assert ort["speedup_vs_eager"] == pytest.approx(2.0)
    assert ort["speedup_ci_low"] <= 2.0 <= ort["speedup_ci_high"]
    assert ort["calibration_round_ms"] == [0.1, 0.1, 0.1]
    assert "speedup_vs_eager" not in rows["a|cpu|fp32|eager"]


def test_a_self_timed_cell_is_asked_no_further_round():
    """The C++ runner times itself in round 1; the schedule, not a worker's
    memory (lost with a crashed worker), keeps it out of later rounds."""
    cells = [_cell("a", "eager"), _cell("a", "torchscript-cpp")]
    worker = FakeWorker({"eager": 2e-3, "torchscript-cpp": 1e-3})
    verdict = worker.verdict

    def self_timing_verdict(group):
        answers = verdict(group)
        answers["a|cpu|fp32|torchscript-cpp"]["round"].self_timed = True
        return answers

    asked = []
    time_round = worker.time_round
    worker.time_round = lambda group, index: (
        asked.append([c.backend for c in group]),
        time_round(group, index),
    )[1]
    emitted = []
    Schedule(group_cells(cells), RoundsConfig(rounds=3, time_budget=None)).run(
        self_timing_verdict, worker.time_round, lambda cell, row: emitted.append((cell, row))
    )
    assert asked == [["eager"], ["eager"]]
    rows = {c.backend: row for c, row in emitted}
    assert rows["torchscript-cpp"]["rounds"] == 1 and rows["eager"]["rounds"] == 3


def test_budget_stops_further_rounds_and_every_cell_still_gets_its_row():
    ticks = iter(range(0, 10_000, 50))  # each clock read: 50 s later
    cells = [_cell("a", "eager"), _cell("b", "eager")]
    worker = FakeWorker({"eager": 1e-3})
    schedule, rows, _ = _run(
        cells, worker, RoundsConfig(rounds=5, time_budget=60.0), lambda: next(ticks)
    )
    assert schedule.stopped_by_budget and schedule.rounds_done < 5
    assert set(rows) == {c.id for c in cells}
    assert all(r["rounds"] == schedule.rounds_done for r in rows.values())
    assert all("time budget" in r["rounds_note"] for r in rows.values())


def test_a_crash_in_a_later_round_costs_that_cell_only():
    cells = [_cell("a", "eager"), _cell("a", "onnxruntime")]
    worker = FakeWorker(
        {"eager": 2e-3, "onnxruntime": 1e-3},
        crash={("a|cpu|fp32|onnxruntime", 1)},
        lost={("a|cpu|fp32|eager", 2)},
    )
    _, rows, _ = _run(cells, worker, RoundsConfig(rounds=3, time_budget=None))
    crashed = rows["a|cpu|fp32|onnxruntime"]
    assert crashed["status"] == "crash" and crashed["reason"].startswith(
        "timing round 2: worker killed"
    )
    assert crashed["rounds"] == 1  # what it measured before
    eager = rows["a|cpu|fp32|eager"]
    assert eager["status"] == "pass" and eager["rounds"] == 2
    assert eager["round_errors"] == ["prepared again: error"]
    assert (2, "a", "fp32") in worker.log  # round 3 went on without the crashed cell


def test_cells_without_timing_are_emitted_after_their_verdict():
    class Erroring(FakeWorker):
        def verdict(self, group):
            out = super().verdict(group)
            out[group[0].id] = {
                "row": {"status": "error", "reason": "prepare: boom"},
                "round": None,
            }
            return out

    cells = [_cell("a", "eager"), _cell("a", "onnxruntime")]
    _, rows, order = _run(
        cells, Erroring({"eager": 1e-3, "onnxruntime": 1e-3}), RoundsConfig(3, None)
    )
    assert order[0] == "a|cpu|fp32|eager" and rows[order[0]]["status"] == "error"
    assert "speedup_vs_eager" not in rows["a|cpu|fp32|onnxruntime"]  # no eager timing, no pairs


def test_statistics_over_rounds():
    rounds = CellRounds([_result(0, 1.0), _result(1, 2.0), _result(2, 1.5)])
    cols = rounds.columns(batch=2)
    assert cols["round_medians_ms"] == pytest.approx([1020.0, 2040.0, 1530.0])
    assert cols["latency_ms_median"] == pytest.approx(1530.0)
    assert cols["throughput_items_s"] == pytest.approx(2 / 1.53)
    assert cols["latency_round_spread"] == pytest.approx(log_spread([1.0, 2.0, 1.5]))
    assert cols["iterations"] == 150
    assert log_spread([3.0]) == 0.0 and log_spread([2.0, 2.0]) == 0.0


def test_pairs_match_rounds_by_index_not_position():
    eager = CellRounds([_result(0, 2.0), _result(2, 2.0)])  # round 1 was lost
    backend = CellRounds([_result(0, 1.0), _result(1, 5.0), _result(2, 1.0)])
    cols = backend.columns(1, eager)
    assert cols["speedup_pairs"] == 10 and cols["speedup_vs_eager"] == pytest.approx(2.0)


def test_paired_speedup_cancels_a_shared_slowdown_and_its_interval_covers_the_truth():
    rng = np.random.default_rng(1)
    # the machine's speed wanders by 2x over the blocks; both sides feel it alike
    machine = np.exp(rng.normal(0, 0.4, 60))
    eager = machine * 3.0 * np.exp(rng.normal(0, 0.03, 60))
    backend = machine * 1.0 * np.exp(rng.normal(0, 0.03, 60))
    s = paired_speedup(list(zip(eager, backend, strict=True)))
    assert s.low <= 3.0 <= s.high and s.high / s.low < 1.1  # paired: tight
    # unpaired (shuffled) the same samples give a much wider spread of ratios
    shuffled = paired_speedup(list(zip(eager, rng.permutation(backend), strict=True)))
    assert math.log(shuffled.high / shuffled.low) > 5 * math.log(s.high / s.low)
    assert paired_speedup([]) is None
    few = paired_speedup([(2.0, 1.0)])
    assert few.value == 2.0 and math.isnan(few.low)
    assert paired_speedup(list(zip(eager, backend, strict=True))) == s  # seeded: deterministic


def test_pair_blocks_drops_unmatched_and_nonpositive():
    assert pair_blocks([[1.0, 2.0, 3.0]], [[0.5, 0.0]]) == [(1.0, 0.5)]


def test_interleaved_blocks_alternate_and_every_callable_gets_the_same_count():
    calls = []
    fns = [lambda: calls.append("a"), lambda: calls.append("b")]
    order = []

    def time_block(fn, number):
        for _ in range(number):
            fn()
        order.append(calls[-1])
        return 1e-3 * number  # a fake clock: 1 ms per call

    config = TimingConfig(min_time=0.02, min_repeats=4, warmup_time=0.0)
    found = measure_interleaved(fns, time_block, config, numbers=[2, 3])
    assert [m.number for m in found] == [2, 3]
    assert len(found[0].samples_s) == len(found[1].samples_s) >= 4
    timed = order[-2 * len(found[0].samples_s) :]
    assert timed == ["a", "b"] * len(
        found[0].samples_s
    )  # a b a b ...: block k of each side by side
    assert found[0].median == pytest.approx(1e-3)


# -- end to end through the command line -------------------------------------------------


def test_a_run_in_rounds_gives_one_row_per_cell_with_rounds_and_paired_speedups(tmp_path):
    from tests.backend_runs import TINY, run_rows
    from torchparity.axes.devices import DEVICES

    rows = run_rows(
        tmp_path / "run",
        "--case-file",
        str(TINY),
        "--suite",
        "tiny",
        "--case",
        "tiny_linear",
        "--precision",
        "fp32",
        "--backend",
        "eager,torchscript",
        "--rounds",
        "2",
        "--time-budget",
        "0",
        "--device",
        "present",
    )
    absent = [d for d, dev in DEVICES.items() if dev.unavailable()]
    assert not [r for r in rows if r["device"] in absent]
    rows = [r for r in rows if r["device"] == "cpu"]
    summary = (tmp_path / "run" / "summary.md").read_text(encoding="utf-8")
    if absent:  # absent devices: one line, not rows
        assert f"absent devices (not run): {absent[0]}:" in summary
    by = {r["backend"]: r for r in rows}
    assert sorted(by) == ["eager", "torchscript"] and len(rows) == 2
    for r in rows:
        assert r["status"] == "pass" and r["rounds"] == 2 and len(r["round_medians_ms"]) == 2
        assert sum(r["samples_per_round"]) == len(r["samples_ms"])
        assert len(r["calibration_round_ms"]) == 2 and r["latency_round_spread"] >= 0
    ts = by["torchscript"]
    assert ts["speedup_ci_low"] <= ts["speedup_vs_eager"] <= ts["speedup_ci_high"]
    assert ts["speedup_pairs"] == sum(
        min(a, b)
        for a, b in zip(by["eager"]["samples_per_round"], ts["samples_per_round"], strict=True)
    )


def test_bad_rounds_options_are_one_line_exit_2(capsys, tmp_path):
    from torchparity.cli import main

    for args in (["--rounds", "0"], ["--time-budget", "-1"]):
        assert main(["run", "--suite", "smoke", "--out", str(tmp_path / "x"), *args]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "--rounds must be at least 1" in err


def test_instruction_counts_skip_with_a_reason_off_cpu():
    from torchparity.run import instructions

    assert "CPU cells" in instructions.unavailable("cuda")


def test_instruction_counts_skip_other_processes_cells_with_a_reason(monkeypatch):
    """Calls made in a process the counter cannot count are skipped with the
    reason, before any counting process starts: a Node runner's, and a C++
    runner's when valgrind's header was not there to build it with."""
    from torchparity.axes.matrix import Cell
    from torchparity.backends import native_build
    from torchparity.run import instructions

    monkeypatch.delenv(native_build.ENV_BINARY, raising=False)
    monkeypatch.setattr(native_build, "callgrind_include_dir", lambda: None)
    node = instructions.out_of_process("onnxruntime-node")
    cpp = instructions.out_of_process("torchscript-cpp")
    assert node and "process of its own" in node
    assert cpp and "callgrind.h" in cpp
    assert instructions.out_of_process("eager") is None
    with instructions.Counter({}, 60) as counter:
        row = counter.count(Cell("mlp", "model", "models", "cpu", "fp32", "torchscript-cpp"))
        assert counter._proc is None  # no process starts for a skipped cell
    assert row == {"instructions_skip_reason": instructions.unavailable("cpu") or cpp}


@pytest.mark.slow
def test_instruction_counts_of_a_run_in_one_counting_process(tmp_path):
    """Two cells counted by one process agree with a count in a fresh process:
    the first cell's count does not leak into the second's."""
    from tests.backend_runs import TINY, run_rows
    from torchparity.axes.matrix import Cell
    from torchparity.run import instructions

    if instructions.unavailable("cpu"):
        pytest.skip(instructions.unavailable("cpu"))
    cache = tmp_path / "cache"
    tiny = (
        "--case-file",
        str(TINY),
        "--suite",
        "tiny",
        "--case",
        "tiny_linear",
        "--case",
        "tiny_heads",
    )
    rows = run_rows(
        tmp_path / "run",
        *tiny,
        "--backend",
        "eager,onnxruntime",
        "--precision",
        "fp32",
        "--rounds",
        "1",
        "--cache-dir",
        str(cache),
        "--count-instructions",
        timeout=3000,
    )
    assert all(r.get("behaviour_fingerprint") for r in rows), rows
    ort = [r for r in rows if r["backend"] == "onnxruntime"]
    assert all(r.get("instructions_per_call") for r in ort), ort
    # The counting process keyed its artifacts as the worker did: nothing rebuilt after it.
    again = run_rows(
        tmp_path / "again",
        *tiny,
        "--backend",
        "onnxruntime",
        "--precision",
        "fp32",
        "--rounds",
        "1",
        "--cache-dir",
        str(cache),
    )
    assert {r["backend_cache"] for r in again} == {"hit"}, again
    rows = [r for r in rows if r["backend"] == "eager"]
    counts = {r["case"]: r.get("instructions_per_call") for r in rows}
    assert all(c and c > 1000 for c in counts.values()), rows
    # Counted with kernels without FMA (valgrind runs FMA ~100x slower).
    assert {r["instructions_method"] for r in rows} == {
        instructions.METHOD.format(aten="DEFAULT")
    }, rows
    assert all(r["instructions_s"] > 0 for r in rows)
    spec = {
        "seed": 0,
        "cache_dir": str(cache),
        "backend_options": {},
        "plugins": [["file", str(TINY)]],
    }
    alone = instructions.count(
        Cell("tiny_heads", "model", "tiny", "cpu", "fp32", "eager"), spec, 1200
    )
    assert alone.get("instructions_per_call") == pytest.approx(counts["tiny_heads"], rel=0.02), (
        alone
    )


def test_each_verdict_and_round_goes_out_as_soon_as_it_is_known():
    cells = [_cell("a", "eager"), _cell("a", "onnxruntime"), _cell("b", "eager")]
    worker = FakeWorker({"eager": 2e-3, "onnxruntime": 1e-3})
    events = []
    sinks = Sinks(
        emit=lambda cell, row: events.append(("final", cell.id, row["rounds"])),
        partial=lambda cell, row: events.append(("partial", cell.id, row["rounds"])),
        round_done=lambda cell, result: events.append(("round", cell.id, result.index)),
    )
    Schedule(group_cells(cells), RoundsConfig(3, None)).run(
        worker.verdict, worker.time_round, sinks
    )
    # Group a's verdicts are out before group b is even asked.
    assert events[:4] == [
        ("round", "a|cpu|fp32|eager", 0),
        ("partial", "a|cpu|fp32|eager", 1),
        ("round", "a|cpu|fp32|onnxruntime", 0),
        ("partial", "a|cpu|fp32|onnxruntime", 1),
    ]
    assert sum(1 for e in events if e[0] == "round") == 9
    assert [e for e in events if e[0] == "final"] == [("final", c.id, 3) for c in cells]


def test_an_interrupt_keeps_the_finished_rounds_and_resume_times_only_the_missing_ones():
    cells = [_cell("a", "eager"), _cell("a", "onnxruntime")]
    worker = FakeWorker({"eager": 2e-3, "onnxruntime": 1e-3})
    real_round = worker.time_round

    def interrupted(group, index):
        if index == 2:
            raise KeyboardInterrupt
        return real_round(group, index)

    rows, rounds = {}, {}
    sinks = Sinks(
        emit=lambda cell, row: pytest.fail("no final row before the last round"),
        partial=lambda cell, row: rows.__setitem__(cell.id, row),
        round_done=lambda cell, result: rounds.setdefault(cell.id, []).append(result),
    )
    schedule = Schedule(group_cells(cells), RoundsConfig(3, None))
    with pytest.raises(KeyboardInterrupt):
        schedule.run(worker.verdict, interrupted, sinks)
    assert all(r["rounds"] == 1 and r["timing_partial"] for r in rows.values())
    assert schedule.flush_partial(sinks.partial) == 2  # rows again, with round 2 in them
    assert all(r["rounds"] == 2 and r["rounds_planned"] == 3 for r in rows.values())
    assert "round 3 of 3" in schedule.where

    resumed = {cid: Resumed(verdict_part(rows[cid]), rounds[cid], 2) for cid in rows}
    assert {"latency_ms_median", "calibration_ms", "speedup_vs_eager"} <= timing_column_names()
    assert not timing_column_names() & set(resumed[cells[0].id].row)
    worker.log.clear()
    final = {}
    Schedule(group_cells(cells), RoundsConfig(3, None), resumed=resumed).run(
        worker.verdict, worker.time_round, lambda cell, row: final.__setitem__(cell.id, row)
    )
    assert worker.log == [(2, "a", "fp32")]  # no verdict again, only the missing round
    assert all(r["rounds"] == 3 and "timing_partial" not in r for r in final.values())
    assert final["a|cpu|fp32|onnxruntime"]["speedup_pairs"] == 15  # paired over all 3 rounds
