"""The on-disk artifact cache of the backends: a TorchScript file, an .onnx
model, an exported program or an AOTInductor package, keyed by everything that
changes it, written atomically and sealed; an entry is loaded only when its seal matches
(src/torchparity/_core/cache.py), else rebuilt."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import torch

from torchparity._core import cache
from torchparity._core.files import safe_file_stem
from torchparity.backends.base import PrepareContext
from torchparity.backends.flat import FORM as FLAT_FORM
from torchparity.cases.cache_keys import library_version, module_fingerprint

__all__ = ["artifact_key", "library_version", "load_or_build"]

T = TypeVar("T")

_SCRATCH: list[str] = []  # temporary directories of --no-cache runs, removed at exit


def artifact_key(ctx: PrepareContext, module: torch.nn.Module, extra: Iterable[str] = ()) -> str:
    """The artifact's key: the pipeline's cell key (case code and weights,
    inputs, precision, device, backend, options, library versions; see
    cases/cache_keys.py), the module as the backend receives it, and the
    backend's own ``extra`` facts (route, exporter), and the dynamic dims it
    was asked to declare (shape mode)."""
    dynamic = [f"dynamic={d.name}:{d.at}:{d.min}:{d.max}" for d in ctx.dynamic]
    text = "|".join([ctx.cache_key, module_fingerprint(module), FLAT_FORM, *extra, *dynamic])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _scratch_dir() -> Path:
    path = tempfile.mkdtemp(prefix="torchparity-")
    if not _SCRATCH:
        atexit.register(lambda: [shutil.rmtree(p, ignore_errors=True) for p in _SCRATCH])
    _SCRATCH.append(path)
    return Path(path)


def _unlink_links_below(root: Path | None, folder: Path) -> None:
    """Remove a symbolic link in place of a folder torchparity makes under the
    cache root (``artifacts/``, ``artifacts/<backend>/``): writes go inside the
    one cache, never through a link to elsewhere (the link's target is not touched)."""
    if root is None or not folder.is_relative_to(root):
        return
    current = root
    for part in folder.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            current.unlink()


def load_or_build(
    ctx: PrepareContext,
    key: str,
    suffix: str,
    build: Callable[[Path], None],
    load: Callable[[Path], T],
) -> T:
    """The artifact for ``key``: loaded from the cache, or built with
    ``build(path)`` and then loaded, so the deployed form (the file) is always
    what runs. Records ``cache`` (hit / miss / rebuilt (why) / off) in ``ctx.notes``:
    an entry sealed for another behavioural fingerprint than ``ctx.fingerprint``
    (the module computes something else now) is "rebuilt (model changed)".

    Loading runs code, so a cached entry is loaded only when its seal (written
    by this user's run that built it, see src/torchparity/_core/cache.py) matches its bytes,
    and then from a private copy of the bytes checked. An entry without a
    valid seal is deleted and rebuilt without being loaded; so is one that
    fails to load. Writes go to a temporary name in the same directory and are
    renamed into place, so a reader never sees half a file.
    """
    if ctx.cache_dir is None:
        path = _scratch_dir() / f"artifact{suffix}"
        build(path)
        ctx.notes["cache"] = "off"
        return load(path)
    _unlink_links_below(ctx.runner_cache, ctx.cache_dir)
    ctx.cache_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.cache_dir / f"{safe_file_stem(ctx.cell.case, 60)}-{key}{suffix}"
    state = "miss"
    if path.exists() or path.is_symlink():
        data, why = cache.verified_bytes(path, ctx.fingerprint)
        if data is None:
            state = f"rebuilt ({why})"
        else:
            try:
                artifact = load(cache.private_copy(data, suffix))
            except Exception as exc:  # noqa: BLE001 - torn or broken though sealed: rebuild it
                state = f"rebuilt ({type(exc).__name__} loading the cached entry)"
            else:
                ctx.notes["cache"] = "hit"
                return artifact
        cache.discard(path)
    # The suffix stays last: some savers insist on it (.pt2). A unique name per writer.
    fd, tmp_name = tempfile.mkstemp(
        dir=ctx.cache_dir, prefix=f".{path.stem}.", suffix=f".tmp{suffix}"
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()  # some savers refuse an existing file; the unique name is ours
        build(tmp)
        data = tmp.read_bytes()
        os.replace(tmp, path)
        cache.seal(path, data, ctx.fingerprint)
    except OSError as exc:  # a full disk's write names no file: the entry's is said
        if exc.errno is not None:  # a real I/O error, not a builder's OSError (inspect's)
            exc.filename = exc.filename or str(path)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    ctx.notes["cache"] = state
    return load(cache.private_copy(data, suffix))
