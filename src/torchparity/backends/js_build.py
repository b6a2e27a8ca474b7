"""Installing the JavaScript runners (src/torchparity/backends/js/: package.json
and package-lock.json pinning onnxruntime-node and onnxruntime-web, the Node
runner and the browser page) into a per-user cache, at first use, like the C++
runner's build (backends/native_build.py).

``npm ci --ignore-scripts`` installs exactly the lockfile's packages from the
registry; no package script runs, so onnxruntime-node's postinstall, which
downloads CUDA libraries from outside the registry, never runs (the CPU
binaries ship in the package). Other platforms' onnxruntime-node binaries are
removed after install. The finished directory is sealed: a manifest of every
file's SHA-256, signed with this user's cache key (src/torchparity/_core/cache.py),
is checked before anything in it is executed or served, once per process.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from torchparity._core import cache
from torchparity.backends.native_build import _locked, _safe
from torchparity.backends.native_build import cache_root as native_cache_root

SOURCE_DIR = Path(__file__).resolve().parent / "js"
# What the install copies: the npm pins and the scripts (web/ holds the page).
SOURCES = (
    "package.json",
    "package-lock.json",
    "core.mjs",
    "node_runner.mjs",
    "generate_runner.mjs",
    "web/index.html",
    "web/page.mjs",
)
ENV_CACHE = "TORCHPARITY_JS_CACHE"
MANIFEST = "manifest.json"
INSTALL_TIMEOUT_S = 900


class JsInstallError(RuntimeError):
    """node or npm is missing, or the npm install failed."""


@dataclass(frozen=True)
class JsInstall:
    directory: Path
    installed: bool  # False: found in the cache
    seconds: float


def _tool_version(tool: str) -> str:
    try:
        proc = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip()


def tools_missing() -> str | None:
    """Why the JavaScript runners cannot be installed here (node or npm missing), or None."""
    missing = [tool for tool in ("node", "npm") if not shutil.which(tool)]
    if missing:
        return f"the JavaScript runners need {' and '.join(missing)} on PATH"
    return None


def cache_root() -> Path:
    """``$TORCHPARITY_JS_CACHE``, else ``js-runner`` beside the native runner's cache."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    return native_cache_root().parent / "js-runner"


def install_key() -> str:
    """The install directory's name: the sources, node's version and the platform."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (SOURCE_DIR / name).read_bytes())
    node = _tool_version("node")
    digest.update(f"{node}|{sys.platform}|{platform.machine()}".encode())
    return _safe(
        f"node{node.lstrip('v')}-{sys.platform}-{platform.machine()}-{digest.hexdigest()[:12]}"
    )


def _prune_other_platforms(directory: Path) -> None:
    """onnxruntime-node ships binaries for every OS and CPU; keep this one's."""
    bins = directory / "node_modules" / "onnxruntime-node" / "bin" / "napi-v6"
    here = {"win32": "win32", "darwin": "darwin"}.get(sys.platform, "linux")
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(
        platform.machine().lower(), platform.machine()
    )
    if not bins.is_dir():
        return
    for os_dir in bins.iterdir():
        for arch_dir in os_dir.iterdir() if os_dir.is_dir() else ():
            if (os_dir.name, arch_dir.name) != (here, arch):
                shutil.rmtree(arch_dir, ignore_errors=True)


def _digests(directory: Path) -> dict[str, str]:
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
        if not p.name.endswith(cache.SEAL_SUFFIX)
    }


def _install_into(final: Path) -> None:
    stage = final.with_name(f".stage-{final.name}-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    for name in SOURCES:
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SOURCE_DIR / name, stage / name)
    env = dict(os.environ, ONNXRUNTIME_NODE_INSTALL="skip")  # even if scripts ran: no CUDA download
    command = ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--omit=dev"]
    try:
        proc = subprocess.run(
            command,
            cwd=stage,
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=INSTALL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(stage, ignore_errors=True)
        raise JsInstallError(f"npm ci took over {INSTALL_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        shutil.rmtree(stage, ignore_errors=True)
        lines = [x for x in (proc.stderr + proc.stdout).splitlines() if "ERR" in x] or ["no output"]
        raise JsInstallError(f"npm ci failed: {lines[0].strip()[:300]}")
    _prune_other_platforms(stage)
    manifest = json.dumps(_digests(stage), sort_keys=True).encode()
    (stage / MANIFEST).write_bytes(manifest)
    cache.seal(stage / MANIFEST, manifest)
    os.replace(stage, final)  # atomic: readers see the whole directory or none


_VERIFIED: set[Path] = set()


def unverified(directory: Path) -> str | None:
    """Why ``directory`` must not be used (not installed, its seal missing or
    not this user's, a file changed since install), or None; checked once per process."""
    if directory in _VERIFIED:
        return None
    if not (directory / MANIFEST).is_file():
        return "not installed"
    data, why = cache.verified_bytes(directory / MANIFEST)
    if data is None:
        return f"manifest {why}"
    if json.loads(data) != _digests(directory):
        return "files changed since install"
    _VERIFIED.add(directory)
    return None


def ensure_installed() -> JsInstall:
    """The installed runners, verified against their seal; installed now when
    the cache has none, or has one that fails its seal (nothing of it ran).
    Raises JsInstallError."""
    reason = tools_missing()
    if reason:
        raise JsInstallError(reason)
    final = cache_root() / install_key()
    if unverified(final) is None:
        return JsInstall(final, False, 0.0)
    began = time.perf_counter()
    with _locked(final.with_name(final.name + ".lock")):
        if unverified(final) is not None:  # another process may have installed it meanwhile
            shutil.rmtree(final, ignore_errors=True)
            _install_into(final)
            if unverified(final) is not None:
                raise JsInstallError(f"the fresh install {final} fails its own seal")
    return JsInstall(final, True, time.perf_counter() - began)
