"""Installing the JavaScript runners (src/torchparity/backends/js/: package.json
and package-lock.json pinning onnxruntime-node and onnxruntime-web, the Node
runner and the browser page) under the run's cache root (``js-runner/``), at
first use, like the C++ runner's build (backends/native_build.py); a run
without a cache (``--no-cache``) installs into a private temporary directory.

``npm ci --ignore-scripts --no-bin-links`` installs exactly the lockfile's
packages from the registry; no package script runs, so onnxruntime-node's
postinstall, which downloads CUDA libraries from outside the registry, never
runs (the CPU binaries ship in the package), and no ``.bin`` links are made.
Other platforms' onnxruntime-node binaries are removed after install. The
finished directory is sealed: a manifest of every file's SHA-256, signed with
this user's cache key (src/torchparity/_core/cache.py), checked once per
process. The install holds regular files only: a symbolic link or special file
anywhere in it fails the check (a link is never followed).

What runs is what was checked (docs/security.md): Node runs a private copy of
the runner and of the packages it loads, each file written from the very bytes
whose digest matched the manifest; the browser is served each file from bytes
hashed and matched when they are served.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from torchparity._core import cache
from torchparity._core.errors import MachineFault, machine_fault
from torchparity.backends.native_build import _locked, _safe

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
RUNNERS_DIR = "js-runner"  # under the cache root
MANIFEST = "manifest.json"
INSTALL_TIMEOUT_S = 900
NODE_SCRIPTS = ("node_runner.mjs", "generate_runner.mjs", "core.mjs", "package.json")
NODE_PACKAGE = "onnxruntime-node"  # with its dependencies: what Node may load


class JsInstallError(RuntimeError):
    """node or npm is missing, the npm install failed, or the install changed."""


class JsInstallFault(MachineFault, JsInstallError):
    """The install cannot be made because of the machine (no registry, a
    read-only or full cache): blamed on ``environment``."""


@dataclass(frozen=True)
class JsInstall:
    directory: Path
    installed: bool  # False: found in the cache
    seconds: float
    rebuilt: str = ""  # why the cached install was not used (a failed check), else ""
    manifest: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


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


def runners_root(cache_root: Path | None) -> Path:
    """``<cache root>/js-runner``; without a cache root (``--no-cache``), a
    private temporary directory of this process, removed at exit."""
    return cache.runner_dir(cache_root, RUNNERS_DIR)


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
    """Every file's SHA-256 but the manifest's and seals'; raises cache.UnsafeEntry
    on a symbolic link or special file anywhere in ``directory``."""
    return {
        name: cache.file_sha256(directory / name)
        for name in cache.tree_files(directory)
        if name != MANIFEST and not name.endswith(cache.SEAL_SUFFIX)
    }


def seal_tree(directory: Path) -> None:
    """Write and seal ``directory``'s manifest (a finished install, before it is renamed in)."""
    manifest = json.dumps(_digests(directory), sort_keys=True).encode()
    (directory / MANIFEST).write_bytes(manifest)
    cache.seal(directory / MANIFEST, manifest)


# npm's own error lines ("npm ERR!" before npm 9.8, "npm error" since); the code
# line names a network failure: the machine's (no registry), not a package's.
_NPM_ERROR = re.compile(r"^npm (?:ERR!|error)\s*(.*)$")
_NPM_DETAIL_SKIP = re.compile(r"^(code|errno|syscall|path|dest|A complete log|Log files)\b")
_NPM_NETWORK = {"ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNRESET"}
_NPM_NETWORK |= {"ENETUNREACH", "EHOSTUNREACH", "ENOTCACHED"}  # ENOTCACHED: --offline


def npm_failure(output: str) -> JsInstallError:
    """npm's failure in its own words: its first informative error line; a
    network failure (no registry reachable, nothing in npm's cache) is the machine's."""
    lines = [m.group(1).strip() for x in output.splitlines() if (m := _NPM_ERROR.match(x))]
    lines = [x for x in lines if x]
    detail = next((x for x in lines if not _NPM_DETAIL_SKIP.match(x)), lines[0] if lines else "")
    codes = {x.split()[1] for x in lines if x.startswith("code ") and len(x.split()) > 1}
    if codes & _NPM_NETWORK:
        return JsInstallFault(
            f"npm could not reach its registry, and its cache lacks the packages: npm error {detail}"
        )
    quoted = f"npm error {detail}" if detail else "no output"
    return JsInstallError(f"npm ci failed: {quoted}"[:400])


def _install_into(final: Path) -> None:
    stage = final.with_name(f".stage-{final.name}-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    for name in SOURCES:
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SOURCE_DIR / name, stage / name)
    env = dict(os.environ, ONNXRUNTIME_NODE_INSTALL="skip")  # even if scripts ran: no CUDA download
    command = ["npm", "ci", "--ignore-scripts", "--no-bin-links", "--no-audit", "--no-fund"]
    try:
        proc = subprocess.run(
            [*command, "--omit=dev"],
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
        raise npm_failure(proc.stderr + "\n" + proc.stdout)
    _prune_other_platforms(stage)
    seal_tree(stage)
    os.replace(stage, final)  # atomic: readers see the whole directory or none


_VERIFIED: dict[Path, dict[str, str]] = {}  # install directory -> its checked manifest


def unverified(directory: Path) -> str | None:
    """Why ``directory`` must not be used (not installed, its seal missing or
    not this user's, a file changed since install, a symbolic link or special
    file in it), or None; checked once per process."""
    if directory in _VERIFIED:
        return None
    if directory.is_symlink():
        return "the install is a symbolic link"
    if not (directory / MANIFEST).is_file():
        return "not installed"
    data, why = cache.verified_bytes(directory / MANIFEST)
    if data is None:
        return f"manifest {why}"
    try:
        found = _digests(directory)
    except cache.UnsafeEntry as exc:
        return str(exc)
    manifest = json.loads(data)
    if manifest != found:
        return "files changed since install"
    _VERIFIED[directory] = manifest
    return None


def _remove(path: Path) -> None:
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def ensure_installed(cache_root: Path | None) -> JsInstall:
    """The installed runners under ``cache_root`` (a private temporary directory
    when None), verified against their seal; installed now when there is none,
    or one that fails its check (nothing of it ran). Raises JsInstallError
    (JsInstallFault when the machine is why)."""
    reason = tools_missing()
    if reason:
        raise JsInstallError(reason)
    final = runners_root(cache_root) / install_key()
    why = unverified(final)
    if why is None:
        return JsInstall(final, False, 0.0, manifest=_VERIFIED[final])
    began = time.perf_counter()
    try:
        with _locked(final.with_name(final.name + ".lock")):
            if unverified(final) is None:  # another process installed it meanwhile
                return JsInstall(final, False, 0.0, manifest=_VERIFIED[final])
            _remove(final)
            _install_into(final)
            if unverified(final) is not None:
                raise JsInstallError(f"the fresh install {final} fails its own seal")
    except (OSError, JsInstallError) as exc:
        failed = _install_failed(why, exc)
        if failed is exc:
            raise
        # npm's failure is said whole in the new message; an OSError stays its cause.
        raise failed from (exc if isinstance(exc, OSError) else None)
    rebuilt = "" if why == "not installed" else why
    return JsInstall(final, True, time.perf_counter() - began, rebuilt, _VERIFIED[final])


def _install_failed(why: str, exc: BaseException) -> BaseException:
    """The install's failure, saying why one was needed; the machine's fault
    (no registry, a read-only or full disk) in words, as a JsInstallFault."""
    need = "an install" if why == "not installed" else f"a new install ({why})"
    fault = machine_fault(exc)
    if fault is not None:
        return JsInstallFault(f"the JavaScript runners need {need}, but {fault}"[:400])
    if isinstance(exc, JsInstallError):
        return JsInstallError(f"the JavaScript runners need {need}, but {exc}"[:400])
    return exc


def verified_read(install: JsInstall, name: str) -> bytes:
    """The bytes of the install's file ``name``, read now and matched against the
    manifest (what a browser is served); JsInstallError when they changed since."""
    path = install.directory / name
    data = b""
    if name in install.manifest and not path.is_symlink():
        with open(path, "rb") as fh:
            data = fh.read()
        if hashlib.sha256(data).hexdigest() == install.manifest[name]:
            return data
    _VERIFIED.pop(install.directory, None)  # the next cell checks the whole install again
    raise JsInstallError(f"{name} in {install.directory} changed since the install was checked")


def _node_files(install: JsInstall) -> list[str]:
    """The runner's scripts and every file of onnxruntime-node and of the
    packages it depends on (transitively): all Node may load."""
    wanted, seen = [NODE_PACKAGE], set()
    while wanted:
        package = wanted.pop()
        meta = f"node_modules/{package}/package.json"
        if package in seen or meta not in install.manifest:
            continue
        seen.add(package)
        wanted += list(json.loads(verified_read(install, meta)).get("dependencies") or {})
    prefixes = tuple(f"node_modules/{p}/" for p in seen)
    return [n for n in install.manifest if n in NODE_SCRIPTS or n.startswith(prefixes)]


_NODE_COPIES: dict[Path, Path] = {}  # install directory -> the private runner script


def node_runner_script(install: JsInstall) -> Path:
    """``node_runner.mjs`` in a private copy of what Node runs (0700 temporary
    directory of this process, made once, removed at exit): each file written
    from the very bytes whose digest matched the manifest, so a file changed in
    the cache after the check is never what Node loads. JsInstallError when one
    changed since the check (the next cell checks, and reinstalls, again)."""
    script = _NODE_COPIES.get(install.directory)
    if script is not None and script.is_file():
        return script
    target = cache.private_dir("torchparity-node-")
    for name in _node_files(install):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        if cache.file_sha256(install.directory / name, target / name) != install.manifest[name]:
            shutil.rmtree(target, ignore_errors=True)
            _VERIFIED.pop(install.directory, None)
            raise JsInstallError(
                f"{name} in {install.directory} changed since the install was checked"
            )
    _NODE_COPIES[install.directory] = target / "node_runner.mjs"
    return target / "node_runner.mjs"
