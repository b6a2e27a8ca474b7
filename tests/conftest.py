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
        "--device",
        "cpu,cuda,mps",  # cuda and mps named: their skip rows are part of the sample
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


@pytest.fixture(scope="session")
def native_runner(tmp_path_factory):
    """The C++ runner, built once for the session into a fresh cache that every
    command line run by the tests shares (test_cpp_runner.py, the runtime
    language's end-to-end run)."""
    from torchparity.backends import native_build

    if native_build.toolchain_missing():
        pytest.skip(native_build.toolchain_missing())
    cache = tmp_path_factory.mktemp("native-cache")
    saved = os.environ.get(native_build.ENV_CACHE)
    os.environ[native_build.ENV_CACHE] = str(cache)
    try:
        yield native_build.ensure_runner()
    finally:
        if saved is None:
            os.environ.pop(native_build.ENV_CACHE, None)
        else:
            os.environ[native_build.ENV_CACHE] = saved
