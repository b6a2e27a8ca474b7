"""Expectations with blame, through the command line: a new failure and an
unexpected pass both fail ``--strict``; ``--update-expectations`` rewrites
the file; multi-sample cells report their worst sample and replay it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA, ROOT
from torchparity.verdicts import blame, expectations

CASES = DATA / "expectation_cases.py"


def _run(path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "TORCHPARITY_TEST_EXPECTATIONS": str(path),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torchparity",
            "run",
            "--case-file",
            str(CASES),
            "--suite",
            "expect_demo",
            "--backend",
            "eager",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--min-time",
            "0.005",
            "--no-isolate",
            "--quiet",
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=300,
    )


def _rows(out: Path) -> dict[str, dict]:
    lines = (out / "results.jsonl").read_text("utf-8").splitlines()
    return {r["case"]: r for r in map(json.loads, lines)}


def _entries(path: Path) -> dict[str, dict]:
    return {e["case"]: e for e in json.loads(path.read_text("utf-8"))["entries"]}


@pytest.mark.slow
def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "expectations.json"
    proc = _run(path, tmp_path / "r1", "--strict")
    assert proc.returncode == 1, proc.stderr  # two new failures
    rows = _rows(tmp_path / "r1")
    assert rows["good"]["status"] == "pass" and "blame" not in rows["good"]
    assert rows["bad"]["status"] == "fail" and rows["bad"]["expectation"] == "new failure"
    assert rows["bad"]["blame"] == "pytorch" and rows["bad"]["blame_source"] == "rule"
    _check_multisample_row(rows["two_samples"], tmp_path / "r1", path)

    proc = _run(path, tmp_path / "r2", "--update-expectations")
    assert proc.returncode == 0, proc.stderr
    entries = _entries(path)
    assert set(entries) == {"bad", "two_samples"} and entries["bad"]["status"] == "fail"
    assert entries["bad"]["blame"] in blame.CATEGORIES

    proc = _run(path, tmp_path / "r3", "--strict")
    assert proc.returncode == 0, proc.stderr  # every failure expected
    rows = _rows(tmp_path / "r3")
    assert rows["bad"]["status"] == "xfail" and rows["bad"]["expectation"] == "expected"

    # A reviewed entry for a cell that passes: an unexpected pass fails --strict.
    data = json.loads(path.read_text("utf-8"))
    data["entries"].append({**entries["bad"], "case": "good", "blame": "exporter", "reason": "x"})
    path.write_text(json.dumps(data), encoding="utf-8")
    proc = _run(path, tmp_path / "r4", "--strict")
    assert proc.returncode == 1
    assert _rows(tmp_path / "r4")["good"]["expectation"] == "unexpected pass"
    assert "unexpected pass" in (tmp_path / "r4" / "summary.md").read_text("utf-8")

    proc = _run(path, tmp_path / "r5", "--update-expectations")
    assert proc.returncode == 0, proc.stderr
    assert set(_entries(path)) == {"bad", "two_samples"}


def test_malformed_blame_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text(
        json.dumps(
            {
                "entries": [
                    {
                        "case": "a",
                        "backend": "eager",
                        "precision": "fp32",
                        "status": "fail",
                        "blame": "gremlins",
                    }
                ]
            }
        ),
        "utf-8",
    )
    with pytest.raises(expectations.ExpectationsError, match="gremlins"):
        expectations.load(path)


@pytest.mark.parametrize(
    ("backend", "reason", "expected"),
    [
        (
            "onnxruntime",
            "prepare: DispatchError: No ONNX function found for prims.uniform",
            "exporter",
        ),
        (
            "onnxruntime",
            "prepare: NotImplementedError: CPUExecutionProvider has no torch.float16 kernel",
            "onnxruntime",
        ),
        ("compile", "vs eager: out: 3/9 elements outside atol", "inductor"),
        ("torchscript", "worst #0 [_op(<(5,) float32>)]: prepare: RuntimeError", "harness"),
        ("eager", "vs fp64 reference: out: 1/4 elements outside", "pytorch"),
        (
            "executorch",
            "prepare: NotImplementedError: the ExecuTorch runtime has no kernel for an operator",
            "executorch",
        ),
        (
            "executorch",
            "prepare: UserError: Could not guard on data-dependent expression",
            "pytorch",
        ),
        ("openvino", "vs fp64 reference: out: 2/8 elements outside", "openvino"),
    ],
)
def test_blame_rules(backend: str, reason: str, expected: str) -> None:
    assert blame.classify(backend, {"status": "fail", "reason": reason}) == expected


def _check_multisample_row(row: dict, run_dir: Path, path: Path) -> None:
    """A multi-sample cell reports its worst sample, saves it and replays it."""
    assert row["status"] == "fail" and row["samples"] == 2 and row["samples_fail"] == 1
    assert row["worst_sample"] == 1 and "linspace(3)" in row["reason"]
    assert "Non-pass cells by blame" in (run_dir / "summary.md").read_text("utf-8")
    command = row["reproducer"].split()
    assert command[:3] == ["python", "-m", "torchparity.cell.multisample"]
    env = {**os.environ, "TORCHPARITY_TEST_EXPECTATIONS": str(path), "PYTHONPATH": str(ROOT)}
    code = (
        "import sys; from torchparity.cases.case import load_plugin; "  # the case file is a plugin
        f"load_plugin(('file', {str(CASES)!r})); from torchparity.cell.multisample import main; "
        f"sys.exit(main([{command[3]!r}]))"
    )
    replay = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert replay.returncode == 1, replay.stderr
    assert "sample #1" in replay.stdout and "fail" in replay.stdout
