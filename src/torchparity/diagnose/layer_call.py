"""One layer's captured call as a module every backend can prepare: the
non-tensor arguments fixed, the tensors positional."""

from __future__ import annotations

from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn

# The model itself as a row of a layer table (shape mode's localization): no
# submodule can have this name, as every module has a ``forward`` method.
ROOT = "forward"


def layer_module(model: nn.Module, path: str) -> nn.Module:
    """The submodule at ``path``, or the model itself for ``ROOT``."""
    return model if path == ROOT else model.get_submodule(path)


class Bound(nn.Module):
    """``module`` called with fixed non-tensor arguments (and keyword
    arguments): its forward takes only the tensors, positionally, so every
    backend can prepare it with the captured inputs."""

    def __init__(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        super().__init__()
        self.inner = module
        leaves, self._spec = pytree.tree_flatten((args, kwargs))
        self._slots = [i for i, x in enumerate(leaves) if isinstance(x, torch.Tensor)]
        self._constants = [None if isinstance(x, torch.Tensor) else x for x in leaves]

    def forward(self, *tensors: torch.Tensor) -> Any:
        leaves = list(self._constants)
        for slot, t in zip(self._slots, tensors, strict=True):
            leaves[slot] = t
        args, kwargs = pytree.tree_unflatten(leaves, self._spec)
        return self.inner(*args, **kwargs)


def callable_layer(module: nn.Module, args: tuple, kwargs: dict) -> tuple[nn.Module, tuple]:
    """The layer as a module taking tensors positionally, and those tensors."""
    if not kwargs and all(isinstance(a, torch.Tensor) for a in args):
        return module, tuple(args)
    tensors = tuple(x for x in pytree.tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor))
    return Bound(module, args, kwargs), tensors
