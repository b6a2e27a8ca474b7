"""Batch sweeps (``--batch 1,8,32``): a row per batch size for infer cells, and
report.html's latency and throughput against batch per backend, checked in a
real browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.backend_runs import explain, run_rows
from tests.helpers import usage_error
from tests.test_report import open_headless
from torchparity.axes.matrix import expand
from torchparity.cases.case import CASES, load_all
from torchparity.report import charts
from torchparity.timing.rounds import group_cells


def test_a_sweep_is_an_infer_cell_per_batch_in_groups_of_its_own() -> None:
    load_all([])
    cells = expand(
        [CASES["mlp"]],
        ["cpu"],
        ["fp32"],
        ["eager", "onnxruntime"],
        "smoke",
        ["infer", "train"],
        [1, 8],
    )
    infer = [c for c in cells if c.mode == "infer"]
    assert [(c.backend, c.sweep_batch) for c in infer] == [
        ("eager", 1),
        ("onnxruntime", 1),
        ("eager", 8),
        ("onnxruntime", 8),
    ]
    assert infer[0].id == "mlp|cpu|fp32|eager|batch=1"
    assert all(c.sweep_batch == 0 for c in cells if c.mode == "train")  # the case's own batch
    groups = group_cells(infer)
    assert [[c.sweep_batch for c in g] for g in groups] == [[1, 1], [8, 8]]  # eager pairs its batch


def test_bad_batch_lists_are_one_line(capsys: Any) -> None:
    assert "must be at least 1" in usage_error(capsys, "run", "--batch", "1,0", "--quiet")
    assert "not a whole number" in usage_error(capsys, "run", "--batch", "8,x", "--quiet")


@pytest.mark.slow  # 12 timed cells with three exporters, and a browser
def test_batch_sweep_rows_and_charts_in_a_browser(tmp_path: Path) -> None:
    out = tmp_path / "run"
    rows = run_rows(
        out,
        "--suite",
        "smoke",
        "--case",
        "mlp",
        "--backend",
        "eager,torchscript,onnxruntime,export",
        "--precision",
        "fp32",
        "--batch",
        "1,8,32",
        "--rounds",
        "2",
    )
    assert len(rows) == 3 * 4, explain(rows)
    assert all(r["status"] == "pass" for r in rows), explain(rows)
    assert sorted({r["batch"] for r in rows}) == [1, 8, 32]
    for r in rows:
        assert (
            abs(r["throughput_items_s"] - r["batch"] / r["latency_ms_median"] * 1e3)
            < 1e-6 * r["throughput_items_s"]
        )
        assert r["cell_id"].endswith(f"|batch={r['batch']}")
    # The paired speedup pairs each backend with eager at the same batch.
    assert all(r.get("speedup_vs_eager") for r in rows if r["backend"] != "eager")
    sweeps = charts.batch_sweep_charts(rows)
    assert [case for case, _ in sweeps] == ["mlp"]
    svg = sweeps[0][1]
    for label in (
        "cpu/eager/fp32",
        "cpu/onnxruntime/fp32",
        "cpu/export/fp32",
        "cpu/torchscript/fp32",
    ):
        assert label in svg
    assert "latency per call (ms)" in svg and "throughput (items/s)" in svg
    page = out / "report.html"
    assert "id='batch-sweep'" in page.read_text(encoding="utf-8")
    dom, console = open_headless(page, tmp_path)
    assert console == []
    assert "Batch sweep" in dom and "mlp @ batch 32" in dom and "cpu/onnxruntime/fp32" in dom


def _timed(backend: str, batch: int, ms: float) -> dict[str, Any]:
    return {
        "case": "m",
        "device": "cpu",
        "precision": "fp32",
        "backend": backend,
        "mode": "infer",
        "status": "pass",
        "batch": batch,
        "latency_ms_median": ms,
        "throughput_items_s": batch / ms * 1e3,
        "samples_ms": [ms * 0.9, ms, ms * 1.2],
    }


def test_sweep_charts_draw_each_backend_and_label_cases_per_batch() -> None:
    rows = [
        _timed(b, n, ms * n) for b, ms in (("eager", 1.0), ("onnxruntime", 0.5)) for n in (1, 8)
    ]
    rows.append({**_timed("eager", 4, 2.0), "case": "single"})  # one batch only: no sweep chart
    sweeps = charts.batch_sweep_charts(rows)
    assert [case for case, _ in sweeps] == ["m"]
    assert "cpu/eager/fp32" in sweeps[0][1] and "cpu/onnxruntime/fp32" in sweeps[0][1]
    frame = pd.DataFrame(rows)
    assert set(charts.case_label(frame)) == {"m @ batch 1", "m @ batch 8", "single"}
    speed = charts.speedup_table(frame)
    assert list(speed.index) == ["m @ batch 1", "m @ batch 8"]  # each batch against eager's
    assert list(speed["cpu/onnxruntime/fp32"]) == [2.0, 2.0]
