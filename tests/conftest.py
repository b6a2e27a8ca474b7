import atexit
import dataclasses
import os
import shutil
import tempfile

import pytest

from tests.helpers import DATA, ROOT, quick_run, run_cli

# The suite never writes to the user's cache or config directory: a session-wide
# default here (session fixtures and subprocesses inherit it), a fresh cache per test below.
_SESSION_HOME = tempfile.mkdtemp(prefix="torchparity-tests-")
os.environ["TORCHPARITY_CACHE_DIR"] = os.path.join(_SESSION_HOME, "cache")
os.environ["TORCHPARITY_CONFIG_DIR"] = os.path.join(_SESSION_HOME, "config")
# A misspelled row column is an error here (the results writer checks every row
# against the declared columns; workers and CLI subprocesses inherit it).
os.environ["TORCHPARITY_STRICT_COLUMNS"] = "1"
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


EDGE_BACKENDS = ("eager", "onnxruntime", "export")


@pytest.fixture(scope="session")
def edge_run(tmp_path_factory):
    """One quick run of tests/data/edge_cases.py (a user's own models at their
    edges) on ``EDGE_BACKENDS``, its artifacts kept: (run directory, cache
    directory, the finished process). Shared by the blame and keyword tests."""
    base = tmp_path_factory.mktemp("edges")
    backends = ",".join(EDGE_BACKENDS)
    cache = base / "cache"
    proc = quick_run(
        DATA / "edge_cases.py", "edges", backends, base / "run", "--cache-dir", str(cache)
    )
    return base / "run", cache, proc


@pytest.fixture(scope="session")
def _native_build(tmp_path_factory):
    """The C++ runner, built once for the session into a cache root of its own."""
    from torchparity.backends import native_build

    if native_build.toolchain_missing():
        pytest.skip(native_build.toolchain_missing())
    return native_build.ensure_runner(tmp_path_factory.mktemp("native-cache-root"))


@pytest.fixture
def native_runner(_native_build, tmp_path):
    """The session's C++ runner (test_cpp_runner.py, the runtime language's
    end-to-end run), its sealed build directory copied into the test's cache
    roots (the default one, and ``tmp_path/cache`` for ``--cache-dir``), so
    the test's command lines find it built; ``directory`` is the default's copy."""
    from torchparity.backends import native_build

    name = _native_build.directory.name
    for root in (tmp_path / "cache", tmp_path / "user-cache"):
        copy = native_build.runner_root(root) / name
        shutil.copytree(_native_build.directory, copy)
    return dataclasses.replace(_native_build, directory=copy)


@pytest.fixture(scope="session")
def _js_cache_root(tmp_path_factory):
    """A cache root holding the JavaScript runners, installed once for the
    session (npm ci from the committed lock)."""
    from torchparity.backends import js_build

    if js_build.tools_missing():
        pytest.skip(js_build.tools_missing())
    root = tmp_path_factory.mktemp("js-cache-root")
    return root, js_build.ensure_installed(root)


@pytest.fixture
def js_runners(_js_cache_root, monkeypatch):
    """The session's JavaScript runners; the test's command lines use their
    cache root (``$TORCHPARITY_CACHE_DIR``), so they find them installed."""
    root, install = _js_cache_root
    monkeypatch.setenv("TORCHPARITY_CACHE_DIR", str(root))
    return install
