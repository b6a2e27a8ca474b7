"""The project's own CI plumbing: nox sessions, .ci/run, the GitHub workflow."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SESSIONS = ["tests", "bench", "fuzz", "report", "validate", "bench_torch", "lint"]


def test_nox_lists_every_session_with_a_one_line_description():
    pytest.importorskip("nox")
    proc = subprocess.run([sys.executable, "-m", "nox", "-l", "--no-color"], cwd=ROOT,
                          capture_output=True, text=True, encoding="utf-8", timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    listed = dict(re.findall(r"^[*-] (\S+?)(?:\(.*\))? -> (.+)$", proc.stdout, re.MULTILINE))
    assert set(SESSIONS) <= set(listed), proc.stdout
    assert all(len(listed[s]) > 20 for s in SESSIONS)
    torches = re.findall(r"bench_torch\(torch='([\d.]+)'\)", proc.stdout)
    assert len(torches) >= 2, "bench_torch compares at least two torch releases"
    assert re.search(r"^\* tests ", proc.stdout, re.MULTILINE), "tests is the default session"


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    block = readme[readme.index("```bash") + 1 :]
    bench_line, test_line = block[0], block[1]
    assert "nox -s bench" in bench_line
    command = test_line.split("#", 1)[0].strip()
    assert command == "python3 -m pip install nox && python3 -m nox -s tests"
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert command in ci_lines


def _tool(name: str) -> str | None:
    # nox's lint env or this interpreter's env (bin/ or Scripts/), then PATH
    here = Path(sys.executable).parent
    for found in (shutil.which(name, path=str(here)), shutil.which(name)):
        if found:
            return found
    return None


def test_workflow_passes_actionlint():
    actionlint = _tool("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed here; `nox -s lint` installs and runs it")
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run([actionlint, str(ROOT / ".github" / "workflows" / "ci.yml")],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
