"""The on-disk artifact cache of the backends: a TorchScript file, an .onnx
model, an exported program or an AOTInductor package, keyed by everything that
changes it, written atomically and rebuilt (never trusted) when it fails to load."""

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

from harness.backends.base import PrepareContext
from harness.engine.cache_keys import library_version, module_fingerprint
from harness.rundir import safe_file_stem

__all__ = ["artifact_key", "library_version", "load_or_build"]

T = TypeVar("T")

_SCRATCH: list[str] = []  # temporary directories of --no-cache runs, removed at exit


def artifact_key(ctx: PrepareContext, module: torch.nn.Module, extra: Iterable[str] = ()) -> str:
    """The artifact's key: the pipeline's cell key (case code and weights,
    inputs, precision, device, backend, options, library versions; see
    engine/cache_keys.py), the module as the backend receives it, and the
    backend's own ``extra`` facts (route, exporter)."""
    text = "|".join([ctx.cache_key, module_fingerprint(module), *extra])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _scratch_dir() -> Path:
    path = tempfile.mkdtemp(prefix="torchparity-")
    if not _SCRATCH:
        atexit.register(lambda: [shutil.rmtree(p, ignore_errors=True) for p in _SCRATCH])
    _SCRATCH.append(path)
    return Path(path)


def load_or_build(
    ctx: PrepareContext,
    key: str,
    suffix: str,
    build: Callable[[Path], None],
    load: Callable[[Path], T],
) -> T:
    """The artifact for ``key``: loaded from the cache, or built with
    ``build(path)`` and then loaded, so the deployed form (the file) is always
    what runs. Records ``cache`` (hit / miss / rebuilt / off) in ``ctx.notes``.

    A cached file that fails to load is deleted and rebuilt. Writes go to a
    temporary name in the same directory and are renamed into place, so a
    reader (another worker, a later run) never sees half a file.
    """
    if ctx.cache_dir is None:
        path = _scratch_dir() / f"artifact{suffix}"
        build(path)
        ctx.notes["cache"] = "off"
        return load(path)
    ctx.cache_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.cache_dir / f"{safe_file_stem(ctx.cell.case, 60)}-{key}{suffix}"
    state = "miss"
    if path.is_file():
        try:
            artifact = load(path)
        except Exception as exc:  # torn, truncated or foreign file: rebuild it
            state = f"rebuilt ({type(exc).__name__} loading the cached entry)"
            path.unlink(missing_ok=True)
        else:
            ctx.notes["cache"] = "hit"
            return artifact
    # The suffix stays last: some savers insist on it (.pt2).
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{suffix}")
    try:
        build(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    ctx.notes["cache"] = state
    return load(path)

