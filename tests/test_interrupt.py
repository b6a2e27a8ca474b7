"""Nothing lost on interrupt, through the real command line: real processes,
real signals. A run's verdicts and finished timing rounds are on disk as they
are known; Ctrl-C, SIGTERM (to the run or its process group) and kill -9 of the
run keep them, stop the worker, and ``--resume`` measures only what is missing."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from tests.helpers import DATA, read_rows, run_cli, start_cli

POSIX = pytest.mark.skipif(
    sys.platform == "win32", reason="process groups and SIGTERM/SIGKILL semantics are POSIX"
)
TINY = DATA / "tiny_cases.py"
# 2 groups (fp32, fp64) of eager and TorchScript, timed in 3 rounds of about 0.2 s
# a cell: long enough to interrupt between the first verdicts and the end.
RUN = [
    "run",
    "--case-file",
    str(TINY),
    "--suite",
    "tiny",
    "--case",
    "tiny_linear",
    "--device",
    "cpu",
    "--precision",
    "fp32,fp64",
    "--backend",
    "eager,torchscript",
    "--rounds",
    "3",
    "--time-budget",
    "0",
    "--min-time",
    "0.6",
    "--quiet",
]
CELLS = 4


def _records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]  # a line being written is not one yet
    return [json.loads(line) for line in lines if line.strip()]


def _start(out: Path, *extra: str) -> subprocess.Popen:
    """The run in a session of its own (so the test can signal its process group)."""
    return start_cli(
        *RUN, "--out", str(out), *extra, start_new_session=True, stderr=subprocess.PIPE, text=True
    )


def _wait_for(proc: subprocess.Popen, ready, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}; make it longer\n{proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} within {timeout:g}s")
        time.sleep(0.02)


def _worker_pids(out: Path) -> list[int]:
    log = out / "worker.log"
    text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
    return [int(pid) for pid in re.findall(r"-- worker (\d+) started", text)]


def _gone(pid: int, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _partial_rows(out: Path) -> list[dict]:
    return [r for r in read_rows(out) if r.get("timing_partial") is True]


def _resume(out: Path) -> subprocess.CompletedProcess:
    resumed = run_cli("run", "--resume", "--out", str(out), "--case-file", str(TINY), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    return resumed


def _assert_complete_without_duplicates(out: Path, kept_verdicts: set[str]) -> None:
    rows = read_rows(out)
    assert len(rows) == CELLS and all(r["status"] == "pass" for r in rows)
    assert not any(r.get("timing_partial") for r in rows)
    assert all(r["rounds"] == 3 for r in rows), [r["rounds"] for r in rows]
    # One line per cell: the partial rows were superseded and the file compacted.
    assert len(_records(out / "results.jsonl")) == CELLS
    # Each round of each cell measured once: a kept verdict's round 1 was not measured again.
    rounds = Counter((r["cell_id"], r["round"]) for r in _records(out / "rounds.jsonl"))
    assert set(rounds.values()) == {1}, rounds
    assert set(rounds) == {(r["cell_id"], i) for r in rows for i in range(3)}
    torchscript = [r for r in rows if r["backend"] == "torchscript"]
    assert all(r.get("speedup_pairs") for r in torchscript)  # paired with eager across sessions
    assert kept_verdicts <= {r["cell_id"] for r in rows}


@POSIX
@pytest.mark.slow
def test_ctrl_c_after_the_first_verdicts_keeps_them_and_resume_finishes_them(tmp_path):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for(proc, lambda: _partial_rows(out), "first verdict row")
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends the run
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: stopped during" in err and f"run --resume --out {out}" in err
    kept = read_rows(out)
    partial = _partial_rows(out)
    assert 0 < len(partial) and len(kept) < CELLS  # interrupted between first verdicts and the end
    assert all(r["status"] == "pass" and r["rounds"] >= 1 for r in partial)
    assert all(r["rounds_planned"] == 3 and r["latency_ms_median"] > 0 for r in partial)

    _resume(out)
    _assert_complete_without_duplicates(out, {r["cell_id"] for r in kept})


@pytest.mark.slow
@POSIX
def test_sigterm_to_the_run_group_stops_its_worker_and_the_report_names_partial_cells(tmp_path):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for(proc, lambda: _partial_rows(out) and _worker_pids(out), "first verdict row")
    workers = _worker_pids(out)
    os.killpg(proc.pid, signal.SIGTERM)  # the run's group; the worker has a group of its own
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "kept" in err and "--resume" in err
    assert all(_gone(pid) for pid in workers), "a worker outlived the run"
    partial = _partial_rows(out)
    assert partial and all(r["status"] == "pass" for r in partial)

    # Readers take the partial run and name its partial cells.
    report = run_cli("report", str(out))
    assert report.returncode == 0, report.stderr
    assert "timing partial" in report.stderr
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert f"timing partial for {len(partial)} cell(s)" in summary
    assert partial[0]["cell_id"] in summary
    assert "timing partial" in (out / "report.html").read_text(encoding="utf-8")


@POSIX
@pytest.mark.slow
def test_kill_9_of_the_run_keeps_verdicts_and_finished_rounds(tmp_path):
    out = tmp_path / "run"
    proc = _start(out)
    # Wait for a finished second round: it is on disk only in rounds.jsonl.
    _wait_for(
        proc,
        lambda: any(r["round"] == 1 for r in _records(out / "rounds.jsonl")),
        "finished second round",
    )
    workers = _worker_pids(out)
    proc.kill()  # SIGKILL to the run alone: no clean-up of any kind
    proc.communicate(timeout=30)
    assert all(_gone(pid) for pid in workers), "the worker went on without its run"
    kept = read_rows(out)
    assert kept and all(r["status"] == "pass" for r in kept) and _partial_rows(out)
    second = {r["cell_id"] for r in _records(out / "rounds.jsonl") if r["round"] == 1}
    assert second <= {r["cell_id"] for r in kept}  # a finished round's cell has its verdict row
    exported = run_cli(
        "export", str(out), "--format", "pytest-benchmark", "--out", str(tmp_path / "bench.json")
    )
    assert exported.returncode == 0, exported.stderr
    bench = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))["benchmarks"]
    assert sum(1 for b in bench if b["extra_info"].get("timing_partial")) == len(_partial_rows(out))
    baseline = tmp_path / "interrupted"
    shutil.copytree(out, baseline, ignore=shutil.ignore_patterns("run.lock"))

    _resume(out)
    _assert_complete_without_duplicates(out, {r["cell_id"] for r in kept})
    compared = run_cli("compare", str(baseline), str(out))
    assert compared.returncode == 0, compared.stderr
    assert "baseline: timing partial for" in (out / "compare.md").read_text(encoding="utf-8")
