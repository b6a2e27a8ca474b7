"""OpInfo samples as code: each sample becomes one call expression whose
tensors are forward arguments and whose other arguments are literals, so the
same module scripts (TorchScript parses source), exports and compiles.

A batch of samples is one module: ``forward(t0, ..., tn)`` returns a tuple
with one entry per sample, so a backend prepares (exports, compiles) once per
cell instead of once per sample.
"""

from __future__ import annotations

import itertools
import linecache
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

_COUNTER = itertools.count()


class Unrepresentable(ValueError):
    """A sample argument that has no literal form (an object, a complex number)."""


@dataclass
class Call:
    """One sample as code: ``expr`` calls the op on placeholders ``{0}``,
    ``{1}``, ... that stand for ``tensors`` in order."""

    expr: str
    tensors: tuple[torch.Tensor, ...]
    label: str


def _float_literal(value: float) -> str:
    if math.isnan(value):
        return "float('nan')"
    if math.isinf(value):
        return "float('inf')" if value > 0 else "-float('inf')"
    return repr(float(value))


def _literal(value: Any, tensors: list[torch.Tensor]) -> str:
    """Source text for ``value``; tensors become placeholders appended to ``tensors``."""
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.is_complex() or value.is_quantized:
            raise Unrepresentable(f"{value.layout} {value.dtype} tensor")
        tensors.append(value)
        return f"{{{len(tensors) - 1}}}"
    if value is None or isinstance(value, (bool, str)):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        return _float_literal(value)
    if isinstance(value, (torch.dtype, torch.memory_format, torch.layout)):
        return f"torch.{str(value).removeprefix('torch.')}"
    if isinstance(value, torch.device):
        return f"torch.device({str(value)!r})"
    if isinstance(value, (list, tuple)):
        items = [_literal(v, tensors) for v in value]
        if isinstance(value, tuple):
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        return "[" + ", ".join(items) + "]"
    raise Unrepresentable(type(value).__name__)


def sample_call(callee: str, sample: Any, method: str | None = None) -> Call:
    """The call expression of one ``SampleInput`` (``input``, ``args``, ``kwargs``):
    ``callee(input, *args, **kwargs)``, or ``input.method(*args, **kwargs)``
    when ``method`` is given and the input is a tensor."""
    tensors: list[torch.Tensor] = []
    parts = [_literal(sample.input, tensors)]
    parts += [_literal(a, tensors) for a in sample.args]
    parts += [f"{k}={_literal(v, tensors)}" for k, v in sample.kwargs.items()]
    if method and isinstance(sample.input, torch.Tensor):
        expr = f"{parts[0]}.{method}({', '.join(parts[1:])})"
    else:
        expr = f"{callee}({', '.join(parts)})"
    return Call(expr, tuple(tensors), describe(sample, expr, tensors))


def method_for(op: Callable[..., Any], method_variant: Any) -> str | None:
    """The Tensor method to call when ``op`` has no public torch path (OpInfo
    wraps many methods in lambdas, which TorchScript cannot script)."""
    if callee_for(op)[0] != "_op" or method_variant is None:
        return None
    name = getattr(method_variant, "__name__", None)
    return name if name and getattr(torch.Tensor, name, None) is method_variant else None


def describe(sample: Any, expr: str, tensors: Sequence[torch.Tensor]) -> str:
    """A one-line label: the call with each tensor shown as shape and dtype."""
    shown = [f"<{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}>" for t in tensors]
    text = expr.format(*shown)
    name = getattr(sample, "name", "")
    return (f"{name}: {text}" if name else text)[:300]


def batch_source(calls: Sequence[Call]) -> tuple[str, int]:
    """Source of ``forward`` computing every call; returns it and the input count."""
    args: list[str] = []
    results: list[str] = []
    for call in calls:
        names = [f"t{len(args) + i}" for i in range(len(call.tensors))]
        args += names
        results.append(call.expr.format(*names))
    body = "(" + ", ".join(results) + ("," if len(results) == 1 else "") + ")"
    params = "".join(f", {a}" for a in args)
    return f"def forward(self{params}):\n    return {body}\n", len(args)


def batch_module(calls: Sequence[Call], namespace: dict[str, Any], name: str) -> torch.nn.Module:
    """A module whose forward takes every call's tensors in order and returns
    a tuple with one output per call. The source is registered with linecache
    so ``torch.jit.script`` (which reads source) sees it like a file's."""
    source, _ = batch_source(calls)
    filename = f"<torchparity-opinfo-{next(_COUNTER)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    scope: dict[str, Any] = {"torch": torch, **namespace}
    exec(compile(source, filename, "exec"), scope)
    safe = "".join(c if c.isalnum() else "_" for c in name)
    cls = type(
        f"OpInfo_{safe}", (torch.nn.Module,), {"forward": scope["forward"], "__module__": __name__}
    )
    return cls()


def callee_for(op: Callable[..., Any]) -> tuple[str, dict[str, Any]]:
    """How the generated source names ``op``: its public torch path when it
    has one (TorchScript resolves those to builtins), else a global ``_op``."""
    for prefix, namespace in (
        ("torch", torch),
        ("torch.nn.functional", torch.nn.functional),
        ("torch.linalg", torch.linalg),
        ("torch.special", torch.special),
        ("torch.fft", torch.fft),
    ):
        name = getattr(op, "__name__", None)
        if name and getattr(namespace, name, None) is op:
            return f"{prefix}.{name}", {}
    return "_op", {"_op": op}
