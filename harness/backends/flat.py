"""Flat outputs for graph backends: TorchScript, ONNX and torch.export want
plain tensors out, while models return dicts and dataclasses. The module is
wrapped to return a flat tuple of tensor leaves, and the prepared callable
rebuilds eager's structure from them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.utils._pytree as pytree

from harness.engine.outputs import flatten_outputs, output_structure, unflatten_outputs


class FlatOutputs(torch.nn.Module):
    """``module`` whose forward returns the tuple of its output's tensor leaves
    (in :func:`harness.engine.outputs.flatten_outputs` order)."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.inner = module

    def forward(self, *inputs: Any) -> tuple[torch.Tensor, ...]:
        return tuple(flatten_outputs(self.inner(*inputs))[1])


def eager_structure(module: torch.nn.Module, example_inputs: tuple) -> pytree.TreeSpec:
    """The output structure eager produces (one forward of ``module``)."""
    with torch.no_grad():
        return output_structure(module(*example_inputs))


def restructured(
    call: Callable[..., Any], spec: pytree.TreeSpec, convert: Callable[[Any], Any] | None = None
) -> Callable[..., Any]:
    """``call`` (returning leaves in any nesting) made to return ``spec``'s
    structure; ``convert`` maps each leaf first (e.g. numpy -> torch)."""
    expected = spec.num_leaves

    def run(*inputs: Any) -> Any:
        leaves = pytree.tree_leaves(call(*inputs))
        if convert is not None:
            leaves = [convert(x) for x in leaves]
        if len(leaves) != expected:
            raise RuntimeError(
                f"backend returned {len(leaves)} output tensors where eager returns {expected}"
            )
        return unflatten_outputs(leaves, spec)

    return run

