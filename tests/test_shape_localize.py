"""Localization of shape cells (docs/localization.md, "Shape cells"): a
silent mismatch at another shape is traced to the layer that bakes a size in,
each layer built at the export shape with its inputs' dynamic dims declared
and run at the run shape, through the real command line."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.backend_runs import explain, run_rows
from tests.helpers import run_cli, usage_error
from torchparity._core.rundir import RunDir
from torchparity.cases.shapes import DynamicDim, dims_between

BATCH = DynamicDim("batch", {0: 0}, min=2, max=64)
SEQ = DynamicDim("seq", {0: 1}, min=2, max=64)


def test_a_layers_dims_are_the_axes_that_change_named_after_the_cases() -> None:
    known = {(4, 9): BATCH, (6, 13): SEQ}
    export = (torch.zeros(4, 6, 32), torch.zeros(24, 32), torch.zeros(3))
    run = (torch.zeros(9, 13, 32), torch.zeros(117, 32), torch.zeros(3))
    dims = dims_between(export, run, known)
    assert [(d.name, d.at, d.min, d.max) for d in dims] == [
        ("batch", ((0, 0),), 2, 64),
        ("seq", ((0, 1),), 2, 64),
        ("dim_24_117", ((1, 0),), 2, 1024),  # a flattened batch x seq: a dim of its own
    ]
    with pytest.raises(ValueError, match="rank 2 at the export shape, 3 at the run shape"):
        dims_between((torch.zeros(4, 6),), (torch.zeros(9, 13, 1),), known)
    # Two dims with one export size: a build there may merge them, refused (#153896).
    with pytest.raises(ValueError, match="same example size 4"):
        dims_between((torch.zeros(4, 4),), (torch.zeros(9, 5),), known)


def _table(run_dir: Path, cell_id: str) -> dict[str, dict[str, str]]:
    path = RunDir(run_dir).localization_file(cell_id, ".csv")
    with open(path, encoding="utf-8", newline="") as fh:
        return {r["module"]: r for r in csv.DictReader(fh)}


def _record(run_dir: Path, cell_id: str) -> dict[str, Any]:
    path = RunDir(run_dir).localization_file(cell_id, ".json")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def localized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple, dict]]:
    """The shapes suite's two len() reproductions and the control, traced, in
    shape mode with --localize; rows by (case, backend, point)."""
    out = tmp_path_factory.mktemp("shapeloc") / "run"
    rows = run_rows(
        out, "--suite", "shapes", "--case", "sum_over_len", "--case", "len_pool_classifier",
        "--case", "batch_mlp", "--mode", "shape", "--backend", "torchscript-trace",
        "--precision", "fp32", "--localize", "--no-cache",
    )  # fmt: skip
    return out, {(r["case"], r["backend"], r["shape_point"]): r for r in rows}


def test_the_layer_that_bakes_len_in_is_the_culprit(localized) -> None:
    out, rows = localized
    above = rows[("len_pool_classifier", "torchscript-trace", "above")]
    assert above["shape_outcome"] == "silent-mismatch", explain([above])
    for point in ("below", "inside", "above"):
        assert rows[("len_pool_classifier", "torchscript-trace", point)]["culprit"] == "pool"
    table = _table(out, above["cell_id"])
    assert list(table) == ["embed", "act", "pool", "head", "forward"]  # completion order
    pool = table["pool"]
    assert (
        pool["culprit"] == "True" and pool["op"] == "LenMeanPool" and float(pool["iso_share"]) > 1
    )
    # Built at [4, 6, 32] with batch and seq declared; right there, wrong at [9, 13, 32].
    assert "declared batch [2, 64] (input 0 axis 0); seq [2, 64] (input 0 axis 1)" in pool["note"]
    assert "at the export shape 0 of its bound" in pool["note"], pool["note"]
    assert pool["shape"] == "[9, 32]"  # the run shape's
    for clean in ("embed", "act", "head"):  # right alone: they only inherit the error
        assert float(table[clean]["iso_share"]) < 1, table[clean]
    assert float(table["head"]["acc_share"]) > 1 and float(table["act"]["acc_share"]) < 1
    record = _record(out, above["cell_id"])
    assert (record["export_shape"], record["run_shape"]) == ("batch=4,seq=6", "batch=9,seq=13")
    assert record["culprit_export_inputs"] == "[4, 6, 32]"
    assert record["culprit_run_inputs"] == "[9, 13, 32]"


def test_a_model_without_submodules_blames_its_own_forward(localized) -> None:
    out, rows = localized
    row = rows[("sum_over_len", "torchscript-trace", "below")]
    assert row["shape_outcome"] == "silent-mismatch" and row["culprit"] == "forward", row
    table = _table(out, row["cell_id"])
    assert list(table) == ["forward"] and table["forward"]["op"] == "SumOverLen"
    # The control matches: localized (--localize), no layer blamed.
    for point in ("below", "inside", "above"):
        mlp = rows[("batch_mlp", "torchscript-trace", point)]
        assert mlp["shape_outcome"] == "match" and mlp["culprit"] == "", mlp
    page = RunDir(out).report_html.read_text(encoding="utf-8")
    assert "at batch=9,seq=13 (built at batch=4,seq=6): culprit pool (LenMeanPool)" in page
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "batch=9,seq=13: pool" in summary  # the shape table's culprit column


def test_the_shape_reproducer_runs_the_culprit_alone_in_shape_mode(localized, tmp_path) -> None:
    out, rows = localized
    record = _record(out, rows[("len_pool_classifier", "torchscript-trace", "above")]["cell_id"])
    repro = record["reproducer"]
    assert repro["case"] == "len_pool_classifier.pool" and "--mode shape" in repro["command"]
    script = (RunDir(out).localization_dir / repro["script"]).read_text(encoding="utf-8")
    assert "export shape (batch=4,seq=6: its inputs [4, 6, 32])" in script
    assert "run shape (batch=9,seq=13: its inputs [9, 13, 32])" in script
    args = shlex.split(repro["command"])[2:]  # after "torchparity run"
    args = [str(RunDir(out).localization_dir / a) if a.endswith("-repro.py") else a for a in args]
    again = run_rows(tmp_path / "repro", *args, "--no-localize")
    assert [r["shape_outcome"] for r in again] == ["silent-mismatch"] * 3, explain(again)
    assert again[2]["run_shape"] == "batch=9,seq=13"  # the culprit's dims, as the case's


def test_explain_localizes_a_shape_cell_of_the_run_on_demand(localized, capsys) -> None:
    out, rows = localized
    cell = ("explain", out, "--case", "len_pool_classifier", "--backend", "torchscript-trace")
    proc = run_cli(*map(str, cell), "--precision", "fp32", "--shape-point", "inside")
    assert proc.returncode == 0, proc.stderr
    assert "at batch=5,seq=7 (built at batch=4,seq=6): culprit pool (LenMeanPool)" in proc.stdout
    inside = rows[("len_pool_classifier", "torchscript-trace", "inside")]
    assert _record(out, inside["cell_id"])["culprit_run_inputs"] == "[5, 7, 32]"
    line = usage_error(capsys, *cell, "--precision", "fp32", "--shape-point", "middle")
    assert "unknown shape point 'middle'; valid: below, inside, above" in line


def test_the_legacy_onnx_exporter_is_localized_to_the_same_layer(tmp_path) -> None:
    out = tmp_path / "run"
    rows = run_rows(
        out, "--suite", "shapes", "--case", "len_pool_classifier", "--mode", "shape",
        "--backend", "onnxruntime-legacy", "--precision", "fp32",
    )  # fmt: skip
    assert [r["shape_outcome"] for r in rows] == ["silent-mismatch"] * 3, explain(rows)
    assert {r["culprit"] for r in rows} == {"pool"}  # localized by default: they fail
    table = _table(out, rows[0]["cell_id"])
    assert "batch" in table["pool"]["note"] and float(table["embed"]["iso_share"]) < 1
