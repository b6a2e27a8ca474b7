import pytest

from torchparity.timing.measurement import Measurement
from torchparity.timing.timer import TimingConfig, measure, synced_time_block


def test_statistics_derive_from_samples():
    m = Measurement(samples_s=[1.0, 2.0, 3.0, 4.0, 100.0], number=10)
    assert m.median == 3.0
    assert m.iterations == 50
    cols = m.columns(batch=6)
    assert cols["latency_ms_median"] == 3000.0
    assert cols["latency_ms_iqr"] == 2000.0  # quartiles 2 and 4
    assert cols["outliers"] == 1
    assert cols["iterations"] == 50 and cols["number_per_repeat"] == 10
    assert cols["throughput_items_s"] == 2.0
    assert cols["latency_ms_p90"] == pytest.approx(61_600.0)
    assert cols["samples_ms"] == [1000.0, 2000.0, 3000.0, 4000.0, 100_000.0]


def test_measure_collects_blocks_and_syncs():
    calls, syncs = [], []
    config = TimingConfig(min_time=0.01, min_repeats=5, warmup_time=0.0)

    def time_block(fn, number):
        return synced_time_block(fn, number, lambda: syncs.append(1))

    m = measure(lambda: calls.append(1), time_block, config)
    assert len(m.samples_s) >= 5
    assert m.number > 1  # a no-op is far below the block target: calls are batched
    assert m.warmup_calls >= 2
    # every timed call happened (calibration blocks come on top)
    assert len(calls) >= m.warmup_calls + m.iterations
    # the device is synchronised before and after every block
    assert len(syncs) >= 2 * len(m.samples_s)
