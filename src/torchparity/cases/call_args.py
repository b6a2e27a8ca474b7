"""Keyword inputs: how a case's input factory may say ``model(x, mask=m)``.

An input factory returns positional arguments (a tuple, as before), keyword
arguments (a mapping: ``{"input_ids": ids, "attention_mask": mask}``), or
both (``((x,), {"mask": m})``). Every backend takes one flat positional
tuple of tensors (that is what a traced, exported or ONNX graph takes), so a
case with keywords is run through :class:`KeywordCall`: a module whose
``forward`` has the keywords as named parameters and calls the case's module
with them as keywords. Exported programs and ONNX graphs therefore name their
inputs ``input_ids``, ``attention_mask``; the C++ runners feed them in that
order. A keyword whose value is not a tensor (``use_cache=False``) is a
literal of that call, not an input.

The forward is generated from the layout (its source registered with
``linecache``, so TorchScript can script it when the wrapped module scripts);
the class is one per layout and lives in this module, so cache keys (which
hash a class's defining file) are the same in every process.
"""

from __future__ import annotations

import keyword
import linecache
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import torch

_LITERALS = (bool, int, float, str, type(None))
T = TypeVar("T")


@dataclass(frozen=True)
class KeywordLayout:
    """``positional`` leading arguments, then the tensor keywords ``names``
    (passed positionally, in this order), and ``literals`` for the call."""

    positional: int
    names: tuple[str, ...]
    literals: tuple[tuple[str, Any], ...] = ()

    def signature(self) -> str:
        params = [f"arg{i}" for i in range(self.positional)] + list(self.names)
        return ", ".join(params)


def split_call(raw: Any) -> tuple[tuple, dict[str, Any]]:
    """A factory's return value as (positional, keywords)."""
    if isinstance(raw, Mapping):
        return (), dict(raw)
    if (
        isinstance(raw, (tuple, list))
        and len(raw) == 2
        and isinstance(raw[0], (tuple, list))
        and isinstance(raw[1], Mapping)
    ):
        return tuple(raw[0]), dict(raw[1])
    return (raw if isinstance(raw, tuple) else tuple(raw)), {}


def layout_of(raw: Any) -> KeywordLayout | None:
    """The keyword layout of a factory's return value (None: positional only).
    A keyword that is not an identifier, or a non-tensor keyword that is not a
    plain literal, is refused with its name."""
    args, kwargs = split_call(raw)
    if not kwargs:
        return None
    names, literals = [], []
    for name, value in kwargs.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"keyword input {name!r} is not a Python identifier")
        if name == "self" or (name.startswith("arg") and name[3:].isdigit()):
            raise ValueError(f"keyword input {name!r} clashes with a positional parameter name")
        if isinstance(value, torch.Tensor):
            names.append(name)
        elif isinstance(value, _LITERALS) and not (
            isinstance(value, float) and not math.isfinite(value)
        ):
            literals.append((name, value))
        else:
            raise TypeError(
                f"keyword input {name!r} is a {type(value).__name__}: keyword inputs are "
                "tensors, or literals (bool, int, float, str, None) passed as they are"
            )
    return KeywordLayout(len(args), tuple(names), tuple(literals))


def as_positional(raw: Any) -> tuple:
    """The flat positional inputs every backend takes: the positional
    arguments, then the tensor keywords in the factory's order."""
    args, kwargs = split_call(raw)
    return args + tuple(v for v in kwargs.values() if isinstance(v, torch.Tensor))


class KeywordCall(torch.nn.Module):
    """Calls ``inner`` with keywords from positional inputs (see the module doc)."""

    layout: KeywordLayout

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def extra_repr(self) -> str:
        literals = "".join(f", {k}={v!r}" for k, v in self.layout.literals)
        return f"forward({self.layout.signature()}{literals})"


_CLASSES: dict[KeywordLayout, type[KeywordCall]] = {}


def _forward_source(layout: KeywordLayout) -> str:
    call = [f"arg{i}" for i in range(layout.positional)]
    call += [f"{n}={n}" for n in layout.names]
    call += [f"{k}={v!r}" for k, v in layout.literals]
    return f"def forward(self, {layout.signature()}):\n    return self.inner({', '.join(call)})\n"


def generated_subclass(
    base: type[T], source: str, number: int, attrs: dict[str, Any], names: dict[str, Any]
) -> type[T]:
    """A subclass of ``base`` (named as it, in its module) whose ``forward`` is
    the one ``source`` (our own template, with ``names`` as its globals)
    defines, with ``attrs``. The source is registered with ``linecache``, as
    TorchScript reads a forward's source through it."""
    filename = f"<torchparity {base.__name__} {number}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), dict(names), namespace)  # noqa: S102
    body = {"forward": namespace["forward"], "__module__": base.__module__, **attrs}
    return cast("type[T]", type(base.__name__, (base,), body))


def _class_for(layout: KeywordLayout) -> type[KeywordCall]:
    if layout not in _CLASSES:
        source = _forward_source(layout)
        _CLASSES[layout] = generated_subclass(
            KeywordCall, source, len(_CLASSES), {"layout": layout}, {}
        )
    return _CLASSES[layout]


def keyword_call(module: torch.nn.Module, layout: KeywordLayout) -> KeywordCall:
    """``module`` called with keywords from the flat positional inputs."""
    return _class_for(layout)(module).train(module.training)
