"""TorchScript backends (script and trace routes): the saved-and-loaded
artifact runs and matches eager; options, nested outputs and the cache."""

import pytest

from tests.backend_runs import TINY, by_cell, explain, run_rows


def test_smoke_suite_fp32_cpu_within_tolerance(tmp_path):
    rows = run_rows(
        tmp_path / "run",
        "--suite",
        "smoke",
        "--precision",
        "fp32",
        "--backend",
        "torchscript,torchscript-trace",
    )
    assert len(rows) == 3 * 2
    assert {r["status"] for r in rows} == {"pass"}, explain(rows)
    for r in rows:
        assert r["eager_max_abs_diff"] < 1e-5
        assert r["backend_route"] == ("trace" if r["backend"].endswith("trace") else "script")
        assert r["backend_cache"] == "miss" and r["prepare_s"] > 0


def test_freeze_and_optimize_options(tmp_path):
    rows = run_rows(
        tmp_path / "run",
        "--suite",
        "smoke",
        "--case",
        "mlp",
        "--precision",
        "fp32",
        "--backend",
        "torchscript,torchscript-trace",
        "--backend-option",
        "torchscript.freeze=true",
        "--backend-option",
        "torchscript-trace.optimize=true",
    )
    cells = by_cell(rows)
    script, trace = cells["mlp", "fp32", "torchscript"], cells["mlp", "fp32", "torchscript-trace"]
    assert script["status"] == trace["status"] == "pass", explain(rows)
    assert script["backend_frozen"] and not script["backend_optimized_for_inference"]
    assert trace["backend_frozen"] and trace["backend_optimized_for_inference"]


def test_nested_outputs_come_back_in_eager_structure(tmp_path):
    # tiny_heads returns a dataclass holding a dict: tracing sees through the
    # flattening wrapper; scripting cannot compile a dataclass (a finding).
    rows = run_rows(
        tmp_path / "run",
        "--case-file",
        str(TINY),
        "--suite",
        "tiny",
        "--case",
        "tiny_heads",
        "--precision",
        "fp32",
        "--backend",
        "eager,torchscript,torchscript-trace",
    )
    cells = by_cell(rows)
    eager, trace = (
        cells["tiny_heads", "fp32", "eager"],
        cells["tiny_heads", "fp32", "torchscript-trace"],
    )
    assert trace["status"] == "pass", explain(rows)
    assert (
        trace["leaf_names"]
        == eager["leaf_names"]
        == [".first", ".second['b']", ".second['argmax']"]
    )
    assert trace["output_digest"] == eager["output_digest"]
    script = cells["tiny_heads", "fp32", "torchscript"]
    assert script["status"] == "error" and script["error_stage"] == "prepare"
    assert "Pair" in script["reason"] or "dataclass" in script["reason"].lower(), script["reason"]


@pytest.mark.slow
def test_models_suite_fp32_cpu(tmp_path):
    rows = run_rows(
        tmp_path / "run",
        "--suite",
        "models",
        "--precision",
        "fp32",
        "--backend",
        "torchscript,torchscript-trace",
    )
    passed = [r for r in rows if r["status"] == "pass"]
    assert len(passed) >= 20, explain(rows)
    assert all(r["reason"] for r in rows if r["status"] != "pass")
