"""Blame names the right party, through the command line: a case that fails
to build, or whose input factory is wrong, is blamed ``case`` on every
backend; a missing library is ``environment``; the console counts them."""

from __future__ import annotations

import pytest

from tests.conftest import DATA
from tests.helpers import quick_run, read_rows
from torchparity.verdicts import blame

BACKENDS = ("eager", "torchscript", "export", "onnxruntime")


def test_a_case_failure_is_the_case_s_on_every_backend(tmp_path) -> None:
    out = tmp_path / "run"
    proc = quick_run(DATA / "blame_cases.py", "blame", ",".join(BACKENDS), out)
    assert proc.returncode == 0, proc.stderr  # findings, not a failed run
    rows = read_rows(out)
    assert len(rows) == 3 * len(BACKENDS)
    by_case: dict[str, set[str]] = {}
    for row in rows:
        assert row["status"] == "error", row
        by_case.setdefault(row["case"], set()).add(row["blame"])
    assert by_case == {
        "misspelt_module": {"case"},
        "bad_input_factory": {"case"},
        "missing_dependency": {"environment"},
    }
    assert "blame: 8 case, 4 environment" in proc.stdout


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"status": "error", "error_stage": "build", "error_type": "AttributeError"}, "case"),
        ({"status": "error", "error_stage": "reference", "error_type": "RuntimeError"}, "case"),
        ({"status": "error", "error_stage": "compare", "error_type": "NothingToCompare"}, "case"),
        (
            {"status": "error", "error_stage": "prepare", "error_type": "ModuleNotFoundError"},
            "environment",
        ),
        (
            {"status": "skip", "reason": "onnxruntime is not installed (No module named x)"},
            "environment",
        ),
        # A graph that lost an output at the call stays the backend's.
        ({"status": "error", "error_stage": "call", "error_type": "NothingToCompare"}, "exporter"),
    ],
)
def test_stage_and_type_rules(row: dict, expected: str) -> None:
    assert blame.classify("onnxruntime", row) == expected
