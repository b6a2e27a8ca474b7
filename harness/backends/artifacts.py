"""The on-disk artifact cache of the backends: a TorchScript file, an .onnx
model, an exported program or an AOTInductor package, keyed by everything that
changes it, written atomically and rebuilt (never trusted) when it fails to load."""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.metadata
import inspect
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import torch

from harness.backends.base import PrepareContext
from harness.engine.inputs import tensor_digest

T = TypeVar("T")

_SCRATCH: list[str] = []  # temporary directories of --no-cache runs, removed at exit


def library_version(dist: str) -> str:
    """The installed version of ``dist`` ("-" when absent): part of cache keys."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "-"


@functools.lru_cache(maxsize=256)
def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return "-"


def _class_source(cls: type) -> str:
    """Where ``cls`` is defined, as a digest of its source file (cheaper than
    inspect.getsource and stricter: any edit to the file counts). torch's own
    classes are covered by the torch version in the key."""
    if cls.__module__.split(".")[0] == "torch":
        return cls.__qualname__
    try:
        source = inspect.getsourcefile(cls)
    except TypeError:  # built-in class
        source = None
    # Not __module__: a --case-file module gets a new name in every process.
    return f"{cls.__qualname__}:{_file_digest(source) if source else '-'}"


def module_fingerprint(module: torch.nn.Module) -> str:
    """Weights, structure and code of ``module``: an edited model must not be
    served a stale artifact."""
    parts = [repr(module), tensor_digest(list(module.state_dict().values()))]
    parts += sorted({_class_source(type(m)) for m in module.modules()})
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def artifact_key(ctx: PrepareContext, module: torch.nn.Module, extra: Iterable[str] = ()) -> str:
    """The cache key: the harness's key (case, precision, device, inputs, seed,
    torch), the backend and its options, the module's fingerprint and ``extra``
    (e.g. onnx/onnxruntime versions)."""
    options = ",".join(f"{k}={ctx.options[k]}" for k in sorted(ctx.options))
    text = "|".join(
        [ctx.cache_key, ctx.cell.backend, options, module_fingerprint(module), *extra]
    )
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
    path = ctx.cache_dir / f"{ctx.cell.case}-{key}{suffix}"
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

