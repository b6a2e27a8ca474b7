"""Localization through the command line: `run` localizes failing model cells
(or every model cell with --localize), `explain` localizes one cell of a run on
demand; the culprit is the layer where a divergence was planted
(benchmarks/planted_cases.py), for each backend family."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import pytest

from tests.backend_runs import by_cell, explain, run_rows
from tests.helpers import ROOT, run_cli
from torchparity._core.rundir import RunDir

PLANTED = str(ROOT / "benchmarks" / "planted_cases.py")
CELL = ("planted_overflow", "fp16", "eager")


def _table(run_dir: Path, cell_id: str) -> list[dict[str, str]]:
    path = RunDir(run_dir).localization_file(cell_id, ".csv")
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _record(run_dir: Path, cell_id: str) -> dict:
    return json.loads(
        RunDir(run_dir).localization_file(cell_id, ".json").read_text(encoding="utf-8")
    )


def _culprits(table: list[dict[str, str]]) -> list[str]:
    return [r["module"] for r in table if r["culprit"] == "True"]


@pytest.fixture(scope="module")
def overflow_run(tmp_path_factory) -> tuple[Path, list[dict]]:
    """planted_overflow at eager fp16 (fails: exp overflows fp16 in `pool`) and fp32 (passes)."""
    out = tmp_path_factory.mktemp("localize") / "run"
    rows = run_rows(
        out,
        "--case-file",
        PLANTED,
        "--suite",
        "planted",
        "--case",
        "planted_overflow",
        "--backend",
        "eager",
        "--precision",
        "fp16,fp32",
        "--threads",
        "1",
    )
    return out, rows


def test_run_localizes_a_failing_model_cell_and_reports_it(overflow_run):
    out, rows = overflow_run
    cells = by_cell(rows)
    failing, passing = cells[CELL], cells[("planted_overflow", "fp32", "eager")]
    assert failing["status"] == "fail" and failing["culprit"] == "pool", explain(rows)
    assert passing["status"] == "pass" and "culprit" not in passing  # auto: failing cells only
    table = _table(out, failing["cell_id"])
    assert _culprits(table) == ["pool"]
    by_module = {r["module"]: r for r in table}
    assert list(by_module)[:4] == [
        "features.0",
        "features.1",
        "features.2",
        "norm",
    ]  # completion order
    assert float(by_module["norm"]["iso_share"]) < 1 and float(by_module["norm"]["acc_share"]) < 1
    assert by_module["pool"]["iso_share"] == "inf" and "NaN/inf" in by_module["pool"]["note"]
    assert by_module["pool"]["op"] == "NaiveLogSumExp" and by_module["pool"]["shape"] == "[8, 8]"
    # downstream layers are fine alone: only their upstream values were wrong
    assert float(by_module["head.0"]["iso_share"]) < 1 and by_module["head.0"]["acc_share"] == "inf"
    page = RunDir(out).report_html.read_text(encoding="utf-8")
    assert "Where it diverges" in page and "NaiveLogSumExp" in page


def test_the_reproducer_runs_the_culprit_alone_and_diverges(overflow_run, tmp_path):
    out, rows = overflow_run
    record = _record(out, by_cell(rows)[CELL]["cell_id"])
    repro = record["reproducer"]
    assert repro["case"] == "planted_overflow.pool" and repro["inputs"].endswith(".npz")
    args = shlex.split(repro["command"])[2:]  # after "torchparity run"
    args = [str(RunDir(out).localization_dir / a) if a.endswith("-repro.py") else a for a in args]
    (row,) = run_rows(tmp_path / "repro", *args, "--no-localize")
    assert row["case"] == "planted_overflow.pool" and row["status"] == "fail", explain([row])
    assert (
        "culprit" not in row and not RunDir(tmp_path / "repro").localization_dir.exists()
    )  # --no-localize


@pytest.mark.parametrize(
    "backend, note",
    [
        ("export", None),
        ("torchscript", "not tapped"),  # a scripted graph runs no hooks: isolated errors only
    ],
)
@pytest.mark.slow
def test_explain_names_the_planted_layer_on_graph_backends(overflow_run, backend, note):
    out, _ = overflow_run
    proc = run_cli(
        "explain",
        str(out),
        "--case",
        "planted_overflow",
        "--backend",
        backend,
        "--precision",
        "fp16",
        "--case-file",
        PLANTED,
    )
    assert proc.returncode == 0, proc.stderr
    assert "culprit pool (NaiveLogSumExp)" in proc.stdout
    cell_id = f"planted_overflow|cpu|fp16|{backend}"
    table, record = _table(out, cell_id), _record(out, cell_id)
    assert _culprits(table) == ["pool"] and record["culprit"] == "pool"
    if note:
        assert any(note in n for n in record["notes"]) and table[0]["acc_share"] == ""
    else:  # the exported graph's taps give accumulated errors
        assert float(table[0]["acc_share"]) < 1 and record["tapped_rel_l2"] == "inf"


def test_run_and_explain_with_a_plugin_backend_that_perturbs_one_submodule(tmp_path):
    out = tmp_path / "run"
    rows = run_rows(
        out,
        "--case-file",
        PLANTED,
        "--suite",
        "planted",
        "--case",
        "planted_logaddexp",
        "--backend",
        "perturb",
        "--backend-option",
        "perturb.target=features.2",
        "--precision",
        "fp32",
        "--threads",
        "1",
    )
    (row,) = rows
    assert row["status"] == "fail" and row["culprit"] == "features.2", explain(rows)
    proc = run_cli(
        "explain",
        str(out),
        "--case",
        "planted_logaddexp",
        "--backend",
        "perturb",
        "--precision",
        "fp32",
        "--case-file",
        PLANTED,
    )
    assert proc.returncode == 0, proc.stderr
    assert "culprit features.2 (Linear)" in proc.stdout
    table = _table(out, row["cell_id"])
    assert _culprits(table) == ["features.2"]
    assert float(table[0]["iso_share"]) < 1 and float(table[2]["iso_share"]) > 1


def test_localize_all_localizes_passing_model_cells(tmp_path):
    rows = run_rows(
        tmp_path / "all",
        "--case-file",
        PLANTED,
        "--suite",
        "planted",
        "--case",
        "planted_overflow",
        "--precision",
        "fp32",
        "--localize",
        "--threads",
        "1",
    )
    (row,) = rows
    assert row["status"] == "pass" and row["culprit"] == "" and row["localization_file"], explain(
        rows
    )
    assert _culprits(_table(tmp_path / "all", row["cell_id"])) == []


@pytest.mark.slow
def test_explain_onnxruntime_names_the_exporters_logaddexp(tmp_path):
    out = tmp_path / "run"
    rows = run_rows(
        out,
        "--case-file",
        PLANTED,
        "--suite",
        "planted",
        "--case",
        "planted_logaddexp",
        "--backend",
        "onnxruntime",
        "--precision",
        "fp32",
        "--threads",
        "1",
    )
    (row,) = rows
    assert row["status"] == "fail" and row["culprit"] == "gate", explain(rows)
    table = _table(out, row["cell_id"])
    assert float(table[0]["acc_share"]) < 1  # the ONNX graph's taps give accumulated errors


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["compile", "torchscript-trace", "aoti"])
def test_explain_taps_other_backends(overflow_run, backend):
    out, _ = overflow_run
    proc = run_cli(
        "explain",
        str(out),
        "--case",
        "planted_overflow",
        "--backend",
        backend,
        "--precision",
        "fp16",
        "--case-file",
        PLANTED,
    )
    if proc.returncode == 2 and "cannot run here" in proc.stderr:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 0, proc.stderr
    table = _table(out, f"planted_overflow|cpu|fp16|{backend}")
    assert all(r["acc_share"] != "" for r in table)  # taps worked
    # torch.compile and AOTInductor compute fp16 exp in fp32 and do not overflow
    assert _culprits(table) == ([] if backend in ("compile", "aoti") else ["pool"])


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["explain", "{tmp}", "--case", "mlp", "--backend", "eager", "--precision", "fp16"],
            "not a run directory",
        ),
        (
            [
                "explain",
                "{run}",
                "--case",
                "planted_overflow",
                "--backend",
                "eager",
                "--precision",
                "fp16",
            ],
            "unknown case 'planted_overflow'; closest:",
        ),
        (
            ["explain", "{run}", "--case", "add", "--backend", "eager", "--precision", "fp32"],
            "is an op",
        ),
    ],
)
def test_explain_bad_input_is_one_line_exit_2(overflow_run, tmp_path, args, expected):
    out, _ = overflow_run
    proc = run_cli(*[a.format(tmp=tmp_path, run=out) for a in args])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
