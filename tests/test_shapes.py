"""Shape mode (docs/shapes.md): declared dynamic dims, the run shapes the
harness picks, and artifacts built at one shape and run at others, through
the real command line: the ``shapes`` suite's reproductions come out as
silent-mismatch and silent-static, the control as match."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.backend_runs import explain, run_rows
from tests.helpers import quick_run, read_rows, run_cli, usage_error
from torchparity.axes.matrix import Cell, expand
from torchparity.cases.case import CASES, load_all
from torchparity.cases.shapes import (
    SHAPE_POINTS,
    DynamicDim,
    describe_sizes,
    export_sizes,
    resize_inputs,
    run_sizes,
)
from torchparity.cell.execute import apply_known_failures
from torchparity.report.shapes import shape_table

BATCH = DynamicDim("batch", {0: 0}, min=2, max=64)
SEQ = DynamicDim("seq", {0: 1}, min=2, max=32)


def test_run_shapes_below_inside_above_and_distinct() -> None:
    export = {"batch": 4}
    sizes = [run_sizes([BATCH], export, p)["batch"] for p in SHAPE_POINTS]
    assert sizes == [2, 5, 9]
    # Two dims never share a size, at export or at any run shape, and never 0, 1 or their export size.
    both = {"batch": 8, "seq": 16}
    for point in SHAPE_POINTS:
        run = run_sizes([BATCH, SEQ], both, point)
        assert run["batch"] != run["seq"] and min(run.values()) >= 2
        assert all(run[k] != both[k] for k in run)
    assert run_sizes([BATCH, SEQ], {"batch": 4, "seq": 9}, "above") == {"batch": 9, "seq": 19}
    assert describe_sizes({"batch": 9, "seq": 19}) == "batch=9,seq=19"


def test_a_point_outside_the_declared_range_says_why() -> None:
    with pytest.raises(ValueError, match="no size above the export size 32 of seq"):
        run_sizes([SEQ], {"seq": 32}, "above")
    assert run_sizes([SEQ], {"seq": 32}, "inside")["seq"] in range(17, 32)
    with pytest.raises(ValueError, match="no size below"):
        run_sizes([BATCH], {"batch": 2}, "below")


def test_equal_example_sizes_of_two_dims_are_refused() -> None:
    x = torch.zeros(8, 8)
    with pytest.raises(ValueError, match="same example size 8.*153896"):
        export_sizes((x,), [BATCH, SEQ])
    with pytest.raises(ValueError, match="several sizes"):
        export_sizes((torch.zeros(4, 3), torch.zeros(5, 3)), [DynamicDim("batch", {0: 0, 1: 0})])
    with pytest.raises(ValueError, match="named twice"):
        from torchparity.cases.shapes import check_dims

        check_dims([BATCH, DynamicDim("batch", {1: 0})])


# A user's case file declaring ``{dims}`` on a [batch 4, seq 6, 3] input.
DECLARED = """
import torch
from torchparity import DynamicDim, register_model

register_model(
    "declared", lambda: torch.nn.Linear(3, 2), lambda gen, batch: (gen.normal(batch, 6, 3),),
    batch=4, suites=["declared"], dynamic=[{dims}],
)
"""


def declared_case(tmp_path: Path, dims: str) -> Path:
    path = tmp_path / "declared_cases.py"
    path.write_text(DECLARED.format(dims=dims), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "dims, says",
    [
        # Passed on as given, -2 declared nothing: the legacy exporter's graph came out static.
        ("DynamicDim('seq', {0: -2})", "dynamic dim 'seq': input 0 axis -2 is negative"),
        ("DynamicDim('batch', {0: 0}, min=0, max=0)", "need 0 <= min < max and max >= 2"),
        (
            "DynamicDim('batch', {0: 0}), DynamicDim('rows', {0: 0})",
            "input 0 axis 0 is declared by two dynamic dims (batch and rows)",
        ),
    ],
)
def test_a_dynamic_dim_declared_wrong_is_one_line(
    tmp_path: Path, capsys: Any, dims: str, says: str
) -> None:
    line = usage_error(
        capsys, "run", "--case-file", declared_case(tmp_path, dims), "--suite", "declared",
        "--mode", "shape", "--backend", "onnxruntime-legacy", "--out", tmp_path / "run", "--quiet",
    )  # fmt: skip
    assert says in line, line


def test_a_declared_range_without_the_cases_own_size_is_the_cases_error(tmp_path: Path) -> None:
    case = declared_case(tmp_path, "DynamicDim('batch', {0: 0}, min=2, max=3)")
    proc = quick_run(case, "declared", "eager", tmp_path / "run", "--mode", "shape", "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(tmp_path / "run")
    assert len(rows) == 3 and {(r["status"], r["blame"]) for r in rows} == {("error", "case")}
    assert all(
        "the case's own size 4 (its export shape) is outside its declared range [2, 3]"
        in r["reason"]
        for r in rows
    ), explain(rows)


def test_resized_inputs_keep_rows_of_different_inputs_together() -> None:
    dense = torch.arange(4.0).reshape(4, 1).repeat(1, 3)
    ids = torch.arange(4).reshape(4, 1) * 10
    dims = [DynamicDim("batch", {0: 0, 1: 0})]
    big_dense, big_ids = resize_inputs((dense, ids), dims, {"batch": 9}, ("case", 0))
    assert big_dense.shape == (9, 3) and big_ids.shape == (9, 1)
    assert torch.equal(big_dense[:, 0].long() * 10, big_ids[:, 0])  # row i of both is one row
    again = resize_inputs((dense, ids), dims, {"batch": 9}, ("case", 0))
    assert torch.equal(again[0], big_dense)  # deterministic


def test_shape_cells_one_per_point_with_their_own_ids() -> None:
    load_all([])
    cells = expand(
        [CASES["sum_over_len"]],
        ["cpu"],
        ["fp32"],
        ["eager", "export"],
        "shapes",
        ["infer", "shape"],
    )
    shape = [c for c in cells if c.mode == "shape"]
    assert [c.shape_point for c in shape] == list(SHAPE_POINTS) * 2
    assert shape[0].id == "sum_over_len|cpu|fp32|eager|shape|below"
    assert "shape_point" not in Cell("m", "model", "s", "cpu", "fp32", "eager").as_dict()
    assert shape[0].as_dict()["shape_point"] == "below"


def test_unknown_mode_names_shape(capsys: Any) -> None:
    line = usage_error(capsys, "run", "--mode", "shapes", "--quiet")
    assert "valid: infer, train, shape" in line


def shape_rows(out: Path, backends: str, *extra: str) -> dict[tuple[str, str], list[dict]]:
    """``run --suite shapes --mode shape`` on fp32 CPU; rows per (case, backend), in run order."""
    rows = run_rows(
        out, "--suite", "shapes", "--mode", "shape", "--backend", backends, "--precision", "fp32",
        *extra,
    )  # fmt: skip
    assert all(r["mode"] == "shape" for r in rows)
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault((r["case"], r["backend"]), []).append(r)
    assert all(len(cells) == 3 for cells in by.values())  # a row per run shape, every cell
    return by


# The first reproduction and the control (len_pool_classifier: tests/test_shape_localize.py).
THE_TWO = ("--case", "sum_over_len", "--case", "batch_mlp")


def outcomes(cells: list[dict[str, Any]]) -> list[str]:
    return [r.get("shape_outcome", r["status"]) for r in cells]


def test_traced_len_is_a_silent_mismatch_scripted_matches(tmp_path: Path) -> None:
    by = shape_rows(tmp_path / "run", "eager,torchscript,torchscript-trace,compile", "--no-cache")
    trace = by[("sum_over_len", "torchscript-trace")]
    assert outcomes(trace) == ["silent-mismatch"] * 3, explain(trace)
    assert all(r["status"] == "fail" and "silent-mismatch at batch=" in r["reason"] for r in trace)
    assert [r["run_shape"] for r in trace] == ["batch=2", "batch=5", "batch=9"]
    assert {r["export_shape"] for r in trace} == {"batch=4"}
    assert trace[2]["run_input_shapes"] == "[9, 16]"
    # Scripting keeps len() symbolic, as eager does.
    assert outcomes(by[("sum_over_len", "torchscript")]) == ["match"] * 3
    for backend in ("eager", "torchscript", "torchscript-trace"):
        cells = by[("batch_mlp", backend)]
        assert outcomes(cells) == ["match"] * 3 and {r["status"] for r in cells} == {"pass"}
    # A backend that does not take part says so, a row per cell.
    assert all(
        r["status"] == "skip" and "does not take part in shape mode" in r["reason"]
        for r in by[("batch_mlp", "compile")]
    )
    # Built once per artifact: the later points reuse it.
    reused = [bool(r.get("artifact_reused")) for r in by[("batch_mlp", "torchscript-trace")]]
    assert reused == [False, True, True]


@pytest.mark.slow  # four ONNX exports and two torch.export runs (~25 s on 2 shared cores)
def test_onnx_exporters_mismatch_and_drop_the_dim_export_refuses(tmp_path: Path) -> None:
    out = tmp_path / "run"
    by = shape_rows(out, "onnxruntime,onnxruntime-legacy,export", *THE_TWO)
    legacy = by[("sum_over_len", "onnxruntime-legacy")]
    assert outcomes(legacy) == ["silent-mismatch"] * 3, explain(legacy)
    assert (
        legacy[0]["backend_static_dims"] == [] and "batch" in legacy[0]["backend_input_signature"]
    )
    static = by[("sum_over_len", "onnxruntime")]
    assert outcomes(static) == ["silent-static"] * 3, explain(static)
    assert all(r["status"] == "fail" for r in static)
    assert all("batch (input 0 axis 0) fixed at 4" in r["reason"] for r in static)
    assert static[0]["backend_input_signature"] == "[4, 16]"
    # torch.export refuses the specialised dim: loud, a skip.
    export = by[("sum_over_len", "export")]
    assert outcomes(export) == ["loud-error"] * 3, explain(export)
    assert all(
        r["status"] == "skip" and "loud-error building at batch=4" in r["reason"] for r in export
    )
    for backend in ("onnxruntime", "onnxruntime-legacy", "export"):
        cells = by[("batch_mlp", backend)]
        assert outcomes(cells) == ["match"] * 3, explain(cells)
        assert cells[0]["backend_static_dims"] == [] and cells[0]["backend_input_signature"]
    rows = [r for cells in by.values() for r in cells]
    table = shape_table(rows)
    assert list(table["worst"])[:2] == ["silent-mismatch", "silent-static"]
    assert "batch=9: silent-mismatch" in table.iloc[0]["outcomes"]
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "## Shape generalisation (silent-* first)" in summary
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "id='shapes'" in html and "silent-static" in html


@pytest.mark.slow  # an AOTInductor compile
def test_aoti_shape_mode_control_and_loud_refusal(tmp_path: Path) -> None:
    by = shape_rows(tmp_path / "run", "aoti", *THE_TWO)
    assert outcomes(by[("batch_mlp", "aoti")]) == ["match"] * 3, explain(by[("batch_mlp", "aoti")])
    assert outcomes(by[("sum_over_len", "aoti")]) == ["loud-error"] * 3


def test_fuzz_shape_mode_shrinks_to_the_smallest_wrong_shape(tmp_path: Path) -> None:
    out = tmp_path / "fuzz"
    proc = run_cli(
        "fuzz",
        "--mode",
        "shape",
        "--op",
        "sum_over_len",
        "--backend",
        "torchscript-trace,torchscript,compile",
        "--examples",
        "8",
        "--quiet",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    rows = {r["backend"]: r for r in read_rows(out)}
    trace = rows["torchscript-trace"]
    assert trace["status"] == "fail" and trace["shape_outcome"] == "silent-mismatch", trace
    assert trace["run_shape"] == "batch=2"  # shrunk: the smallest size other than the export's 4
    assert trace["cell_id"] == "sum_over_len|cpu|fp32|torchscript-trace|shape|fuzz"
    script = rows["torchscript"]
    assert script["status"] == "pass" and script["shapes_tried"] >= 8, script
    assert rows["compile"]["status"] == "skip"


def test_fuzz_mode_is_checked(capsys: Any) -> None:
    assert "valid: infer, shape" in usage_error(capsys, "fuzz", "--mode", "shapes", "--quiet")


def test_a_case_known_failure_does_not_hide_a_silent_shape_outcome() -> None:
    load_all([])
    cell = Cell("max_pool1d", "op", "shapes-test", "cpu", "fp32", "onnxruntime", "shape", "inside")
    silent = {"status": "fail", "reason": "silent-static: ...", "shape_outcome": "silent-static"}
    apply_known_failures(cell, silent)
    assert silent["status"] == "fail" and silent["expectation"] == "new failure"
    # The case's mark (ORT's MaxPool and NaN) still covers a fail at the shape it describes.
    drift = {"status": "fail", "reason": "out: 1/45 elements ...", "shape_outcome": "match"}
    apply_known_failures(cell, drift)
    assert drift["status"] == "xfail" and "MaxPool" in drift["reason"]


@pytest.mark.slow  # two dynamo ONNX exports
def test_catalog_ops_found_by_shape_mode(tmp_path: Path) -> None:
    rows = run_rows(
        tmp_path / "run", "--suite", "ops", "--case", "adaptive_avg_pool1d", "--case",
        "max_pool1d", "--mode", "shape", "--backend", "onnxruntime", "--precision", "fp32",
    )  # fmt: skip
    by = {(r["case"], r["shape_point"]): r for r in rows}
    # Built at length 8, the dynamo exporter's adaptive pooling is wrong at length 17.
    wrong = by[("adaptive_avg_pool1d", "above")]
    assert (wrong["shape_outcome"], wrong["status"]) == ("silent-mismatch", "fail"), wrong
    assert wrong["run_shape"] == "batch=5,length=17"
    # max_pool1d's length, asked to be dynamic, is fixed at 8 in the graph.
    static = by[("max_pool1d", "inside")]
    assert (static["shape_outcome"], static["status"]) == ("silent-static", "fail"), static
    assert "length (input 0 axis 2) fixed at 8" in static["reason"]
    assert by[("max_pool1d", "below")]["reason"].startswith("no size below the export size 2")
