"""Isolation, streaming and resume, through the real command line."""

import json
import signal
import sys
import time

import pandas as pd
import pytest

from tests.helpers import DATA, read_rows, run_cli, start_cli


def test_every_fault_is_one_row_and_the_run_completes(cli, tmp_path):
    """Each fault is every backend's row of its case, decided by one worker's
    death: the case's own forward crashed or hung in eager, at the reference."""
    out = tmp_path / "faults"
    proc = cli(
        "run",
        "--case-file",
        str(DATA / "fault_cases.py"),
        "--suite",
        "faults",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--backend",
        "eager,torchscript-trace",
        "--timeout",
        "5",
        "--out",
        str(out),
        "--min-time",
        "0.01",
    )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 5 * 2
    backends = ("eager", "torchscript-trace")
    assert set(frame.groupby("case").backend.apply(frozenset)) == {frozenset(backends)}
    frame = frame.set_index(["case", "backend"])
    for backend in backends:
        abort, segfault = frame.loc["fault_abort", backend], frame.loc["fault_segfault", backend]
        assert abort.status == "crash" and segfault.status == "crash"
        if sys.platform != "win32":
            assert "SIGABRT" in abort.reason and "SIGSEGV" in segfault.reason
        hang = frame.loc["fault_hang", backend]
        assert hang.status == "timeout" and "no result within 10s" in hang.reason  # 2 cells x 5 s
        for row in (abort, segfault, hang):
            assert (row.blame, row.error_stage) == ("case", "reference"), dict(row)
            assert row.reason.startswith("reference: the case's own forward in eager at fp64")
        assert frame.loc["fault_constructor", backend].status == "error"
        assert "cannot build this model" in frame.loc["fault_constructor", backend].reason
        assert frame.loc["fault_healthy", backend].status == "pass"  # a replaced worker carries on
    # Decided once: one worker died per faulty case (3), not once more per backend.
    log = (out / "worker.log").read_text(encoding="utf-8")
    assert log.count(" started\n") == 1 + 3, log[-2000:]


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@pytest.mark.slow
def test_killed_run_resumes_without_duplicates(tiny_cases, tmp_path):
    out = tmp_path / "run"
    proc = start_cli(
        "run",
        "--case-file",
        str(tiny_cases),
        "--suite",
        "tiny",
        "--out",
        str(out),
        "--min-time",
        "0.3",
        "--quiet",
    )
    results = out / "results.jsonl"
    deadline = time.monotonic() + 120
    while len(_lines(results)) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.fail("the run finished before it could be killed; make it longer")
    proc.send_signal(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
    proc.wait(30)
    partial = _lines(results)
    assert 3 <= len(partial) < 24
    with open(results, "a", encoding="utf-8") as fh:
        fh.write('{"cell_id": "torn')  # as if killed mid-write
    resumed = run_cli(
        "run", "--resume", "--out", str(out), "--case-file", str(tiny_cases), "--quiet"
    )
    assert resumed.returncode == 0, resumed.stderr
    ids = [r["cell_id"] for r in read_rows(out)]
    assert len(ids) == 24 and len(set(ids)) == 24
    assert ids[: len(partial)] == [json.loads(line)["cell_id"] for line in partial]
    assert len(pd.read_csv(out / "results.csv")) == 24
    again = run_cli("run", "--resume", "--out", str(out), "--case-file", str(tiny_cases), "--quiet")
    assert again.returncode == 0 and len(_lines(results)) == 24  # nothing left to do


@pytest.mark.slow
def test_run_refuses_to_overwrite_results(cli, tiny_cases, tmp_path):
    out = tmp_path / "run"
    args = [
        "run",
        "--case-file",
        str(tiny_cases),
        "--suite",
        "tiny",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--out",
        str(out),
        "--no-isolate",
        "--quiet",
        "--min-time",
        "0.01",
    ]
    assert cli(*args).returncode == 0
    second = cli(*args)
    assert second.returncode == 2 and "use --resume" in second.stderr


@pytest.mark.slow
def test_peak_memory_and_threads_are_recorded(cli, tiny_cases, tmp_path):
    out = tmp_path / "run"
    proc = cli(
        "run",
        "--case-file",
        str(tiny_cases),
        "--suite",
        "tiny",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--out",
        str(out),
        "--threads",
        "1",
        "--quiet",
        "--min-time",
        "0.01",
    )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out / "results.csv")
    assert (frame.torch_threads == 1).all()
    assert frame.peak_mem_mb.notna().all() and (frame.peak_mem_mb >= 0).all()
