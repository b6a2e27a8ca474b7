"""Flattening of model outputs (tensor, tuple, list, dict, dataclass, any nested
mix) into named tensor leaves, with torch's pytree utility."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.utils._pytree as pytree


def _register_dataclasses(tree: Any) -> None:
    """Teach pytree about output dataclasses it does not know yet (e.g. a
    library's output record), so they flatten like any container."""
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        cls = type(tree)
        if cls not in pytree.SUPPORTED_NODES:
            pytree.register_dataclass(cls)
        for f in dataclasses.fields(tree):
            _register_dataclasses(getattr(tree, f.name))
    elif isinstance(tree, (list, tuple)):
        for item in tree:
            _register_dataclasses(item)
    elif isinstance(tree, dict):
        for item in tree.values():
            _register_dataclasses(item)


def flatten_outputs(tree: Any) -> tuple[list[str], list[torch.Tensor]]:
    """Named tensor leaves of ``tree``: names like ``out``, ``[0]``, ``['logits']``,
    ``.hidden[1]``. Python numbers become 0-d tensors; None and strings are dropped."""
    _register_dataclasses(tree)
    leaves, _ = pytree.tree_flatten_with_path(tree)
    names: list[str] = []
    tensors: list[torch.Tensor] = []
    for path, leaf in leaves:
        if isinstance(leaf, bool | int | float):
            leaf = torch.tensor(leaf)
        if not isinstance(leaf, torch.Tensor):
            continue
        names.append(pytree.keystr(path) or "out")
        tensors.append(leaf)
    return names, tensors


def output_structure(tree: Any) -> pytree.TreeSpec:
    """The pytree spec of ``tree``, so a backend can rebuild eager's structure from leaves."""
    _register_dataclasses(tree)
    return pytree.tree_structure(tree)


def unflatten_outputs(leaves: list[Any], spec: pytree.TreeSpec) -> Any:
    return pytree.tree_unflatten(leaves, spec)
