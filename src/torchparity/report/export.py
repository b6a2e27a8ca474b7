"""Run directories in other tools' formats: pytest-benchmark's JSON.

One benchmark per measured cell: its rounds are the cell's timing samples
(seconds per call, each the mean of a block of ``iterations`` calls), so
``pytest-benchmark compare`` reads a run like one of its own saved runs. The
statistics are pytest-benchmark's own definitions (its ``stats.Stats``),
computed here so exporting does not need pytest-benchmark installed.
"""

from __future__ import annotations

import datetime as _dt
import math
import platform
import statistics
from bisect import bisect_left, bisect_right
from typing import Any

# The pytest-benchmark release whose file format this writes (``version``).
PYTEST_BENCHMARK_FORMAT = "5.1.0"
FORMATS = ("pytest-benchmark",)


def _quartiles(data: list[float]) -> tuple[float, float]:
    """Q1 and Q3 as pytest-benchmark computes them (Wikipedia's methods 2 and 3)."""
    rounds = len(data)
    if rounds == 1:
        return data[0], data[0]
    if rounds % 2:  # method 3
        n, q = rounds // 4, rounds % 4
        if q == 1:
            return 0.25 * data[n - 1] + 0.75 * data[n], 0.75 * data[3 * n] + 0.25 * data[3 * n + 1]
        return 0.75 * data[n] + 0.25 * data[n + 1], 0.25 * data[3 * n + 1] + 0.75 * data[3 * n + 2]
    return statistics.median(data[: rounds // 2]), statistics.median(data[rounds // 2 :])


def benchmark_stats(samples_s: list[float], iterations: int) -> dict[str, Any]:
    """pytest-benchmark's ``stats`` object for per-call times ``samples_s`` (seconds)."""
    data = sorted(samples_s)
    mean = statistics.mean(data)
    stddev = statistics.stdev(data) if len(data) > 1 else 0
    q1, q3 = _quartiles(data)
    iqr = q3 - q1
    lo, hi = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    stddev_outliers = sum(1 for x in data if x < mean - stddev or x > mean + stddev)
    iqr_outliers = sum(1 for x in data if x < lo or x > hi)
    total = sum(samples_s)
    return {
        "min": data[0],
        "max": data[-1],
        "mean": mean,
        "stddev": stddev,
        "rounds": len(data),
        "median": statistics.median(data),
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_outliers,
        "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": data[0] if len(data) == 1 else data[bisect_left(data, lo)],
        "hd15iqr": data[0] if len(data) == 1 else data[bisect_right(data, hi) - 1],
        "ops": len(data) / total if total else 0,
        "total": total,
        "data": list(samples_s),
        "iterations": iterations,
    }


def benchmark_identity(row: dict[str, Any]) -> dict[str, Any]:
    """A cell's pytest-benchmark name, fullname (the key ``compare`` matches
    runs on), group and params. A check from the pytest plugin keeps its test
    file in the fullname, like pytest-benchmark's own node ids."""
    param = f"{row.get('backend')}-{row.get('precision')}-{row.get('device')}"
    name = f"{row.get('case')}[{param}]"
    origin = str(row.get("test") or "").split("::")[0] or f"torchparity/{row.get('suite') or 'run'}"
    return {
        "group": str(row.get("case")),
        "name": name,
        "fullname": f"{origin}::{name}",
        "params": {k: row.get(k) for k in ("backend", "precision", "device")},
        "param": param,
    }


def benchmark_extra_info(row: dict[str, Any]) -> dict[str, Any]:
    """The verdict beside the timing, so a benchmark table keeps its meaning."""
    keys = (
        "status",
        "max_abs_err",
        "max_rel_err",
        "atol",
        "rtol",
        "batch",
        "throughput_items_s",
        "prepare_s",
        "cell_id",
        "run_id",
        "timing_partial",  # an interrupted run: fewer rounds than planned
        "rounds",
        "rounds_planned",
    )
    return {k: row[k] for k in keys if k in row and _plain(row[k])}


def _plain(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, str | int)
        or (isinstance(value, float) and math.isfinite(value))
    )


def timing_samples(row: dict[str, Any]) -> tuple[list[float], int] | None:
    """The cell's per-call samples in seconds and the calls per sample, or None
    when the row has no timing (skip, error, crash)."""
    samples = row.get("samples_ms")
    if not isinstance(samples, list) or not samples:
        return None
    values = [float(x) / 1e3 for x in samples if isinstance(x, int | float) and math.isfinite(x)]
    if len(values) != len(samples):
        return None
    number = row.get("number_per_repeat")
    return values, int(number) if isinstance(number, int) and number > 0 else 1


def benchmark_entry(row: dict[str, Any]) -> dict[str, Any] | None:
    timing = timing_samples(row)
    if timing is None:
        return None
    return {
        **benchmark_identity(row),
        "extra_info": benchmark_extra_info(row),
        "options": {
            "timer": "torchparity",
            "min_time": None,
            "max_time": None,
            "min_rounds": None,
            "warmup": True,
            "disable_gc": False,
        },
        "stats": benchmark_stats(*timing),
    }


def machine_info(env: dict[str, Any]) -> dict[str, Any]:
    """pytest-benchmark's ``machine_info`` from the run's env.json (the machine
    that ran the cells, not the one exporting)."""
    return {
        "node": env.get("host") or "",
        "processor": env.get("cpu") or "",
        "machine": env.get("machine") or "",
        "python_compiler": "",
        "python_implementation": env.get("python_implementation")
        or platform.python_implementation(),
        "python_implementation_version": env.get("python") or "",
        "python_version": env.get("python") or "",
        "python_build": [],
        "release": env.get("os_release") or "",
        "system": env.get("os") or "",
        "cpu": {"brand_raw": env.get("cpu") or "", "count": env.get("cores")},
        "torch": env.get("torch"),
    }


def commit_info(env: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": env.get("git_sha") or "unknown",
        "time": env.get("start_time"),
        "author_time": None,
        "dirty": None,
        "project": "torchparity",
        "branch": None,
    }


def pytest_benchmark_json(rows: list[dict[str, Any]], env: dict[str, Any]) -> dict[str, Any]:
    """A pytest-benchmark results file for a run: one benchmark per timed cell."""
    benchmarks = [b for b in (benchmark_entry(r) for r in rows) if b is not None]
    return {
        "machine_info": machine_info(env),
        "commit_info": commit_info(env),
        "benchmarks": benchmarks,
        "datetime": env.get("start_time") or _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "version": PYTEST_BENCHMARK_FORMAT,
    }
