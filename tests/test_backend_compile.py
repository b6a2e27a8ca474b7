"""torch.compile backend: compile time in prepare_s, counters in the row,
recompilations detected, inductor's cache reused through --cache-dir."""

import pytest

from tests.backend_runs import DATA, TINY, explain, run_rows


@pytest.mark.slow
def test_inductor_compiles_in_prepare_and_matches_eager(tmp_path):
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
        "compile",
    )
    (row,) = rows
    assert row["status"] == "pass", explain(rows)
    assert row["backend_compiler"] == "inductor" and row["backend_graphs"] == 1
    assert row["backend_frames_compiled"] == 1 and row["backend_recompilations"] == 0
    assert row["backend_cache"] == "miss" and "backend_fallback" not in row


@pytest.mark.slow
def test_recompilations_are_counted(tmp_path):
    rows = run_rows(
        tmp_path / "run",
        "--case-file",
        str(DATA / "recompiling_cases.py"),
        "--suite",
        "recompiling",
        "--precision",
        "fp32",
        "--backend",
        "compile",
        "--backend-option",
        "compile.backend=eager",
    )
    (row,) = rows
    assert row["backend_compiler"] == "eager"
    assert row["backend_recompilations"] >= 1, explain(rows)


@pytest.mark.slow
def test_unsupported_modules_fall_back_and_say_so(tmp_path):
    # Dynamo refuses nn.GRU: the model runs eagerly, and the row says why.
    rows = run_rows(
        tmp_path / "run",
        "--suite",
        "models",
        "--case",
        "gru_classifier",
        "--precision",
        "fp32",
        "--backend",
        "compile",
        "--backend-option",
        "compile.backend=eager",
    )
    (row,) = rows
    assert row["status"] == "pass", explain(rows)
    assert row["backend_graphs"] == 0
    assert row["backend_fallback"].startswith("ran eagerly:") and "GRU" in row["backend_fallback"]


@pytest.mark.slow
def test_second_run_reuses_inductors_cache(tmp_path):
    cache = tmp_path / "cache"
    args = (
        "--suite",
        "smoke",
        "--case",
        "lenet",
        "--precision",
        "fp32",
        "--backend",
        "compile",
        "--cache-dir",
        str(cache),
    )
    (first,) = run_rows(tmp_path / "first", *args)
    (second,) = run_rows(tmp_path / "second", *args)
    assert first["status"] == second["status"] == "pass"
    assert (first["backend_cache"], second["backend_cache"]) == ("miss", "hit")


@pytest.mark.slow
def test_smoke_suite_fp32_cpu_within_tolerance(tmp_path):
    rows = run_rows(
        tmp_path / "run", "--suite", "smoke", "--precision", "fp32", "--backend", "compile"
    )
    assert {r["status"] for r in rows} == {"pass"}, explain(rows)
