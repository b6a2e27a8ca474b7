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


@pytest.mark.parametrize(
    ("python_diff", "expected"),
    [
        (0.0, "exporter"),  # the same numbers as Python ONNX Runtime: the graph's
        (1e-7, "exporter"),
        (4e-3, "onnxruntime"),  # the runner itself is further off: its kernels
        (None, "exporter"),  # no Python comparison recorded
    ],
)
def test_a_javascript_runner_s_numeric_fail_is_blamed_by_its_distance_to_python(
    python_diff, expected
) -> None:
    row = {"status": "fail", "reason": "['y']: relative L2 error 3e-3 > 1e-5"}
    row |= {"eager_max_abs_diff": 5e-3, "backend_python_max_abs_diff": python_diff}
    for backend in ("onnxruntime-node", "onnxruntime-web"):
        assert blame.classify(backend, row) == expected


@pytest.mark.parametrize(
    ("reference_agrees", "failed", "expected"),
    [
        (False, "agreement", "quantization"),  # the quantized reference loses the task too
        (True, "agreement", "executorch"),  # only the runtime's outputs lose it
        (False, "fidelity,agreement", "executorch"),  # and it does not compute the program
    ],
)
def test_an_int8_agreement_fail_is_the_recipe_s_when_the_reference_fails_too(
    reference_agrees, failed, expected
) -> None:
    row = {"status": "fail", "reason": "agreement failed: y: cosine 0 < 0.99 against fp32 eager"}
    row |= {"int8_failed": failed, "quant_reference_agrees": reference_agrees}
    assert blame.classify("executorch", row) == expected
    assert blame.classify("onnxruntime", row) == (
        "quantization" if expected == "quantization" else "exporter"
    )
