"""The project's own CI plumbing: nox sessions, .ci/run, the GitHub workflow."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers import ROOT, write_env, write_rows

SESSIONS = [
    "tests",
    "tests_slow",
    "tests_latest",
    "bench",
    "fuzz",
    "opinfo",
    "zoo",
    "zoo_full",
    "native",
    "report",
    "validate",
    "localize",
    "bench_torch",
    "lint",
]
LOCK = ROOT / "constraints" / "ci.txt"
# A pin of the lock: name==version, perhaps for some Pythons or OSes only.
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)(?: ; \S.*)?")


def test_nox_lists_every_session_with_a_one_line_description():
    pytest.importorskip("nox")
    proc = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "--no-color"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
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
    ci_lines = [
        line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    ]
    assert command in ci_lines


def _tool(name: str) -> str | None:
    # nox's lint env or this interpreter's env (bin/ or Scripts/), then PATH
    here = Path(sys.executable).parent
    for found in (shutil.which(name, path=str(here)), shutil.which(name)):
        if found:
            return found
    return None


def test_workflows_pass_actionlint():
    actionlint = _tool("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed here; `nox -s lint` installs and runs it")
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    }
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert len(workflows) >= 3, "ci, latest and slow"
    proc = subprocess.run(
        [actionlint, *workflows], capture_output=True, text=True, env=env, timeout=120
    )
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
    write_rows(
        path,
        [
            {
                "case": case,
                "kind": "model",
                "suite": "smoke",
                "device": "cpu",
                "precision": "fp32",
                "backend": "eager",
                "status": "pass",
                "os": os_name,
                "cell_id": f"{case}|cpu|fp32|eager",
            }
            for case in cases
        ],
    )


def _run_step(tmp_path: Path, step: str, summary: Path, **env: str) -> subprocess.CompletedProcess:
    """A ci.yml step's script run by bash as GitHub runs it, in ``tmp_path``,
    with ``torchparity`` on PATH (this checkout's CLI under this interpreter)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "torchparity"
    shim.write_text(
        f'#!/usr/bin/env bash\nexec "{sys.executable}" -m torchparity "$@"\n', encoding="utf-8"
    )
    shim.chmod(0o755)
    script = tmp_path / "step.sh"
    script.write_text(_workflow_step_script(step), encoding="utf-8")
    full_env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
        "GITHUB_STEP_SUMMARY": str(summary),
        **env,
    }
    return subprocess.run(
        ["bash", "-e", str(script)],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(
    os.name == "nt" or not (shutil.which("bash") and shutil.which("find")),
    reason="the workflow's merge step is bash with GNU find (Linux runner)",
)
@pytest.mark.slow
def test_workflow_merge_step_merges_every_run_directory(tmp_path):
    art = tmp_path / "artifacts"
    _fake_run_dir(
        art / "run-ubuntu-latest-py3.12" / "smoke-ubuntu-latest-py3.12", "Linux", ["a", "b"]
    )
    _fake_run_dir(
        art / "run-macos-latest-py3.12" / "smoke-macos-latest-py3.12", "Darwin", ["a", "b"]
    )
    _fake_run_dir(art / "run-models-shard-1-of-2" / "models-shard-1-of-2", "Linux", ["c"])
    _fake_run_dir(art / "run-ubuntu-latest-py3.12" / "fuzz-ubuntu-latest-py3.12", "Linux", ["op"])
    summary = tmp_path / "step-summary.md"
    proc = _run_step(tmp_path, "Merge into one cross-platform report", summary)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import pandas as pd

    merged = pd.read_csv(tmp_path / "merged" / "results.csv")
    assert sorted(zip(merged.os, merged.case, strict=True)) == [
        ("Darwin", "a"),
        ("Darwin", "b"),
        ("Linux", "a"),
        ("Linux", "b"),
        ("Linux", "c"),
    ]
    assert list(pd.read_csv(tmp_path / "merged" / "fuzz" / "results.csv").case) == ["op"]
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("Merged 3 benchmark and 1 fuzz run directories.")
    assert (tmp_path / "merged" / "summary.md").read_text(encoding="utf-8") in text
    assert (tmp_path / "merged" / "fuzz" / "summary.md").read_text(encoding="utf-8") in text


def _counted_run(path: Path, instructions: float, cpu: str = "X") -> None:
    path.mkdir(parents=True, exist_ok=True)
    write_env(path, {"fingerprint": "f", "cpu": cpu})
    row = {"case": "a", "device": "cpu", "precision": "fp32", "backend": "eager"}
    write_rows(
        path,
        [
            {
                **row,
                "status": "pass",
                "cell_id": "a|cpu|fp32|eager",
                "instructions_per_call": instructions,
            }
        ],
    )


@pytest.mark.skipif(
    os.name == "nt" or not shutil.which("bash"), reason="a bash step (Linux runner)"
)
def test_workflow_gate_step_fails_on_counted_growth_and_warns_when_it_cannot_judge(tmp_path):
    base = tmp_path / "baseline" / "smoke-ubuntu-latest-py3.12"
    pr = tmp_path / "artifacts" / "run-ubuntu-latest-py3.12" / "smoke-ubuntu-latest-py3.12"
    env = {"BASE_REF": "main", "RUN_NAME": "ubuntu-latest-py3.12"}
    _counted_run(base, 1_000_000.0)
    summary = tmp_path / "summary.md"
    for instructions, cpu, code, annotation in (
        (1_001_000.0, "X", 0, ""),
        (1_080_000.0, "X", 1, "::error::**Gate: FAILED**: 1 regressions"),
        (1_080_000.0, "Y", 0, "::warning::**Gate: not judged**: 1 cells could not be judged"),
    ):
        _counted_run(pr, instructions, cpu)
        proc = _run_step(tmp_path, "Gate on the base branch", summary, **env)
        assert proc.returncode == code, proc.stdout + proc.stderr
        assert annotation in proc.stdout
    assert "## Compared with main" in summary.read_text(encoding="utf-8")


def _requirement_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def test_the_lock_pins_every_requirement_of_the_tests_and_ci():
    requirements = pytest.importorskip("packaging.requirements")
    from packaging.utils import canonicalize_name

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
        import tomli as tomllib
    lines = _requirement_lines(LOCK)
    not_pins = [line for line in lines if not PIN.fullmatch(line)]
    assert lines and not not_pins, f"each line name==version: {not_pins}"
    assert "torch==2.13.0" in lines, "CI's torch: the CPU build fetched from the torch index"
    pinned = {canonicalize_name(PIN.fullmatch(line).group(1)) for line in lines}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *_requirement_lines(ROOT / "constraints" / "ci.in")]
    wanted += [r for extra in project["optional-dependencies"].values() for r in extra]
    missing = {canonicalize_name(requirements.Requirement(r).name) for r in wanted} - pinned
    assert not missing, f"regenerate the lock (its header's command): {sorted(missing)}"
    command = LOCK.read_text(encoding="utf-8").splitlines()[1].lstrip("# ")
    assert command.startswith("uv pip compile pyproject.toml constraints/ci.in --all-extras")
    assert "--universal" in command, "one lock for Linux, macOS and Windows"
    assert command in (ROOT / "docs" / "ci.md").read_text(encoding="utf-8"), "docs/ci.md's command"


class _Session:
    """What a nox session function touches, recording what it installs."""

    def __init__(self, bin_dir: Path, listed: str = "[]"):
        self.posargs, self.bin, self.installs = ["x"], str(bin_dir), []
        self.virtualenv = SimpleNamespace(location=None)
        self.listed = listed

    def install(self, *args: str) -> None:
        self.installs.append(list(args))

    def run(self, *args: str, silent: bool = False, env: dict | None = None) -> str:
        return self.listed if "pip" in args else ""

    def log(self, *args: object) -> None:
        pass

    warn = log


@functools.cache  # once: nox registers each session as the file runs
def _load_noxfile():
    spec = importlib.util.spec_from_file_location("torchparity_noxfile", ROOT / "noxfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _noxfile():
    pytest.importorskip("nox")
    return _load_noxfile()


def test_every_session_ci_runs_installs_from_the_lock(tmp_path):
    noxfile = _noxfile()
    assert noxfile.CONSTRAINTS == LOCK
    # bench_torch pins the torch release it measures; tests_latest takes the newest of all
    for name in sorted(set(SESSIONS) - {"bench_torch", "tests_latest"}):
        session = _Session(tmp_path)
        getattr(noxfile, name)(session)
        assert session.installs, name
        for args in session.installs:
            assert args[args.index("-c") + 1] == str(LOCK), (name, args)


def test_tests_latest_installs_the_newest_releases_and_writes_the_drift(tmp_path, monkeypatch):
    noxfile = _noxfile()
    monkeypatch.setattr(noxfile, "DRIFT", tmp_path / "drift.md")
    torch = noxfile.locked_versions()["torch"]
    listed = [{"name": "torch", "version": f"{torch}+cpu"}, {"name": "NumPy", "version": "999.0"}]
    session = _Session(tmp_path, "WARNING: pip chatter\n" + json.dumps(listed))
    noxfile.tests_latest(session)
    (args,) = session.installs
    assert "-c" not in args and f"torch=={torch}" in args and "--upgrade" in args
    drift = (tmp_path / "drift.md").read_text(encoding="utf-8")
    assert "| numpy |" in drift and "| 999.0 |" in drift and "torch" not in drift


class _RecordingSession(_Session):
    """A session that also records the commands it runs."""

    def __init__(self, bin_dir: Path, posargs: list[str]):
        super().__init__(bin_dir)
        self.posargs, self.runs = posargs, []

    def run(self, *args: str, silent: bool = False, env: dict | None = None) -> str:
        self.runs.append(list(args))
        return ""


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_zoo_full_adds_the_deployment_runtimes_and_zoo_keeps_its_ci_paths(tmp_path):
    noxfile = _noxfile()
    ran = {}
    for name in ("zoo", "zoo_full"):
        session = _RecordingSession(tmp_path, ["--out", str(tmp_path / name)])
        getattr(noxfile, name)(session)
        (run, report, *generate) = session.runs
        if name == "zoo":  # then generation parity on its ci selection
            (gen,) = generate
            assert _option(gen, "--suite") == "generate-ci" and _option(gen, "--mode") == "generate"
        else:
            assert not generate
        assert run[:2] == ["torchparity", "run"] and _option(run, "--out") == str(tmp_path / name)
        assert "--strict" in run and report[:3] == ["torchparity", "report", str(tmp_path / name)]
        ran[name] = (run, session.installs[0][1])
    ci, full = ran["zoo"], ran["zoo_full"]
    assert _option(ci[0], "--suite") == "zoo-ci" and ci[1] == ".[zoo]"
    assert _option(ci[0], "--backend") == "eager,onnxruntime,export,compile"
    assert _option(full[0], "--suite") == "zoo" and full[1] == ".[zoo,executorch,openvino]"
    assert _option(full[0], "--backend").split(",") == [
        *("eager", "torchscript-trace", "onnxruntime", "onnxruntime-legacy", "export"),
        *("compile", "aoti", "executorch", "openvino", "onnxruntime-node", "onnxruntime-web"),
    ]
