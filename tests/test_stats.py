"""The one statistics module: its quantile rule on known samples, and the
same raw samples giving the same timing columns on every path (one window,
rounds, train steps, multi-sample cells, the command line)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import torch

from tests.backend_runs import TINY, run_rows
from tests.helpers import TIMING_STATISTICS, expected_timing
from torchparity._core import stats
from torchparity.cell.pipeline import timing_columns
from torchparity.cell.training import _timing_columns as train_timing_columns
from torchparity.timing.measurement import Measurement
from torchparity.timing.rounds import CellRounds, RoundResult
from torchparity.train_loop import TrainTrace

ONE_TO_TEN = [float(x) for x in range(1, 11)]
EXACT = 1e-12


def test_the_quantile_rule_on_1_to_10():
    """Linear interpolation at position (n - 1) q: p90 of 1..10 is 9.1 (not
    10, the nearest rank) and the IQR 7.75 - 3.25 = 4.5 (not 5.5, the
    'exclusive' quartiles 2.75 and 8.25)."""
    assert stats.median(ONE_TO_TEN) == 5.5
    assert stats.quartiles(ONE_TO_TEN) == (3.25, 7.75)
    assert stats.iqr(ONE_TO_TEN) == 4.5
    assert stats.quantile(ONE_TO_TEN, 0.9) == pytest.approx(9.1, abs=EXACT)
    assert stats.quantile(ONE_TO_TEN, 0.99) == pytest.approx(9.91, abs=EXACT)
    assert stats.quantile(ONE_TO_TEN, 0.0) == 1.0 and stats.quantile(ONE_TO_TEN, 1.0) == 10.0


def test_the_rule_is_the_one_of_torch_quantile_and_python_inclusive_quantiles():
    """Two independent implementations of the same rule (what
    torch.utils.benchmark reports, and the standard library's)."""
    samples = [0.31, 0.12, 0.95, 0.47, 0.47, 0.2, 0.83]  # unsorted, with a tie
    q = torch.tensor([0.25, 0.5, 0.75, 0.9, 0.99], dtype=torch.float64)
    theirs = torch.tensor(samples, dtype=torch.float64).quantile(q).tolist()
    ours = [stats.quantile(samples, float(x)) for x in q]
    assert ours == pytest.approx(theirs, abs=EXACT)
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    assert stats.quartiles(samples) == pytest.approx((q1, q3), abs=EXACT)
    assert stats.median(samples) == statistics.median(samples) == 0.47


def test_small_and_degenerate_samples():
    assert stats.median([2.0, 4.0]) == 3.0 and stats.quantile([2.0, 4.0], 0.9) == 3.8
    one = [7.0]
    assert stats.median(one) == stats.quantile(one, 0.99) == 7.0
    assert stats.iqr(one) == 0.0 and stats.cv(one) == 0.0 and stats.outliers(one) == 0
    with pytest.raises(ValueError, match="no samples"):
        stats.median([])


def test_spread_outliers_and_rates():
    samples = [1.0, 2.0, 3.0, 4.0, 100.0]
    assert stats.quartiles(samples) == (2.0, 4.0)
    assert stats.outliers(samples) == 1  # 100 is beyond q3 + 1.5 IQR = 7
    assert stats.cv([1.0, 3.0]) == pytest.approx(statistics.stdev([1.0, 3.0]) / 2.0)
    assert stats.log_spread([3.0]) == 0.0 and stats.log_spread([2.0, 2.0]) == 0.0
    assert stats.per_second(6, 3.0) == 2.0 and stats.per_second(6, 0.0) == float("inf")


def test_latency_columns_of_rounds():
    """The level is the median of round medians (a slow round moves it no
    more than another round); the spread describes every sample pooled."""
    rounds = [[1.0, 2.0, 3.0], [10.0, 11.0, 12.0], [4.0, 5.0, 6.0]]
    cols = stats.latency_columns(rounds, batch=10, numbers=[4, 4, 2])
    pooled = [s for r in rounds for s in r]
    assert cols["latency_ms_median"] == 5000.0  # median of 2, 11, 5
    assert cols["throughput_items_s"] == 2.0
    assert cols["latency_ms_p90"] == pytest.approx(stats.quantile(pooled, 0.9) * 1e3)
    assert cols["latency_ms_iqr"] == pytest.approx(stats.iqr(pooled) * 1e3)
    assert cols["iterations"] == 4 * 3 + 4 * 3 + 2 * 3 and cols["repeats"] == 9
    assert cols["samples_ms"] == [s * 1e3 for s in pooled]
    extra = stats.round_columns(rounds)
    assert extra["round_medians_ms"] == [2000.0, 11000.0, 5000.0]
    assert extra["rounds"] == 3 and extra["samples_per_round"] == [3, 3, 3]


def _rows_from_one_window(samples_s: list[float], batch: int) -> dict[str, dict]:
    """The same raw samples through each path's own entry point."""
    trace = TrainTrace([], [], [], [], [], step_s=[1.0], timing_s=list(samples_s))
    return {
        "single window": Measurement(list(samples_s), number=1).columns(batch),
        "pipeline (infer, multi-sample)": timing_columns(Measurement(list(samples_s), 1), batch),
        "rounds": CellRounds([RoundResult(0, list(samples_s), 1)]).columns(batch),
        "train": train_timing_columns(trace, batch),
    }


def test_every_path_gives_the_same_columns_from_the_same_samples():
    samples_s = [x / 1e3 for x in (4, 9, 1, 7, 3, 10, 2, 8, 6, 5)]  # 1..10 ms, shuffled
    rows = _rows_from_one_window(samples_s, batch=4)
    first = rows["single window"]
    assert first["latency_ms_median"] == pytest.approx(5.5, abs=EXACT)
    assert first["latency_ms_iqr"] == pytest.approx(4.5, abs=EXACT)
    assert first["latency_ms_p90"] == pytest.approx(9.1, abs=EXACT)
    assert first["latency_ms_p99"] == pytest.approx(9.91, abs=EXACT)
    assert first["iterations"] == 10 and first["samples_ms"] == [x * 1e3 for x in samples_s]
    for path, row in rows.items():
        for column in (*TIMING_STATISTICS, "iterations", "samples_ms"):
            assert row[column] == first[column], (path, column)
    assert rows["train"]["steps_per_s"] == pytest.approx(1 / 5.5e-3)


def test_rounds_and_one_window_agree_on_the_pooled_statistics():
    """Three rounds against the same samples in one window: the spread columns
    are equal; the level is the median of the round medians by definition."""
    rounds = [[1e-3, 2e-3, 3e-3], [7e-3, 8e-3, 9e-3], [4e-3, 5e-3, 6e-3]]
    pooled = [s for r in rounds for s in r]
    by_rounds = CellRounds([RoundResult(i, r, 1) for i, r in enumerate(rounds)]).columns(1)
    window = Measurement(pooled, 1).columns(1)
    for column in ("latency_ms_iqr", "latency_ms_p90", "latency_ms_p99", "latency_cv", "outliers"):
        assert by_rounds[column] == window[column], column
    assert by_rounds["latency_ms_median"] == pytest.approx(5.0)  # median of 2, 8, 5 ms


@pytest.mark.slow
def test_rows_from_the_command_line_derive_their_timing_columns_from_their_samples(
    tmp_path: Path,
):
    """Inference cells timed in rounds and train cells timed in one window:
    each row's statistics are what its stored samples give."""
    tiny = ("--case-file", str(TINY), "--suite", "tiny", "--case", "tiny_linear")
    modes = ("--mode", "infer,train", "--backend", "eager,torchscript", "--precision", "fp32")
    rows = run_rows(tmp_path / "run", *tiny, *modes, "--rounds", "2", "--time-budget", "0")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"pass"}
    assert {r["mode"] for r in rows} == {"infer", "train"}
    for row in rows:
        expected = expected_timing(row)
        got = {k: row[k] for k in TIMING_STATISTICS}
        assert got == pytest.approx(expected, rel=1e-9), row["cell_id"]
        assert row["iterations"] >= row["repeats"] > 0
