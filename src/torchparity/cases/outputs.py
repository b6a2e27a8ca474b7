"""The one output flattening, used for the reference, eager and every backend:
nested outputs (tensor, tuple, list, dict, dataclass, any mix) become named
tensor leaves with torch's pytree, and every leaf that is not a tensor (None,
a string, a library's cache object) is named in ``dropped`` rather than lost
without a word."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.utils._pytree as pytree


@dataclass
class Flattened:
    """A model output as named tensor leaves, plus the non-tensor leaves left out."""

    names: list[str]
    tensors: list[torch.Tensor]
    dropped: list[str] = field(default_factory=list)  # "name: type" of non-tensor leaves
    # "name: type" of the leaves that were Python numbers (in ``tensors`` as 0-d tensors)
    numbers: list[str] = field(default_factory=list)

    @property
    def numel(self) -> int:
        return sum(t.numel() for t in self.tensors)

    def by_name(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.tensors, strict=True))


def _register_dataclasses(tree: Any) -> None:
    """Teach pytree about output dataclasses it does not know yet (e.g. a
    library's output record), so they flatten like any container."""
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        cls = type(tree)
        if cls not in pytree.SUPPORTED_NODES:
            pytree.register_dataclass(cls)
        for f in dataclasses.fields(tree):
            _register_dataclasses(getattr(tree, f.name))
    elif isinstance(tree, list | tuple):
        for item in tree:
            _register_dataclasses(item)
    elif isinstance(tree, dict):
        for item in tree.values():
            _register_dataclasses(item)


def flatten(tree: Any) -> Flattened:
    """Named tensor leaves of ``tree``: names like ``out``, ``[0]``, ``['logits']``,
    ``.hidden[1]``. Python numbers become 0-d tensors; other leaves are dropped
    and named."""
    _register_dataclasses(tree)
    leaves, _ = pytree.tree_flatten_with_path(tree)
    out = Flattened([], [])
    for path, leaf in leaves:
        name = pytree.keystr(path) or "out"
        if isinstance(leaf, bool | int | float):
            out.numbers.append(f"{name}: {type(leaf).__name__}")
            leaf = torch.tensor(leaf)
        if isinstance(leaf, torch.Tensor):
            out.names.append(name)
            out.tensors.append(leaf)
        else:
            out.dropped.append(f"{name}: {type(leaf).__name__}")
    return out


def tensor_leaves(tree: Any) -> tuple[torch.Tensor, ...]:
    """The tensor leaves of ``tree`` in :func:`flatten` order (what graph backends return)."""
    return tuple(flatten(tree).tensors)


def flat_leaves(value: Any) -> list[Any]:
    """The leaves of a graph backend's flat output (a tuple or list of tensors,
    possibly nested one level by a runtime), in order."""
    return list(pytree.tree_leaves(value))


def no_tensor_output(out: Flattened) -> str | None:
    """Why a module's output (flattened) holds no tensor at all, or None: only
    None, Python numbers or an empty container. Eager returns it, but no
    graph can (a number computed from a tensor leaves the graph), and a
    verdict on it would judge Python's arithmetic, not a backend."""
    if len(out.tensors) > len(out.numbers):
        return None
    what = ", ".join(out.numbers + out.dropped) or "an empty container"
    return (
        f"no output tensors to compare: the module's output is {what}; return the tensors "
        "a deployed model returns (`return y`, not `float(y)`, `y.item()` or nothing)"
    )
