"""Flat outputs for graph backends: TorchScript, ONNX and torch.export want
plain tensors out, while models return dicts, dataclasses and library objects.
The module is wrapped to return the flat tuple of its tensor leaves (in
:func:`torchparity.cases.outputs.flatten` order); the pipeline names them with
eager's leaf names, so no backend rebuilds eager's structure inside the timed
call.

The wrapper's ``forward`` takes the wrapped module's own parameter names
(``x``; ``input_ids, attention_mask`` for keyword inputs, cases/call_args.py),
so an exported program's placeholders and an ONNX graph's inputs carry them;
a name it cannot take (``*args``) becomes ``input_<i>``. The forward is
generated per list of names, as ``KeywordCall``'s is.
"""

from __future__ import annotations

import inspect
import keyword
from typing import Any

import torch

from torchparity.cases.call_args import generated_subclass
from torchparity.cases.outputs import tensor_leaves

# Part of every artifact's key (backends/artifacts.py): what the wrapper is
# changed when its graphs change (here: named inputs), so no cached artifact
# of the former wrapper is served.
FORM = "flat-outputs=named-inputs"
_RESERVED = {"self", "_leaves"}  # names the generated forward uses itself


class FlatOutputs(torch.nn.Module):
    """``module`` whose forward returns the tuple of its output's tensor leaves
    (a generated subclass per list of input names: :func:`flat_outputs`)."""

    input_names: tuple[str, ...] = ()

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.inner = module

    def forward(self, *inputs: Any) -> tuple[torch.Tensor, ...]:
        return tensor_leaves(self.inner(*inputs))


def forward_names(module: torch.nn.Module, count: int) -> tuple[str, ...]:
    """The names of the first ``count`` parameters of ``module.forward`` (the
    inputs are passed positionally); ``input_<i>`` where a name cannot be had."""
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):  # a builtin or C++ forward has no signature
        params = []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = []
    for i in range(count):
        p = (
            params[i]
            if i < len(params) and all(q.kind in positional for q in params[: i + 1])
            else None
        )
        ok = p is not None and p.name.isidentifier() and not keyword.iskeyword(p.name)
        names.append(p.name if p is not None and ok and p.name not in _RESERVED else f"input_{i}")
    if len(set(names)) < len(names):  # input_<i> beside a parameter of that very name
        return tuple(f"input_{i}" for i in range(count))
    return tuple(names)


_CLASSES: dict[tuple[str, ...], type[FlatOutputs]] = {}


def _class_for(names: tuple[str, ...]) -> type[FlatOutputs]:
    if names not in _CLASSES:
        args = ", ".join(names)
        source = f"def forward(self, {args}):\n    return _leaves(self.inner({args}))\n"
        _CLASSES[names] = generated_subclass(
            FlatOutputs, source, len(_CLASSES), {"input_names": names}, {"_leaves": tensor_leaves}
        )
    return _CLASSES[names]


def flat_outputs(module: torch.nn.Module, count: int) -> FlatOutputs:
    """``module`` wrapped to return its flat tensor leaves, called with
    ``count`` positional inputs named after its own forward's parameters."""
    return _class_for(forward_names(module, count))(module)
