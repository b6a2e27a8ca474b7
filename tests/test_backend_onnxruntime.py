"""ONNX Runtime backends (dynamo and legacy exporters): real exports, real
InferenceSessions; options recorded; export failures as rows; the cache."""

from pathlib import Path

import pytest

from tests.backend_runs import UNEXPORTABLE, by_cell, explain, run_rows


def test_smoke_suite_fp32_cpu_within_tolerance(tmp_path):
    rows = run_rows(
        tmp_path / "run",
        "--suite",
        "smoke",
        "--precision",
        "fp32",
        "--backend",
        "onnxruntime,onnxruntime-legacy",
    )
    assert len(rows) == 3 * 2
    assert {r["status"] for r in rows} == {"pass"}, explain(rows)
    for r in rows:
        assert r["eager_max_abs_diff"] < 1e-4
        assert r["backend_exporter"] == (
            "dynamo" if r["backend"] == "onnxruntime" else "torchscript"
        )
        assert r["backend_ort_provider"] == "CPUExecutionProvider"
        assert r["backend_ort_graph_optimization"] == "all"
        assert r["backend_ort_intra_op_threads"] >= 1 and r["backend_ort_inter_op_threads"] >= 1
        assert (
            r["backend_ort_allow_spinning"] == 0
        )  # pool threads would spin into the next timed block
        assert r["backend_opset"] >= 9


def test_options_reach_the_session(tmp_path):
    rows = run_rows(
        tmp_path / "run",
        "--suite",
        "smoke",
        "--case",
        "mlp",
        "--precision",
        "fp32",
        "--backend",
        "onnxruntime-legacy",
        "--backend-option",
        "onnxruntime-legacy.opset=14",
        "--backend-option",
        "onnxruntime-legacy.graph_optimization=disable",
        "--backend-option",
        "onnxruntime-legacy.intra_op_threads=1",
        "--backend-option",
        "onnxruntime-legacy.allow_spinning=1",
    )
    (row,) = rows
    assert row["status"] == "pass", explain(rows)
    assert row["backend_opset"] == 14
    assert row["backend_ort_graph_optimization"] == "disable"
    assert row["backend_ort_intra_op_threads"] == 1
    assert row["backend_ort_allow_spinning"] == 1


@pytest.mark.slow
def test_unexportable_model_is_an_error_row_with_the_exporters_message(tmp_path):
    rows = run_rows(
        tmp_path / "run",
        "--case-file",
        str(UNEXPORTABLE),
        "--suite",
        "unexportable",
        "--precision",
        "fp32",
        "--backend",
        "eager,onnxruntime",
    )
    cells = by_cell(rows)
    assert cells["data_dependent_branch", "fp32", "eager"]["status"] == "pass"
    row = cells["data_dependent_branch", "fp32", "onnxruntime"]
    assert row["status"] == "error" and row["error_stage"] == "prepare"
    # The root cause, not the exporter's "step 1/3 ... Next steps:" wrapper.
    assert "data-dependent" in row["reason"], row["reason"]
    assert "Next steps" not in row["reason"] and "\x1b[" not in row["reason"]
    assert "Failed to export the model" in row["traceback"]


@pytest.mark.slow
def test_bf16_says_why_it_cannot_run(tmp_path):
    rows = run_rows(
        tmp_path / "run",
        "--suite",
        "smoke",
        "--case",
        "mlp",
        "--precision",
        "bf16",
        "--backend",
        "onnxruntime",
    )
    (row,) = rows
    # ONNX Runtime's CPU provider has no bf16 Gemm: a known limitation of the built-in
    # suites (xfail), whose reason still names the dtype and the op.
    assert row["status"] == "xfail", explain(rows)
    assert "CPUExecutionProvider has no torch.bfloat16 kernel" in row["reason"]
    assert "Gemm" in row["reason"]


@pytest.mark.slow
def test_second_run_hits_the_cache_and_corrupt_entries_are_rebuilt(tmp_path):
    cache = tmp_path / "cache"
    args = (
        "--suite",
        "smoke",
        "--case",
        "lenet",
        "--precision",
        "fp32",
        "--backend",
        "onnxruntime",
        "--cache-dir",
        str(cache),
    )
    (first,) = run_rows(tmp_path / "first", *args)
    (second,) = run_rows(tmp_path / "second", *args)
    assert first["status"] == second["status"] == "pass"
    assert (first["backend_cache"], second["backend_cache"]) == ("miss", "hit")
    assert second["output_digest"] == first["output_digest"]
    (entry,) = Path(cache, "artifacts", "onnxruntime").glob("*.onnx")
    entry.write_bytes(b"not an onnx model")  # a torn write or disk corruption
    (third,) = run_rows(tmp_path / "third", *args)
    assert third["status"] == "pass" and third["backend_cache"].startswith("rebuilt")
    assert third["output_digest"] == first["output_digest"]


@pytest.mark.slow
def test_models_suite_fp32_cpu(tmp_path):
    rows = run_rows(
        tmp_path / "run",
        "--suite",
        "models",
        "--precision",
        "fp32",
        "--backend",
        "onnxruntime,onnxruntime-legacy",
    )
    passed = [r for r in rows if r["status"] == "pass"]
    assert len(passed) >= 18, explain(rows)
    assert all(r["reason"] for r in rows if r["status"] != "pass")


def test_an_output_dtype_other_than_eager_s_fails(tmp_path):
    """fp16: eager's sum overflows to inf; the ONNX graph ends in a FLOAT
    output, so its sum does not: the path did not run fp16 end to end."""
    from tests.helpers import DATA

    rows = run_rows(
        tmp_path / "run",
        *("--case-file", str(DATA / "dtype_cases.py"), "--suite", "dtype-probe"),
        *("--case", "fp16_overflow_sum", "--precision", "fp16", "--rounds", "1"),
        *("--backend", "eager,onnxruntime"),
    )
    cells = by_cell(rows)
    eager = cells["fp16_overflow_sum", "fp16", "eager"]
    assert eager["status"] == "fail" and eager["output_dtype"] == "float16", explain(rows)
    ort = cells["fp16_overflow_sum", "fp16", "onnxruntime"]
    assert ort["status"] == "fail" and ort["output_dtype"] == "float32", explain(rows)
    assert "output dtype float32 where eager at fp16 returns float16" in ort["reason"]
    assert ort["blame"] == "exporter"
