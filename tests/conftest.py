import atexit
import os
import shutil
import tempfile

import pytest

from tests.helpers import DATA, ROOT, run_cli

# The suite never writes to the user's cache or config directory: a session-wide
# default here (session fixtures and subprocesses inherit it), a fresh cache per test below.
_SESSION_HOME = tempfile.mkdtemp(prefix="torchparity-tests-")
os.environ["TORCHPARITY_CACHE_DIR"] = os.path.join(_SESSION_HOME, "cache")
os.environ["TORCHPARITY_CONFIG_DIR"] = os.path.join(_SESSION_HOME, "config")
atexit.register(shutil.rmtree, _SESSION_HOME, True)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Each test starts with an empty default cache (a hit is never another test's)."""
    monkeypatch.setenv("TORCHPARITY_CACHE_DIR", str(tmp_path / "user-cache"))


__all__ = ["DATA", "ROOT", "run_cli"]


@pytest.fixture
def tiny_cases():
    return DATA / "tiny_cases.py"


@pytest.fixture
def cli():
    return run_cli


REPORT_CASES = DATA / "report_cases.py"
# report_demo: 3 cases x 3 devices (cpu runs; cuda and mps skip here) x 2 precisions.
SAMPLE_RUN_CELLS = 3 * 3 * 2


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory):
    """One real run of the report_demo suite, shared by the report tests
    (read-only: tests that change it work on a copy)."""
    out = tmp_path_factory.mktemp("sample") / "run"
    proc = run_cli(
        "run",
        "--case-file",
        str(REPORT_CASES),
        "--suite",
        "report_demo",
        "--precision",
        "fp32,fp16",
        "--min-time",
        "0.02",
        "--out",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    return out
