"""One cache-key scheme for everything cached between cells and runs: the fp64
reference and every backend artifact. A key covers the case's code and
weights, the inputs, the precision, device, backend and its options, the seed
and the versions of the libraries that produce the cached thing, so an edited
model or an upgraded exporter is never served a stale entry.

The key says where the model is defined; the *behavioural fingerprint*
(``behaviour_probe``) says what it computes: the digest of its fp64 output on
a small fixed probe input. It is sealed with every cached entry, and an entry
whose fingerprint differs from the module's now is rebuilt ("model changed"):
an edit in a helper module the forward calls, a constructor argument that is
not a parameter, a config value or an environment variable read at build time
change no file the key covers, but they change the probe's output
(docs/security.md, "Cache keys")."""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.metadata
import inspect
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from torchparity.cases.call_args import as_positional
from torchparity.cases.inputs import InputGen, tensor_digest
from torchparity.cases.outputs import flatten

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


# -- the behavioural fingerprint ------------------------------------------------

PROBE_BATCH = 1  # the probe's batch: small, so probing costs a fraction of a cell


@dataclass(frozen=True)
class Probe:
    """What the module computes, as far as a cache entry needs to know."""

    fingerprint: str  # the digest of the fp64 output on the probe input
    nondeterministic: str = ""  # why the module does not reproduce itself ("" when it does)


_PROBES: dict[str, Probe] = {}


def _probe_output(case: Any, module: torch.nn.Module, inputs: tuple) -> list[torch.Tensor]:
    """The module's fp64 CPU output leaves on ``inputs``: its own copy of the
    module and of the inputs, one intra-op thread (a reduction's order then does
    not depend on the run's --threads), no autograd."""
    probe = copy.deepcopy(module).to(torch.float64)
    args = tuple(
        x.detach().clone().to(torch.float64)
        if isinstance(x, torch.Tensor) and x.is_floating_point()
        else copy.deepcopy(x)
        for x in inputs
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            return [t.detach().clone() for t in flatten(probe(*args)).tensors]
    finally:
        torch.set_num_threads(threads)


def _max_difference(a: list[torch.Tensor], b: list[torch.Tensor]) -> str:
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=True)):
        return "outputs of different shapes"
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if x.is_floating_point() or x.is_complex():
            diff = (x - y).abs().nan_to_num(nan=float("inf"))
            worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
        elif not torch.equal(x, y):
            return "different integer outputs"
    return f"max abs diff {worst:.3g}"


def behaviour_probe(case: Any, module: torch.nn.Module) -> Probe:
    """The module's behavioural fingerprint, computed once per process for each
    module fingerprint (code, structure, weights): two fp64 calls on a fixed
    probe input of batch ``PROBE_BATCH``. Two calls that differ make the module
    non-deterministic: its fingerprint is then new on every probe, so nothing is
    served from the cache for it. A probe that raises gives a new fingerprint too
    (the cell's own stages report the failure)."""
    key = case_fingerprint(case, module)
    if key in _PROBES:
        return _PROBES[key]
    try:
        # The flat positional form: ``module`` takes keyword inputs that way (call_args.py).
        inputs = as_positional(case.make_inputs(InputGen(case.name, 0, "probe"), PROBE_BATCH))
        first = _probe_output(case, module, inputs)
        second = _probe_output(case, module, inputs)
    except Exception as exc:  # noqa: BLE001 - unprobed: never matches a cached entry
        probe = Probe(f"unprobed-{type(exc).__name__}-{uuid.uuid4().hex}")
    else:
        digest, again = tensor_digest(first), tensor_digest(second)
        if digest == again:
            probe = Probe(digest)
        else:
            probe = Probe(f"nondeterministic-{uuid.uuid4().hex}", _max_difference(first, second))
    _PROBES[key] = probe
    return probe
