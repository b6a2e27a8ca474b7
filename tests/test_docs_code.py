"""Every python code block in README.md and docs/*.md runs as a user would run it:
a block that registers models is a case file for ``torchparity run`` (every
row must pass), a block that registers a backend runs a built-in model on it,
a block that defines pytest tests runs under pytest, and any other block runs
as a script. A block meant as a fragment says so in its first line
(``# fragment: not run by tests/test_docs_code.py``); blocks that export
through ONNX or import transformers are slow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers import QUICK, cli_env, read_rows

FRAGMENT = "# fragment: not run by tests/test_docs_code.py"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_HEAVY = ("onnxruntime", "transformers")


def _blocks() -> list:
    params = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, match in enumerate(_BLOCK.finditer(path.read_text("utf-8"))):
            code = match.group(1)
            marks = [pytest.mark.slow] if any(w in code for w in _HEAVY) else []
            params.append(pytest.param(code, id=f"{path.name}-{i}", marks=marks))
    return params


BLOCKS = _blocks()


def test_the_docs_have_code_blocks() -> None:
    assert len(BLOCKS) >= 6  # the pattern still finds the blocks


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env=cli_env(),
        timeout=600,
    )


def _run_cases(code: str, path: Path, out: Path) -> None:
    """A case file: every suite it names runs on eager, fp32, and passes."""
    suites = sorted(
        {
            s
            for group in re.findall(r"suites=\[([^\]]*)\]", code)
            for s in re.findall(r'"([^"]+)"', group)
        }
    )
    assert suites, "a block registering models names its suites"
    for suite in suites:
        proc = _run(
            "-m", "torchparity", "run", "--case-file", str(path), "--suite", suite,
            "--backend", "eager", *QUICK, "--strict", "--out", str(out / suite),
            cwd=path.parent,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        rows = read_rows(out / suite)
        assert rows and {r["status"] for r in rows} == {"pass"}, [r.get("reason") for r in rows]


def _run_backend(code: str, path: Path, out: Path) -> None:
    """A backend plugin: the built-in mlp passes on it."""
    (name,) = re.findall(r'^\s+name = "([^"]+)"', code, re.M)
    proc = _run(
        "-m", "torchparity", "run", "--case-file", str(path), "--suite", "smoke",
        "--case", "mlp", "--backend", name, *QUICK, "--strict", "--out", str(out),
        cwd=path.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert {r["status"] for r in read_rows(out)} == {"pass"}


@pytest.mark.parametrize("code", BLOCKS)
def test_code_block_runs(code: str, tmp_path: Path) -> None:
    if code.startswith(FRAGMENT):
        pytest.skip("a fragment, marked in the docs")
    path = tmp_path / ("test_block.py" if re.search(r"^def test_", code, re.M) else "block.py")
    path.write_text(code, encoding="utf-8")
    if "register_model(" in code:
        _run_cases(code, path, tmp_path / "runs")
    elif "register_backend(" in code:
        _run_backend(code, path, tmp_path / "run")
    elif path.name.startswith("test_"):
        proc = _run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(path), cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    else:
        proc = _run(str(path), cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
