"""Building the native runner (src/torchparity/backends/native_runner/) against the
installed torch, once per torch, compiler, platform and source, under the run's
cache root (``native-runner/``), shared by every run and process using it
(docs/native-runner.md); a run without a cache (``--no-cache``) builds into a
private temporary directory.

The build happens at first use, inside the first cell's ``prepare`` (so its
``prepare_s`` includes it, and only that cell's). Two processes never race:
the build holds a lock file, works in a private directory and renames the
finished directory into place; a reader sees a whole runner or none.

The cache is untrusted (docs/security.md): the binary is sealed when built
(its digest, HMAC-signed with this user's key: src/torchparity/_core/cache.py)
and checked before every use. What runs is a private copy of exactly the
bytes checked; a binary without this user's valid seal (a planted wrapper, a
damaged file) is deleted and rebuilt, never executed.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from torchparity._core import cache

SOURCE_DIR = Path(__file__).resolve().parent / "native_runner"
EXE = "torchparity-runner" + (".exe" if sys.platform == "win32" else "")
# Environment overrides: a prebuilt runner binary (no build, no toolchain
# needed), another source tree (the build-failure test).
ENV_BINARY = "TORCHPARITY_NATIVE_RUNNER"
ENV_SOURCE = "TORCHPARITY_NATIVE_RUNNER_SOURCE"
BUILD_TIMEOUT_S = 1800


class NativeBuildError(RuntimeError):
    """The runner did not build; the message is the compiler's (or cmake's) first error line."""


@dataclass(frozen=True)
class Compiler:
    path: str  # what cmake is told to use ("" : the generator's choice, MSVC via Visual Studio)
    version: str  # first line of its version banner

    @property
    def tag(self) -> str:
        """Short name for directory names, e.g. ``g++-12.2.0``."""
        name = Path(self.path).stem if self.path else "msvc"
        numbers = re.findall(r"\d+(?:\.\d+)+", self.version)
        return _safe(f"{name}-{numbers[-1]}" if numbers else name)


@dataclass(frozen=True)
class RunnerBuild:
    binary: Path  # what to execute: a private copy of the checked bytes
    built: bool  # False: found in the cache (or a prebuilt binary)
    seconds: float  # build time when built, else 0
    directory: Path
    rebuilt: str = ""  # why a cached binary was not used (untrusted, digest mismatch)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text)


def source_dir() -> Path:
    return Path(os.environ.get(ENV_SOURCE) or SOURCE_DIR)


RUNNER_DIR = "native-runner"  # under the run's cache root


def runner_root(cache_root: Path | None) -> Path:
    """``<cache root>/native-runner``; without a cache root (``--no-cache``), a
    private temporary directory of this process, removed at exit."""
    return cache.runner_dir(cache_root, RUNNER_DIR)


def _vswhere() -> Path | None:
    root = os.environ.get("ProgramFiles(x86)") or r"C:\Program Files (x86)"
    path = Path(root) / "Microsoft Visual Studio" / "Installer" / "vswhere.exe"
    return path if path.is_file() else None


def _banner(command: list[str]) -> str:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    # cl prints its banner on stderr, gcc and clang on stdout.
    for line in (proc.stdout + "\n" + proc.stderr).splitlines():
        if line.strip():
            return line.strip()
    return ""


def find_compiler() -> Compiler | None:
    """The C++ compiler cmake will use: $CXX, else the first usual one on PATH;
    on Windows cl (on PATH, or Visual Studio through vswhere). Asked once per
    ($CXX, $PATH) in a process: every cell's precheck and prepare asks."""
    key = (os.environ.get("CXX"), os.environ.get("PATH"))
    if key not in _COMPILERS:
        _COMPILERS[key] = _find_compiler()
    return _COMPILERS[key]


_COMPILERS: dict[tuple[str | None, str | None], Compiler | None] = {}


def _find_compiler() -> Compiler | None:
    wanted = os.environ.get("CXX")
    names = (
        [wanted] if wanted else (["cl"] if sys.platform == "win32" else ["c++", "g++", "clang++"])
    )
    for name in names:
        path = shutil.which(name)
        if path:
            is_cl = Path(path).stem.lower() == "cl"
            return Compiler(path, _banner([path] if is_cl else [path, "--version"]))
    if sys.platform == "win32" and not wanted and _vswhere():
        return Compiler("", "MSVC (Visual Studio, found by vswhere)")
    return None


def toolchain_missing() -> str | None:
    """Why the runner cannot be built here (cmake or a compiler missing), or None."""
    if os.environ.get(ENV_BINARY):
        return None if Path(os.environ[ENV_BINARY]).is_file() else f"{ENV_BINARY} names no file"
    missing = []
    if not shutil.which("cmake"):
        missing.append("cmake")
    if find_compiler() is None:
        cxx = os.environ.get("CXX")
        missing.append(
            f"the C++ compiler $CXX={cxx}"
            if cxx
            else "a C++ compiler ("
            + ("cl" if sys.platform == "win32" else "c++, g++ or clang++")
            + ")"
        )
    if missing:
        return f"the native runner needs {' and '.join(missing)} on PATH to build"
    return None


def callgrind_include_dir() -> Path | None:
    """The include directory holding valgrind's ``valgrind/callgrind.h`` (the
    runner's count command is compiled in with it), or None: Python's prefix
    (a conda environment's valgrind), then the system's."""
    if sys.platform == "win32":
        return None
    for folder in (Path(sys.prefix) / "include", Path("/usr/local/include"), Path("/usr/include")):
        if (folder / "valgrind" / "callgrind.h").is_file():
            return folder
    return None


def callgrind_missing() -> str | None:
    """Why the runner built here cannot count its calls' instructions, or None
    (a prebuilt runner says so itself when asked to count)."""
    if os.environ.get(ENV_BINARY) or callgrind_include_dir() is not None:
        return None
    return (
        "the native runner counts instructions only when built with valgrind's "
        "callgrind.h, which is not installed (apt-get install valgrind, or valgrind-devel)"
    )


def _source_digest(source: Path) -> str:
    digest = hashlib.sha256()
    for name in ("CMakeLists.txt", "runner.cpp"):
        digest.update((source / name).read_bytes())
    return digest.hexdigest()


def build_key(compiler: Compiler, source: Path) -> str:
    """The cache directory's name: torch, compiler, platform and a digest of
    everything the binary depends on (torch's location: the binary links it there)."""
    text = "|".join(
        [
            torch.__version__,
            str(Path(torch.__file__).parent),
            compiler.path,
            compiler.version,
            sys.platform,
            platform.machine(),
            _source_digest(source),
            str(callgrind_include_dir() or ""),  # valgrind's header installed later: a new build
        ]
    )
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return _safe(f"{torch.__version__}-{compiler.tag}-{sys.platform}-{platform.machine()}-{digest}")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` held for the block (waits for another
    builder); a symbolic link in the lock's place is removed, never opened through."""
    with open(cache.open_lock(path), "r+b") as handle:
        if sys.platform == "win32":
            import msvcrt

            handle.seek(0)  # msvcrt locks bytes from the current position
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after 10 s; keep waiting
                    continue
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_ERROR_LINE = re.compile(r"(\berror\b|\bError\b|CMake Error|fatal error|undefined reference)")


def first_error_line(log: str) -> str:
    """The first line of a cmake/compiler log that says what went wrong."""
    lines = [line.strip() for line in log.splitlines()]
    for i, line in enumerate(lines):
        if not _ERROR_LINE.search(line) or line.startswith(("gmake", "make", "ninja:")):
            continue
        if line.startswith("CMake Error") and line.endswith(":"):
            detail = next((x for x in lines[i + 1 :] if x), "")
            return f"{line} {detail}"[:400]
        return line[:400]
    tail = [line for line in lines if line]
    return tail[-1][:400] if tail else "no output"


def _cmake_commands(source: Path, build: Path, compiler: Compiler) -> list[list[str]]:
    configure = [
        "cmake",
        "-S",
        str(source),
        "-B",
        str(build),
        f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DTP_CALLGRIND_INCLUDE_DIR={callgrind_include_dir() or ''}",
    ]
    if compiler.path and sys.platform != "win32":
        configure.append(f"-DCMAKE_CXX_COMPILER={compiler.path}")
    elif compiler.path and shutil.which("ninja"):  # cl on PATH: Ninja uses it as is
        configure += ["-G", "Ninja", f"-DCMAKE_CXX_COMPILER={compiler.path}"]
    # Multi-config generators (Visual Studio) pick the configuration here.
    return [configure, ["cmake", "--build", str(build), "--config", "Release", "--parallel"]]


def _compile(source: Path, stage: Path, compiler: Compiler) -> None:
    """Configure and build in ``stage/build``; leave the binary and build.log in ``stage``."""
    build = stage / "build"
    log = []
    for command in _cmake_commands(source, build, compiler):
        proc = subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=BUILD_TIMEOUT_S
        )
        log.append(f"$ {' '.join(command)}\n{proc.stdout}\n{proc.stderr}")
        (stage / "build.log").write_text("\n".join(log), encoding="utf-8")
        if proc.returncode != 0:
            raise NativeBuildError(first_error_line(proc.stdout + "\n" + proc.stderr))
    found = sorted(build.rglob(EXE), key=lambda p: len(p.parts))
    if not found:
        raise NativeBuildError(f"the build finished without producing {EXE}")
    shutil.copy2(found[0], stage / EXE)
    shutil.rmtree(build, ignore_errors=True)


def _build_into(final: Path, source: Path, compiler: Compiler) -> None:
    stage = final.with_name(f".stage-{final.name}-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        _compile(source, stage, compiler)
        info = {
            "torch": torch.__version__,
            "compiler": compiler.path,
            "compiler_version": compiler.version,
            "platform": f"{sys.platform}-{platform.machine()}",
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (stage / "info.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
        _seal_binary(stage)  # sealed before it appears: a reader never sees it unsealed
        os.replace(stage, final)  # atomic: readers see the whole directory or none
    except NativeBuildError:
        failed = final.with_name(f".failed-{final.name}")  # keep the log for a look
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(stage, failed)
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


_COPIES: dict[tuple[str, str], Path] = {}  # (cache directory, digest) -> private copy


def _checked_binary(final: Path) -> tuple[Path | None, str]:
    """A private, executable copy of ``final``'s runner when its seal holds
    (``(None, why)`` otherwise, the binary then deleted): the copy lives in a
    directory only this process writes, so the file run is the file checked."""
    binary = final / EXE
    data, why = cache.verified_bytes(binary)
    if data is None:
        cache.discard(binary)
        return None, why
    key = (str(final), hashlib.sha256(data).hexdigest())
    if key not in _COPIES or not _COPIES[key].is_file():
        _COPIES[key] = _private_executable(data)
    return _COPIES[key], ""


def _private_executable(data: bytes) -> Path:
    """``data`` as ``<new 0700 directory>/torchparity-runner`` (mode 0700),
    removed at exit: the runner keeps its own name, in a place only we write."""
    directory = Path(tempfile.mkdtemp(prefix="torchparity-runner-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = directory / EXE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


def _seal_binary(directory: Path) -> None:
    """Seal the runner in ``directory`` (the seal names the file, not the
    directory, so it holds after the staging directory is renamed into place)."""
    binary = directory / EXE
    cache.seal(binary, binary.read_bytes())


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def ensure_runner(cache_root: Path | None) -> RunnerBuild:
    """The runner binary under ``cache_root`` (a private temporary directory
    when None), built first when the cache has none (or none this user's runs
    sealed). Raises NativeBuildError (the compiler's first error line) when it
    does not build."""
    if os.environ.get(ENV_BINARY):  # the user's own binary, named by them: not the cache's
        binary = Path(os.environ[ENV_BINARY])
        return RunnerBuild(binary, False, 0.0, binary.parent)
    reason = toolchain_missing()
    if reason:
        raise NativeBuildError(reason)
    compiler = find_compiler()
    assert compiler is not None
    source = source_dir()
    final = runner_root(cache_root) / build_key(compiler, source)
    why = ""
    if (final / EXE).exists() or (final / EXE).is_symlink():
        binary, why = _checked_binary(final)
        if binary is not None:
            return RunnerBuild(binary, False, 0.0, final)
    began = time.perf_counter()
    with _locked(final.with_name(final.name + ".lock")):
        if (final / EXE).is_file():  # another process built it while we waited
            binary, why_now = _checked_binary(final)
            if binary is not None:
                return RunnerBuild(binary, False, 0.0, final)
            why = why or why_now
        _remove(final)  # nothing of an untrusted build is kept
        _build_into(final, source, compiler)
        binary, why_now = _checked_binary(final)
        if binary is None:
            raise NativeBuildError(f"the runner just built fails its seal check ({why_now})")
    return RunnerBuild(binary, True, time.perf_counter() - began, final, why)
