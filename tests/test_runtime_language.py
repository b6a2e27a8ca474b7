"""Each row's runtime language and effective precision, end to end: set by the
cell path from the backend, grouped by language in the console table,
summary.md and report.html, and filled in for run directories written before
the columns existed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import DATA, read_rows, run_cli, write_env, write_rows
from torchparity.report.languages import with_language_columns

TINY = DATA / "tiny_cases.py"
LANGUAGE_BACKEND = DATA / "language_backend.py"
QUICK = ("--device", "cpu", "--min-time", "0.01", "--rounds", "1", "--no-isolate")


def _report(run: Path, out: Path) -> tuple[str, str]:
    """``torchparity report RUN --out OUT``: (report.html, summary.md)."""
    proc = run_cli("report", str(run), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return (
        (out / "report.html").read_text(encoding="utf-8"),
        (out / "summary.md").read_text(encoding="utf-8"),
    )


def _groups(page: str) -> list[str]:
    """The status matrix's language groups, in order."""
    matrix = page.split("id='status-matrix'")[1].split("</thead>")[0]
    return [part.split(">")[1].split("<")[0] for part in matrix.split("class='group'")[1:]]


@pytest.mark.slow
def test_python_and_cpp_backends_are_grouped_by_language(native_runner, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "run",
        *("--suite", "models", "--case", "mlp", "--precision", "fp32"),
        *("--backend", "torchscript-cpp,onnxruntime,eager"),
        *QUICK,
        *("--out", str(out)),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(out)
    assert {r["backend"]: r["runtime_language"] for r in rows} == {
        "eager": "Python",
        "onnxruntime": "Python",
        "torchscript-cpp": "C++",
    }
    assert {r["effective_precision"] for r in rows} == {"fp32"}
    assert {r["status"] for r in rows} == {"pass"}, [r["reason"] for r in rows]
    # The console table: each language above its backends' columns, Python first.
    header = proc.stdout.splitlines()[0].split()
    assert header == ["Python", "C++"], proc.stdout
    page, summary = _report(out, tmp_path / "report")
    assert _groups(page) == ["Python", "C++"]
    assert "<h3>By runtime language</h3>" in page
    assert "| Python | eager, onnxruntime | 2 | 2 |" in summary
    assert "| C++ | torchscript-cpp | 1 | 1 |" in summary
    assert "| C++ | infer | torchscript-cpp | fp32 | 1 |" in summary


def test_a_backend_that_ran_another_precision_says_so(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "run",
        *("--case-file", str(TINY), "--case-file", str(LANGUAGE_BACKEND)),
        *("--suite", "tiny", "--case", "tiny_linear", "--precision", "fp64,fp32"),
        *("--backend", "user-fp32-runtime,eager"),
        *QUICK,
        *("--out", str(out)),
    )
    assert proc.returncode == 0, proc.stderr
    rows = {(r["backend"], r["precision"]): r for r in read_rows(out)}
    plugin = rows["user-fp32-runtime", "fp64"]
    assert (plugin["runtime_language"], plugin["effective_precision"]) == ("Rust", "fp32")
    assert rows["user-fp32-runtime", "fp32"]["effective_precision"] == "fp32"
    assert rows["eager", "fp64"]["effective_precision"] == "fp64"  # the cell's, when not told
    assert "(ran fp32)" in proc.stdout and proc.stdout.splitlines()[0].split() == [
        "Python",
        "Rust",
    ]  # a plugin's language after the built-in ones
    page, summary = _report(out, tmp_path / "report")
    assert _groups(page) == ["Python", "Rust"]
    assert "| Rust | user-fp32-runtime | 2 |" in summary


def test_rows_written_before_the_columns_existed_still_render(tmp_path):
    cell = {"case": "c", "kind": "model", "suite": "s", "device": "cpu", "status": "pass"}
    write_rows(
        tmp_path / "old",
        [
            {**cell, "precision": "fp32", "backend": "eager", "reason": "", "cell_id": "1"},
            {
                **cell,
                "precision": "fp16",
                "backend": "openvino",
                "reason": "",
                "cell_id": "2",
                "backend_effective_precision": "bf16",  # only the backend's own column
            },
        ],
    )
    write_env(tmp_path / "old", {"host": "h", "os": "Linux", "torch": "2", "fingerprint": "f"})
    page, summary = _report(tmp_path / "old", tmp_path / "report")
    assert _groups(page) == ["unrecorded"]
    assert "| unrecorded | eager, openvino | 2 | 2 |" in summary
    # What ran, as far as an old row says: the backend's own note, else the cell's precision.
    filled = with_language_columns(read_rows(tmp_path / "old"))
    assert [(r["runtime_language"], r["effective_precision"]) for r in filled] == [
        ("unrecorded", "fp32"),
        ("unrecorded", "bf16"),
    ]
