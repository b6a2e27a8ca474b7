"""The pytest plugin (entry point ``pytest11``: ``torchparity``).

- the ``parity`` fixture: ``assert_parity`` (src/torchparity/testing.py) for the test;
- ``@pytest.mark.parity_known_failure(reason, backend=..., device=...,
  precision=..., link=...)``: the test's checks turn matching bad cells into
  ``xfail``, exactly like a case's ``KnownFailure`` records;
- ``pytest --parity-out DIR``: every check's rows go to the run directory DIR
  (env.json, results.jsonl; the reports rendered at the end of the session),
  which ``torchparity report`` and ``compare`` read like any run;
- with pytest-benchmark installed, every timed cell is also a pytest-benchmark
  benchmark (its samples as rounds), so ``--benchmark-autosave``,
  ``--benchmark-json`` and ``pytest-benchmark compare`` see the checks.

A test's checks get its name and marks once any module of the session has
imported ``torchparity.testing`` (or ``torchparity.testing``), when it uses the
fixture or a mark, or when the session has ``--parity-out``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Every pytest run in an environment with torchparity loads this plugin, so
# torch and the harness are imported only when a session uses them.

MARK = "parity_known_failure"
_SESSION = pytest.StashKey["ParitySession"]()
_MARKS = pytest.StashKey[tuple]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("torchparity", "torchparity parity checks")
    group.addoption(
        "--parity-out",
        metavar="DIR",
        default=None,
        help="collect every assert_parity check into the run directory DIR "
        "(read it with `torchparity report DIR`)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARK}(reason, backend='*', device='*', precision='*', link=''): cells of this test's "
        "parity checks matching the globs are xfail when they fail or error",
    )
    config.stash[_SESSION] = ParitySession(config)


class _BenchmarkNode:
    """What pytest-benchmark's ``Metadata`` reads from its fixture."""

    def __init__(self, identity: dict[str, Any], extra_info: dict[str, Any]) -> None:
        self.name, self.fullname = identity["name"], identity["fullname"]
        self.group, self.param, self.params = (
            identity["group"],
            identity["param"],
            identity["params"],
        )
        self.extra_info = extra_info
        self.cprofile_stats = None
        self.has_error = False


class ParitySession:
    """The checks of one pytest session: the run directory and pytest-benchmark."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        out = config.getoption("parity_out")
        self.run_dir = None
        if out:
            from torchparity._core.rundir import RunDir

            self.run_dir = RunDir(Path(out))
            if hasattr(config, "workerinput"):
                raise pytest.UsageError(
                    "--parity-out does not combine with pytest-xdist workers (-n)"
                )
            if self.run_dir.has_results():
                raise pytest.UsageError(
                    f"--parity-out {out} already holds results; choose another DIR"
                )
        self.env: dict[str, Any] = {}
        self.taken: set[str] = set()
        self.checks = 0
        self.cells = 0

    def wants(self, item: pytest.Item) -> bool:
        """Whether ``item`` may run checks (see the module's docstring)."""
        return (
            self.run_dir is not None
            or "torchparity.testing" in sys.modules
            or "parity" in getattr(item, "fixturenames", ())
            or bool(item.stash.get(_MARKS, ()))
        )

    def context(self, item: pytest.Item) -> Any:
        from torchparity._core import environment
        from torchparity.testing import CheckContext

        if not self.env:
            run_id = self.run_dir.path.name if self.run_dir else "pytest"
            self.env = {**environment.collect(), "run_id": run_id}
        return CheckContext(
            name=item.name,
            test=item.nodeid,
            known_failures=item.stash.get(_MARKS, ()),
            output_dir=self.run_dir.path if self.run_dir else None,
            env=self.env,
            record=self.record,
            taken=self.taken,
        )

    def record(self, result: Any) -> None:
        self.checks += 1
        self.cells += len(result.rows)
        if self.run_dir is not None:
            if not self.run_dir.env_json.is_file():
                self.run_dir.create().write_env(self.env)
            with self.run_dir.results_writer() as writer:
                for row in result.rows:
                    writer.append(row)
        self._benchmarks(result)

    def _benchmarks(self, result: Any) -> None:
        bs = getattr(self.config, "_benchmarksession", None)
        if bs is None or bs.disabled or bs.skip:
            return
        from pytest_benchmark.stats import Metadata

        from torchparity.report import export

        for row in result.rows:
            timing = export.timing_samples(row)
            if timing is None:
                continue
            samples, number = timing
            node = _BenchmarkNode(export.benchmark_identity(row), export.benchmark_extra_info(row))
            meta = Metadata(node, iterations=number, options={"timer": "torchparity"})
            for sample in samples:  # per-call seconds, as pytest-benchmark's rounds
                meta.stats.update(sample)
            bs.benchmarks.append(meta)

    def finish(self) -> None:
        if self.run_dir is None or not self.run_dir.has_results():
            return
        from torchparity.report import report

        report.render(self.run_dir.rows(), self.run_dir.path, self.run_dir.read_env())


def _marks(item: pytest.Item) -> tuple:
    found = list(item.iter_markers(MARK))
    if not found:
        return ()
    from torchparity.cases.case import KnownFailure

    marks = []
    for mark in found:
        try:
            marks.append(KnownFailure(*mark.args, **mark.kwargs))
        except TypeError as exc:
            raise pytest.UsageError(f"{item.nodeid}: bad @pytest.mark.{MARK}: {exc}") from None
    return tuple(marks)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.stash[_MARKS] = _marks(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    session = item.config.stash[_SESSION]
    if not session.wants(item):
        yield
        return
    from torchparity.testing import CONTEXT

    token = CONTEXT.set(session.context(item))
    try:
        yield
    finally:
        CONTEXT.reset(token)


def pytest_sessionfinish(session: pytest.Session) -> None:
    session.config.stash[_SESSION].finish()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    ps = config.stash[_SESSION]
    if ps.checks:
        where = (
            f" -> {ps.run_dir.path} (torchparity report {ps.run_dir.path})" if ps.run_dir else ""
        )
        terminalreporter.write_line(
            f"torchparity: {ps.checks} parity checks, {ps.cells} cells{where}"
        )


@pytest.fixture
def parity() -> Any:
    """``assert_parity`` for this test: ``parity(model, inputs, backends=[...])``."""
    from torchparity.testing import assert_parity

    return assert_parity
