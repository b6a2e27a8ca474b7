import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def tiny_cases() -> Path:
    return DATA / "tiny_cases.py"


ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real command line in a real subprocess (``python -m harness``), of
    this checkout even when ``cwd`` is elsewhere (an installed copy may differ)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli


REPORT_CASES = DATA / "report_cases.py"
# report_demo: 3 cases x 3 devices (cpu runs; cuda and mps skip here) x 2 precisions.
SAMPLE_RUN_CELLS = 3 * 3 * 2


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> Path:
    """One real run of the report_demo suite, shared by the report tests
    (read-only: tests that change it work on a copy)."""
    out = tmp_path_factory.mktemp("sample") / "run"
    proc = run_cli("run", "--case-file", str(REPORT_CASES), "--suite", "report_demo",
                   "--precision", "fp32,fp16", "--min-time", "0.02", "--out", str(out), "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out
