"""One cache-key scheme for everything cached between cells and runs: the fp64
reference and every backend artifact. A key covers the case's code and
weights, the inputs, the precision, device, backend and its options, the seed
and the versions of the libraries that produce the cached thing, so an edited
model or an upgraded exporter is never served a stale entry."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from torchparity.cases.inputs import tensor_digest

KEY_LIBRARIES = ("torch", "onnx", "onnxscript", "onnxruntime")


def library_version(dist: str) -> str:
    """The installed version of ``dist`` ("-" when absent)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "-"


@functools.lru_cache(maxsize=512)
def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return "-"


def code_fingerprint(obj: Any) -> str:
    """Where ``obj`` (a class or function) is defined, as a digest of its source
    file: any edit to the file counts. torch's own code is covered by the torch
    version in the key. Not ``__module__``: a --case-file module gets a new name
    in every process."""
    if obj is None:
        return "-"
    module = getattr(obj, "__module__", "") or ""
    name = getattr(obj, "__qualname__", type(obj).__qualname__)
    if module.split(".")[0] == "torch":
        return name
    try:
        source = inspect.getsourcefile(obj)
    except TypeError:  # built-in
        source = None
    except OSError:  # defined in a REPL or `python -c`: no file, so this object only
        return f"{name}:unsourced-{id(obj):x}"
    return f"{name}:{_file_digest(source) if source else repr(obj)}"


def module_fingerprint(module: torch.nn.Module) -> str:
    """Weights, structure and code of ``module``."""
    parts = [repr(module), tensor_digest(list(module.state_dict().values()))]
    parts += sorted({code_fingerprint(type(m)) for m in module.modules()})
    return _hash(parts, 16)


def case_fingerprint(case: Any, module: torch.nn.Module) -> str:
    """The case's module fingerprint and the code of its factories (an edited
    input factory or op callable changes the key)."""
    parts = [case.name, module_fingerprint(module), code_fingerprint(case.make_inputs)]
    parts.append(code_fingerprint(case.extra.get("fn")))
    return _hash(parts, 16)


def input_signature(inputs: Iterable[Any]) -> str:
    return ";".join(
        f"{x.dtype}{tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        for x in inputs
    )


def versions() -> str:
    return ",".join(f"{d}={library_version(d)}" for d in KEY_LIBRARIES)


def cell_key(
    case_print: str,
    input_digest: str,
    precision: str,
    device: str,
    backend: str,
    options: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> str:
    """The key of a cached reference (backend ``reference``) or artifact."""
    given = options or {}
    opts = ",".join(f"{k}={given[k]}" for k in sorted(given))
    return _hash(
        [case_print, input_digest, precision, device, backend, opts, str(seed), versions()], 24
    )


def _hash(parts: Iterable[str], length: int) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:length]
