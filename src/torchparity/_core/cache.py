"""The cache directory: where it lives by default, and which of its files may be loaded.

A cache directory holds reference outputs (``reference/``) and backend
artifacts (``artifacts/<backend>/``) shared between runs. Loading an artifact
runs code (TorchScript, an exported program, an AOTInductor shared library),
so a cache directory is untrusted: an entry is loaded only when it carries a
seal this user's runs wrote.

A seal is a ``<entry>.seal`` JSON file beside the entry: the entry's SHA-256,
the behavioural fingerprint of the model it was made from (see
cases/cache_keys.py; empty for an entry that has none, such as the native
runner) and an HMAC-SHA256 over (entry name, SHA-256, fingerprint) keyed by a
per-user secret kept outside the cache directory (``cache.key`` in the user
config directory, created 0600). ``open_sealed`` reads the entry's bytes once, checks them, and
hands the loader a private copy of exactly those bytes, so the file cannot be
swapped between check and load. An entry without a valid seal is deleted and
rebuilt; it is never loaded. See docs/security.md for what this protects
against and what it does not.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import os
import secrets
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

from torchparity._core.files import atomic_write_text

CACHE_ENV = "TORCHPARITY_CACHE_DIR"  # overrides the per-user cache directory
CONFIG_ENV = "TORCHPARITY_CONFIG_DIR"  # overrides the per-user config directory (the key)
APP = "torchparity"
KEY_FILE = "cache.key"
SEAL_SUFFIX = ".seal"

# Why an entry was not loaded (the row's backend_cache says "rebuilt (<why>)").
UNTRUSTED = "untrusted"  # no seal, or a seal this user's key did not sign
MISMATCH = "digest mismatch"  # sealed, but the bytes changed since
CHANGED = "model changed"  # sealed for a model that computed something else


def default_cache_dir() -> Path:
    """The per-user cache directory of the OS: $TORCHPARITY_CACHE_DIR, else
    Linux ``$XDG_CACHE_HOME/torchparity`` (``~/.cache/torchparity``), macOS
    ``~/Library/Caches/torchparity``, Windows ``%LOCALAPPDATA%\\torchparity\\Cache``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / APP / "Cache"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / APP
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / APP


def config_dir() -> Path:
    """The per-user config directory (holds the cache key): $TORCHPARITY_CONFIG_DIR,
    else ``$XDG_CONFIG_HOME/torchparity``, ``~/Library/Application Support/torchparity``
    or ``%APPDATA%\\torchparity``."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming") / APP
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / APP
    return Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / APP


def check_writable(path: Path, private: bool = False) -> str | None:
    """Why ``path`` cannot serve as a directory to write in, or None. A missing
    one is created (mode 0700 when ``private``: the per-user cache)."""
    if path.exists() and not path.is_dir():
        return f"{path} is not a directory"
    try:
        if private and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir(mode=0o700, exist_ok=True)
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"{path} is not writable ({exc.strerror or type(exc).__name__})"
    return None


_KEY: bytes | None = None


def user_key() -> bytes:
    """This user's secret for sealing cache entries, created on first use (0600)."""
    global _KEY
    if _KEY is not None:
        return _KEY
    path = config_dir() / KEY_FILE
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32))
    for _ in range(50):  # another process may be writing it right now
        text = path.read_text(encoding="ascii").strip()
        if len(text) == 64:
            _KEY = bytes.fromhex(text)
            return _KEY
        time.sleep(0.02)
    raise OSError(
        f"cache key {path} is malformed; delete it (sealed cache entries are then rebuilt)"
    )


def _mac(name: str, digest: str, fingerprint: str) -> str:
    message = f"{name}\0{digest}\0{fingerprint}".encode()
    return hmac.new(user_key(), message, hashlib.sha256).hexdigest()


def seal_path(entry: Path) -> Path:
    return entry.with_name(entry.name + SEAL_SUFFIX)


def seal(entry: Path, data: bytes, fingerprint: str = "") -> None:
    """Record the digest of ``data`` (the bytes just written to ``entry``) and the
    behavioural ``fingerprint`` of what it was made from, signed with this user's key."""
    digest = hashlib.sha256(data).hexdigest()
    record = {
        "sha256": digest,
        "fingerprint": fingerprint,
        "hmac": _mac(entry.name, digest, fingerprint),
    }
    atomic_write_text(seal_path(entry), json.dumps(record))


SEAL_LIMIT = 4096  # bytes: a seal is a short JSON object


def _read_seal(entry: Path) -> dict | None:
    path = seal_path(entry)
    # Only a regular file is read (a FIFO would block the run), and only its head.
    if path.is_symlink() or not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            record = json.loads(fh.read(SEAL_LIMIT + 1)[: SEAL_LIMIT + 1].decode("utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(record, dict) and all(
        isinstance(record.get(k), str) for k in ("sha256", "fingerprint", "hmac")
    )
    return record if ok else None


def verified_bytes(entry: Path, fingerprint: str = "") -> tuple[bytes | None, str]:
    """``(bytes, "")`` when ``entry`` is a regular file whose seal this user's key
    signed for ``fingerprint`` and whose bytes match it; else ``(None, why)``
    with ``UNTRUSTED``, ``CHANGED`` or ``MISMATCH``."""
    record = _read_seal(entry)
    if record is None or not hmac.compare_digest(
        record["hmac"], _mac(entry.name, record["sha256"], record["fingerprint"])
    ):
        return None, UNTRUSTED
    if not hmac.compare_digest(record["fingerprint"], fingerprint):
        return None, CHANGED
    if entry.is_symlink() or not entry.is_file():
        return None, UNTRUSTED
    data = entry.read_bytes()
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), record["sha256"]):
        return None, MISMATCH
    return data, ""


def discard(entry: Path) -> None:
    """Remove an entry and its seal (a stale, foreign or torn entry)."""
    entry.unlink(missing_ok=True)
    seal_path(entry).unlink(missing_ok=True)


_PRIVATE: list[str] = []


def private_copy(data: bytes, suffix: str) -> Path:
    """``data`` in a new file of a directory only this process uses (removed at
    exit): what a loader that needs a path reads after the bytes were verified."""
    if not _PRIVATE:
        _PRIVATE.append(tempfile.mkdtemp(prefix="torchparity-verified-"))  # 0700
        atexit.register(lambda: shutil.rmtree(_PRIVATE[0], ignore_errors=True))
    fd, path = tempfile.mkstemp(dir=_PRIVATE[0], suffix=suffix)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return Path(path)


# -- sealed trees (the JavaScript install) and lock files ---------------------------

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # absent on Windows, where links need privileges
_BINARY = getattr(os, "O_BINARY", 0)


class UnsafeEntry(ValueError):
    """A symbolic link or special file where a sealed tree holds only regular files."""


def tree_files(directory: Path) -> list[str]:
    """Every regular file under ``directory``, as sorted relative POSIX names.
    A symbolic link (to a file or a folder) or a special file anywhere in it
    raises UnsafeEntry naming it: a link is never followed, so what the seal
    covers is all that is there (a linked folder's files would be loaded unsealed)."""
    if directory.is_symlink():
        raise UnsafeEntry(f"{directory.name} is a symbolic link")
    found: list[str] = []
    pending = [directory]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                name = Path(entry.path).relative_to(directory).as_posix()
                if entry.is_symlink():
                    raise UnsafeEntry(f"a symbolic link in it: {name}")
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    found.append(name)
                else:
                    raise UnsafeEntry(f"a special file in it: {name}")
    return sorted(found)


def file_sha256(path: Path, copy_to: Path | None = None) -> str:
    """The SHA-256 of the regular file ``path`` (a link at its end is refused:
    OSError), read once in chunks; with ``copy_to``, the very bytes hashed are
    also written there (a new file, mode 0600), so the copy is what the digest says."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _BINARY)
    with os.fdopen(fd, "rb") as src:
        out = None
        if copy_to is not None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY
            out = os.fdopen(os.open(copy_to, flags, 0o600), "wb")
        try:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                if out is not None:
                    out.write(chunk)
        finally:
            if out is not None:
                out.close()
    return digest.hexdigest()


def open_lock(path: Path) -> int:
    """A descriptor of the lock file ``path`` (created if missing), never opened
    through a symbolic link: a link in its place is removed (its target is not
    touched) and a regular file made; anything else that is not a regular file
    is refused (OSError)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        if path.is_symlink():
            path.unlink()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _BINARY, 0o600)
        except OSError as exc:
            if path.is_symlink():  # made between the check and the open: once more
                continue
            raise exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(f"{path} is not a regular file; remove it")
        return fd
    raise OSError(f"{path} keeps turning into a symbolic link; not used as a lock")


_RUNNER_DIRS: dict[str, Path] = {}


def private_dir(prefix: str) -> Path:
    """A new directory only this process uses (0700), removed at exit."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def runner_dir(cache_root: Path | None, name: str) -> Path:
    """Where a runner is built or installed: ``<cache root>/<name>``, the run's
    one cache; without one (``--no-cache``), a private directory of this
    process (one per ``name``), removed at exit."""
    if cache_root is not None:
        return cache_root / name
    if name not in _RUNNER_DIRS:
        _RUNNER_DIRS[name] = private_dir(f"torchparity-{name}-")
    return _RUNNER_DIRS[name]
