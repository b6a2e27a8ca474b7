"""The project's own CI plumbing: nox sessions, .ci/run, the GitHub workflow."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, write_env, write_rows

SESSIONS = ["tests", "bench", "fuzz", "opinfo", "native", "report", "validate", "localize", "bench_torch", "lint"]


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


def _workflow_step_script(step_name: str) -> str:
    """The `run:` block of a step of ci.yml (plain text: no YAML dependency)."""
    lines = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"- name: {step_name}")
    run = next(i for i in range(start, len(lines)) if lines[i].strip() == "run: |")
    indent = len(lines[run + 1]) - len(lines[run + 1].lstrip())
    body = []
    for line in lines[run + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        body.append(line[indent:])
    return "\n".join(body) + "\n"


def _fake_run_dir(path: Path, os_name: str, cases: list[str]) -> None:
    path.mkdir(parents=True)
    write_env(path, {"os": os_name, "host": os_name.lower()})
    write_rows(path, [{"case": case, "kind": "model", "suite": "smoke", "device": "cpu",
                       "precision": "fp32", "backend": "eager", "status": "pass",
                       "os": os_name, "cell_id": f"{case}|cpu|fp32|eager"} for case in cases])  # fmt: skip


@pytest.mark.skipif(os.name == "nt" or not (shutil.which("bash") and shutil.which("find")),
                    reason="the workflow's merge step is bash with GNU find (Linux runner)")  # fmt: skip
def test_workflow_merge_step_merges_every_run_directory(tmp_path):
    art = tmp_path / "artifacts"
    _fake_run_dir(art / "run-ubuntu-latest-py3.12" / "smoke-ubuntu-latest-py3.12", "Linux", ["a", "b"])
    _fake_run_dir(art / "run-macos-latest-py3.12" / "smoke-macos-latest-py3.12", "Darwin", ["a", "b"])
    _fake_run_dir(art / "run-models-shard-1-of-2" / "models-shard-1-of-2", "Linux", ["c"])
    _fake_run_dir(art / "run-ubuntu-latest-py3.12" / "fuzz-ubuntu-latest-py3.12", "Linux", ["op"])
    # `torchparity` on PATH: this checkout's CLI under this interpreter
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "torchparity"
    shim.write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" -m torchparity "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    script = tmp_path / "merge.sh"
    script.write_text(_workflow_step_script("Merge into one cross-platform report"), encoding="utf-8")
    summary = tmp_path / "step-summary.md"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "GITHUB_STEP_SUMMARY": str(summary)}  # fmt: skip
    proc = subprocess.run(["bash", "-eo", "pipefail", str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import pandas as pd

    merged = pd.read_csv(tmp_path / "merged" / "results.csv")
    assert sorted(zip(merged.os, merged.case, strict=True)) == [
        ("Darwin", "a"), ("Darwin", "b"), ("Linux", "a"), ("Linux", "b"), ("Linux", "c"),
    ]  # fmt: skip
    assert list(pd.read_csv(tmp_path / "merged" / "fuzz" / "results.csv").case) == ["op"]
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("Merged 3 benchmark and 1 fuzz run directories.")
    assert (tmp_path / "merged" / "summary.md").read_text(encoding="utf-8") in text
    assert (tmp_path / "merged" / "fuzz" / "summary.md").read_text(encoding="utf-8") in text
