"""The pytest plugin as a user meets it: user-style test files run by pytester,
their --parity-out run directory read by `report`, their timings read by the
real `pytest-benchmark compare`."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import ROOT, read_rows
from torchparity.cli import main

pytest_plugins = ["pytester"]


def plugin_args() -> list[str]:
    """Load the plugin by module when this environment's install predates its entry point."""
    installed = any(
        ep.value == "torchparity.pytest_plugin"
        for ep in importlib.metadata.entry_points(group="pytest11")
    )
    return [] if installed else ["-p", "torchparity.pytest_plugin"]


def readme_pytest_example() -> str:
    """The Python block of the README's pytest section, verbatim."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Parity checks in your own pytest suite") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_pytest_example_passes_and_its_run_directory_reports(
    pytester, tmp_path, monkeypatch
):
    code = readme_pytest_example()
    assert len(code.strip().splitlines()) <= 10
    pytester.makepyfile(test_readme_example=code)
    out = tmp_path / "parity"
    # A subprocess: an in-process run would drop the modules it imported (numpy.fft,
    # torch's exporter) from sys.modules, and extension modules cannot load twice.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    result = pytester.runpytest_subprocess(
        *plugin_args(), "--parity-out", str(out), "-p", "no:cacheprovider", timeout=600
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["torchparity: 1 parity checks, 6 cells -> *"])

    assert main(["report", str(out)]) == 0
    rows = {(r["backend"], r["precision"]): r for r in read_rows(out)}
    assert len(rows) == 6 and {r["case"] for r in rows.values()} == {"test_mlp_deploys"}
    assert rows["onnxruntime", "bf16"]["status"] == "xfail"
    assert "no bf16 kernels" in rows["onnxruntime", "bf16"]["reason"]
    assert {r["status"] for k, r in rows.items() if k != ("onnxruntime", "bf16")} == {"pass"}
    assert (out / "report.html").is_file() and (out / "results.csv").is_file()


USER_TESTS = '''
    import pytest
    import torch

    from torchparity.testing import assert_parity


    class ScriptedDrift(torch.nn.Module):
        """Right in eager, off by 1e-2 when compiled by TorchScript: a planted divergence."""

        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(8, 4)

        def forward(self, x):
            y = self.linear(x)
            if torch.jit.is_scripting():
                y = y + 0.01
            return y


    def test_linear_passes(parity):
        torch.manual_seed(0)
        parity(torch.nn.Linear(8, 4), torch.randn(4, 8), backends=["eager", "torchscript"])


    def test_planted_divergence():
        torch.manual_seed(0)
        assert_parity(ScriptedDrift(), (torch.randn(4, 8),), backends=["eager", "torchscript"])


    @pytest.mark.parity_known_failure("scripting adds 0.01", backend="torchscript", link="https://example.org/1")
    def test_known_divergence():
        torch.manual_seed(0)
        assert_parity(ScriptedDrift(), (torch.randn(4, 8),), backends=["eager", "torchscript"])


    def test_cuda_only_check_skips():
        assert_parity(torch.nn.Linear(8, 4), torch.randn(4, 8), devices=["cuda"])


    def test_isolated_registered_case():
        assert_parity("parity_cases:iso_linear", backends=["eager"], isolate=True, timeout=120)
'''

USER_CASES = """
    import torch
    from torchparity import register_model

    register_model("iso_linear", lambda: torch.nn.Linear(8, 4),
                   lambda gen, batch: (gen.normal(batch, 8),), batch=4)
"""


@pytest.fixture(scope="module")
def user_session(tmp_path_factory):
    """One pytest session over USER_TESTS with --parity-out and pytest-benchmark's
    autosave and JSON (shared, read-only, by the tests below)."""
    pytest.importorskip("pytest_benchmark")
    base = tmp_path_factory.mktemp("user")
    project = base / "project"
    project.mkdir()
    (project / "test_user_models.py").write_text(textwrap.dedent(USER_TESTS), encoding="utf-8")
    (project / "parity_cases.py").write_text(textwrap.dedent(USER_CASES), encoding="utf-8")
    out, storage = base / "parity", base / "benchmarks"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *plugin_args(),
            "-p",
            "no:cacheprovider",
            "-rA",
            "--parity-out",
            str(out),
            "--benchmark-autosave",
            f"--benchmark-storage=file://{storage}",
            f"--benchmark-json={base / 'bench.json'}",
            "test_user_models.py",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=600,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{project}"},
    )
    return {"proc": proc, "out": out, "storage": storage, "json": base / "bench.json", "base": base}


def test_user_session_outcomes_and_the_failure_table(user_session):
    proc = user_session["proc"]
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text  # one test fails: the planted divergence
    assert "1 failed, 3 passed, 1 skipped" in text, text
    assert "FAILED test_user_models.py::test_planted_divergence" in text
    # the failure message is the drift table, with the bad cell's metrics
    assert "parity check 'test_planted_divergence': 1 of 2 cells bad" in text
    start = text.index("backend      precision  status")
    table = [line.removeprefix("E").strip() for line in text[start:].splitlines()]
    assert table[1].split()[:3] == ["eager", "fp32", "pass"]
    bad = table[2].split()
    assert bad[:3] == ["torchscript", "fp32", "fail"] and float(bad[3]) == pytest.approx(
        0.01, rel=1e-3
    )
    assert "no cell runs here: cuda:" in text  # the skip says why


def test_user_session_run_directory_is_read_by_report_and_compare(user_session, tmp_path):
    out = user_session["out"]
    assert main(["report", str(out)]) == 0
    assert main(["compare", str(out), str(out), "--fail-on", "status", "--out", str(tmp_path)]) == 0
    assert "\n8 cells\n" in (tmp_path / "compare.md").read_text(
        encoding="utf-8"
    )  # every cell matched
    rows = {(r["case"], r["backend"], r["device"]): r for r in read_rows(out)}
    assert rows["test_linear_passes", "torchscript", "cpu"]["status"] == "pass"
    assert rows["test_planted_divergence", "torchscript", "cpu"]["status"] == "fail"
    known = rows["test_known_divergence", "torchscript", "cpu"]
    assert known["status"] == "xfail" and "https://example.org/1" in known["reason"]
    assert rows["test_cuda_only_check_skips", "eager", "cuda"]["status"] == "skip"
    assert rows["iso_linear", "eager", "cpu"]["status"] == "pass"
    assert all(r["test"].startswith("test_user_models.py::") for r in rows.values())
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "test_planted_divergence" in summary


def _bench_compare(*files: Path, cwd: Path) -> subprocess.CompletedProcess:
    # the console script where it is (bin/), else its module (Windows' Scripts/*.exe)
    cli = Path(sys.executable).parent / "pytest-benchmark"
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "pytest_benchmark"]
    return subprocess.run(
        [*command, "compare", "--columns=min,median,max,rounds", *map(str, files)],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def test_checks_are_pytest_benchmark_benchmarks(user_session):
    saved = sorted(user_session["storage"].rglob("0001_*.json"))
    assert len(saved) == 1, "--benchmark-autosave saved the checks' timings"
    data = json.loads(saved[0].read_text(encoding="utf-8"))
    names = {b["fullname"] for b in data["benchmarks"]}
    assert "test_user_models.py::test_linear_passes[torchscript-fp32-cpu]" in names
    assert "test_user_models.py::test_planted_divergence[torchscript-fp32-cpu]" in names
    assert not any("cuda" in n for n in names)  # skipped cells have no timing
    proc = _bench_compare(saved[0], user_session["json"], cwd=user_session["base"])
    assert proc.returncode == 0, proc.stderr
    assert "test_linear_passes[eager-fp32-cpu]" in proc.stdout


def test_export_matches_pytest_benchmark_and_its_compare_reads_it(user_session, tmp_path):
    from pytest_benchmark.stats import Stats

    out = user_session["out"]
    exported = tmp_path / "export.json"
    assert main(["export", str(out), "--format", "pytest-benchmark", "--out", str(exported)]) == 0
    data = json.loads(exported.read_text(encoding="utf-8"))
    ours = {b["fullname"]: b for b in data["benchmarks"]}
    plugin = {
        b["fullname"]: b
        for b in json.loads(user_session["json"].read_text(encoding="utf-8"))["benchmarks"]
    }
    assert set(ours) == set(plugin) and len(ours) == 7  # every timed cell, named alike
    for name, bench in ours.items():
        stats = Stats()
        for x in bench["stats"]["data"]:
            stats.update(x)
        expected = stats.as_dict()
        assert bench["stats"].pop("outliers") == expected.pop("outliers"), name
        assert {k: bench["stats"][k] for k in expected} == pytest.approx(expected, rel=1e-12), name
        assert bench["stats"]["data"] == pytest.approx(plugin[name]["stats"]["data"])
    proc = _bench_compare(exported, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "test_known_divergence[torchscript-fp32-cpu]" in proc.stdout


def test_export_of_a_missing_run_directory_is_a_usage_error(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope"), "--format", "pytest-benchmark"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run directory" in err, err
