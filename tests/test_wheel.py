"""The built wheel, installed (not editable) into a fresh virtual environment:
one top-level package, a working CLI and data files, and a pytest plugin that
leaves a user's own ``harness`` and ``suites`` packages alone."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.skipif(
    os.environ.get("TORCHPARITY_SKIP_WHEEL") == "1", reason="TORCHPARITY_SKIP_WHEEL=1"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    (found,) = out.glob("torchparity-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel; its dependencies are this environment's
    (a path entry, so this environment's own editable torchparity is not seen)."""
    env = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "test-deps.pth").write_text("\n".join(sorted(deps)) + "\n", encoding="utf-8")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    return python


def test_the_wheel_installs_one_top_level_package(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"torchparity"}
    assert "torchparity/backends/native_runner/CMakeLists.txt" in names
    assert "torchparity/suites/opinfo/expectations-ci.json" in names
    # the JavaScript runners: installed with npm from the pinned lock at first use
    for name in (
        "package.json",
        "package-lock.json",
        "node_runner.mjs",
        "core.mjs",
        "web/page.mjs",
    ):
        assert f"torchparity/backends/js/{name}" in names


def _run(python: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def test_the_installed_cli_finds_its_suites_data_and_runner_sources(
    installed: Path, tmp_path: Path
):
    where = _run(
        installed, "-c", "import torchparity, sys; print(torchparity.__file__)", cwd=tmp_path
    )
    assert "site-packages" in where.stdout and str(ROOT / "src") not in where.stdout, (
        where.stdout + where.stderr
    )
    suites = _run(installed, "-m", "torchparity", "list", "suites", cwd=tmp_path)
    assert suites.returncode == 0 and "opinfo-ci" in suites.stdout, suites.stderr
    probe = (
        "from torchparity.backends import native_build; from torchparity.verdicts import expectations;"
        "from torchparity.suites.opinfo import expectations_file as e;"
        "print(native_build.source_dir().joinpath('CMakeLists.txt').is_file(), len(expectations.load(e.CI_PATH)) > 0)"
    )
    data = _run(installed, "-c", probe, cwd=tmp_path)
    assert data.stdout.split() == ["True", "True"], data.stdout + data.stderr
    out = tmp_path / "run"
    run = _run(
        installed,
        "-m",
        "torchparity",
        "run",
        "--case",
        "mlp",
        "--backend",
        "eager",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--min-time",
        "0.001",
        "--rounds",
        "1",
        "--out",
        str(out),
        "--quiet",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert '"status": "pass"' in (out / "results.jsonl").read_text(encoding="utf-8")


def test_a_project_with_its_own_harness_and_suites_runs_pytest_with_the_plugin(
    installed: Path, tmp_path: Path
):
    for package in ("harness", "suites"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(f"NAME = {package!r}\n", encoding="utf-8")
    (tmp_path / "test_mine.py").write_text(
        "import harness, suites\n\n"
        "def test_own_packages(request):\n"
        "    assert harness.NAME == 'harness' and suites.NAME == 'suites'\n"
        "    assert request.config.pluginmanager.has_plugin('torchparity')\n",
        encoding="utf-8",
    )
    proc = _run(
        installed, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mine.py", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout


def test_an_uninstalled_source_tree_finds_its_built_in_suites(tmp_path: Path):
    """PYTHONPATH=src, no distribution metadata (benchmarks/gpu_proof.sh on a machine
    whose torch must not be replaced): the built-in catalog is still there."""
    code = (
        "import importlib.metadata as m, sys\n"
        "m.entry_points = lambda **kw: []\n"
        "from torchparity.cli import main\n"
        "sys.exit(main(['list', 'suites']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {"models", "ops", "opinfo-ci"} <= {
        line.split()[0] for line in proc.stdout.splitlines() if line.strip()
    }
