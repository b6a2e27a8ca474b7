"""`torchparity run --suite ops`: op cells land in the same results as model
cells; ops limited to some precisions give skip rows with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import read_rows
from torchparity.cases.case import CASES, exact_in_every_precision, load_all, op_module


@pytest.mark.slow
def test_run_suite_ops_lands_op_rows(cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = cli(
        "run",
        "--suite",
        "ops",
        "--case",
        "neg",
        "--case",
        "bitwise_and",
        "--case",
        "sort_stable",
        "--case",
        "div_floor",
        "--device",
        "cpu",
        "--precision",
        "fp32,fp16",
        "--backend",
        "eager",
        "--min-time",
        "0.01",
        "--no-isolate",
        "--quiet",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(out)
    assert len(rows) == 8
    by = {(r["case"], r["precision"]): r for r in rows}
    assert all(r["kind"] == "op" and r["suite"] == "ops" for r in rows)
    for name in ("neg", "sort_stable", "div_floor"):
        for precision in ("fp32", "fp16"):
            row = by[(name, precision)]
            assert row["status"] == "pass", row
            assert row["drift_policy"] == "elementwise" and row["latency_ms_median"] > 0
    assert by[("bitwise_and", "fp32")]["status"] == "pass"
    skipped = by[("bitwise_and", "fp16")]
    assert skipped["status"] == "skip" and "fp32 only" in skipped["reason"]
    assert "neg" in (out / "results.csv").read_text("utf-8")


def test_op_samples_are_exact_in_every_precision() -> None:
    x = torch.tensor([0.1, -1e-6, float("nan"), 1e6, -0.0], dtype=torch.float64)
    (snapped,) = exact_in_every_precision((x,))
    finite = snapped[torch.isfinite(snapped)]
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        assert torch.equal(finite.to(dtype).double(), finite)
    assert torch.isnan(snapped[2]) and snapped[3] == 65280.0
    assert torch.signbit(snapped[4]) and snapped[1] == 0


def test_op_module_keeps_integer_dtypes_and_scripts() -> None:
    load_all([])
    module = op_module(CASES["div_floor"].extra["fn"], name="div_floor")
    a, b = torch.tensor([7, -7]), torch.tensor([2, 2])
    assert module(a, b).tolist() == [3, -4]
    assert torch.jit.script(module)(a, b).tolist() == [3, -4]
