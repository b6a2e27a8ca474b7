"""torch.export backend: the saved-and-loaded ExportedProgram runs and matches
eager; export failures are rows with the exporter's message; the cache."""

from pathlib import Path

import pytest

from tests.backend_runs import TINY, UNEXPORTABLE, by_cell, explain, run_rows


def test_smoke_suite_fp32_cpu_within_tolerance(tmp_path):
    rows = run_rows(
        tmp_path / "run", "--suite", "smoke", "--precision", "fp32", "--backend", "export"
    )
    assert len(rows) == 3
    assert {r["status"] for r in rows} == {"pass"}, explain(rows)
    assert all(r["eager_max_abs_diff"] < 1e-5 for r in rows)


@pytest.mark.slow
def test_nested_outputs_come_back_in_eager_structure(tmp_path):
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
        "eager,export",
    )
    cells = by_cell(rows)
    eager, export = cells["tiny_heads", "fp32", "eager"], cells["tiny_heads", "fp32", "export"]
    assert export["status"] == "pass", explain(rows)
    assert export["leaf_names"] == eager["leaf_names"]
    assert export["output_digest"] == eager["output_digest"]


@pytest.mark.slow
def test_unexportable_model_is_an_error_row(tmp_path):
    rows = run_rows(
        tmp_path / "run",
        "--case-file",
        str(UNEXPORTABLE),
        "--suite",
        "unexportable",
        "--precision",
        "fp32",
        "--backend",
        "export,torchscript",
    )
    cells = by_cell(rows)
    row = cells["data_dependent_branch", "fp32", "export"]
    assert row["status"] == "error" and row["error_stage"] == "prepare"
    assert "data-dependent" in row["reason"], row["reason"]
    # Scripting keeps Python control flow, so the same model is fine there.
    assert cells["data_dependent_branch", "fp32", "torchscript"]["status"] == "pass"


@pytest.mark.slow  # the onnxruntime test covers hits and rebuilt entries by default
def test_second_run_hits_the_cache(tmp_path):
    cache = tmp_path / "cache"
    args = (
        "--suite",
        "smoke",
        "--case",
        "attention_block",
        "--precision",
        "fp32",
        "--backend",
        "export",
        "--cache-dir",
        str(cache),
    )
    (first,) = run_rows(tmp_path / "first", *args)
    (second,) = run_rows(tmp_path / "second", *args)
    assert first["status"] == second["status"] == "pass"
    assert (first["backend_cache"], second["backend_cache"]) == ("miss", "hit")
    assert second["output_digest"] == first["output_digest"]
    assert len(list(Path(cache, "artifacts", "export").glob("*.pt2"))) == 1
    (uncached,) = run_rows(tmp_path / "uncached", *args, "--no-cache")
    assert uncached["status"] == "pass" and uncached["backend_cache"] == "off"
    assert uncached["output_digest"] == first["output_digest"]


@pytest.mark.slow
def test_models_suite_fp32_cpu(tmp_path):
    rows = run_rows(
        tmp_path / "run", "--suite", "models", "--precision", "fp32", "--backend", "export"
    )
    assert {r["status"] for r in rows} == {"pass"}, explain(rows)
