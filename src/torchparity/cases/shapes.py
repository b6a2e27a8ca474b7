"""Dynamic dimensions: which input dims of a case may change size, and the run
shapes shape mode picks from them.

A case declares each dynamic dimension once (:class:`DynamicDim`: a name such
as ``batch`` or ``seq``, where it appears (input index -> axis), and the sizes
the case supports). The export shape is the case's own inputs; the harness
picks the run shapes (:func:`run_sizes`) below, inside and above it: sizes
that are never 0 or 1 (exporters specialise those), never the export size,
and never equal between two dimensions of one shape (an artifact built where
two dims had equal example values may have merged them: pytorch/pytorch#153896).
Inputs at a run shape are the export inputs resampled along the dynamic axes
(:func:`resize_inputs`), so ids, masks and value ranges stay those the case made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from torchparity.cases.inputs import InputGen

# The run-shape points of shape mode, in the order a run lists them.
SHAPE_POINTS: tuple[str, ...] = ("below", "inside", "above")


@dataclass(frozen=True)
class DynamicDim:
    """One dynamic dimension: ``name`` (an identifier: it names the dim in
    exported graphs), ``at`` (input index -> axis, for every input that has
    it), and the sizes the case supports, ``min`` to ``max`` inclusive."""

    name: str
    at: tuple[tuple[int, int], ...]
    min: int = 2
    max: int = 1024

    def __init__(
        self,
        name: str,
        at: Mapping[int, int] | Iterable[tuple[int, int]],
        min: int = 2,  # noqa: A002 - the declared range reads as min/max
        max: int = 1024,  # noqa: A002
    ) -> None:
        pairs: tuple[tuple[int, int], ...] = tuple(
            sorted(at.items() if isinstance(at, Mapping) else at)  # type: ignore[arg-type]
        )
        if not name.isidentifier():
            raise ValueError(f"dynamic dim name {name!r} is not an identifier")
        if not pairs:
            raise ValueError(f"dynamic dim {name!r} names no input axis (at=)")
        for index, axis in pairs:
            if index < 0 or axis < 0:
                # The exporters take axes as given (dynamic_axes, Dim maps): -2
                # would declare nothing and the artifact would come out static.
                raise ValueError(
                    f"dynamic dim {name!r}: input {index} axis {axis} is negative; "
                    "count inputs and axes from 0"
                )
        if not 0 <= min < max or max < 2:
            raise ValueError(
                f"dynamic dim {name!r}: need 0 <= min < max and max >= 2 (a dim of one "
                f"size, or of sizes 0 and 1 only, is not dynamic), got {min}..{max}"
            )
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "at", pairs)
        object.__setattr__(self, "min", int(min))
        object.__setattr__(self, "max", int(max))

    def describe(self) -> str:
        where = ", ".join(f"input {i} axis {a}" for i, a in self.at)
        return f"{self.name} [{self.min}, {self.max}] ({where})"


def check_dims(dims: Sequence[DynamicDim]) -> tuple[DynamicDim, ...]:
    """``dims`` as a tuple; two dims with one name, or one axis claimed twice
    (by two dims, or twice by one), is refused, naming them."""
    names = [d.name for d in dims]
    if len(set(names)) != len(names):
        raise ValueError(f"dynamic dims named twice: {', '.join(names)}")
    owner: dict[tuple[int, int], str] = {}
    for dim in dims:
        for index, axis in dim.at:
            if (index, axis) in owner:
                raise ValueError(
                    f"input {index} axis {axis} is declared by two dynamic dims "
                    f"({owner[index, axis]} and {dim.name}); an axis has one size: declare one"
                )
            owner[index, axis] = dim.name
    return tuple(dims)


def export_sizes(inputs: tuple, dims: Sequence[DynamicDim]) -> dict[str, int]:
    """Each dim's size in ``inputs`` (the export shape). Every input that
    carries a dim must agree on its size, which must lie in the dim's declared
    range, and two dims must not share one."""
    sizes: dict[str, int] = {}
    for dim in dims:
        seen = set()
        for index, axis in dim.at:
            if index >= len(inputs) or not isinstance(inputs[index], torch.Tensor):
                raise ValueError(f"dynamic dim {dim.name}: input {index} is not a tensor input")
            if axis >= inputs[index].dim():
                raise ValueError(f"dynamic dim {dim.name}: input {index} has no axis {axis}")
            seen.add(int(inputs[index].shape[axis]))
        if len(seen) != 1:
            raise ValueError(
                f"dynamic dim {dim.name} has several sizes in the inputs: {sorted(seen)}"
            )
        size = seen.pop()
        if not dim.min <= size <= dim.max:  # the artifact is built at this size
            raise ValueError(
                f"dynamic dim {dim.name}: the case's own size {size} (its export shape) "
                f"is outside its declared range [{dim.min}, {dim.max}]"
            )
        sizes[dim.name] = size
    clash = _equal_sizes(sizes)
    if clash:
        raise ValueError(
            f"dynamic dims {clash} have the same example size {sizes[clash[0]]}: an artifact "
            "built there may merge them (pytorch/pytorch#153896); give the case's inputs "
            "distinct sizes"
        )
    return sizes


def _equal_sizes(sizes: Mapping[str, int]) -> tuple[str, str] | None:
    items = list(sizes.items())
    for i, (a, x) in enumerate(items):
        for b, y in items[i + 1 :]:
            if x == y:
                return a, b
    return None


def _point_size(export: int, low: int, high: int, point: str) -> int | None:
    """One dim's size at ``point``: below (about half), inside (a quarter
    more, strictly between the export size and above; a quarter less when the
    export size is at the maximum), above (twice plus one, capped at the maximum)."""
    if point == "below":
        return max(low, export // 2) if low < export else None
    if point == "above":
        return min(high, 2 * export + 1) if high > export else None
    if point != "inside":
        raise ValueError(f"unknown shape point {point!r}; valid: {', '.join(SHAPE_POINTS)}")
    up, step = min(high, 2 * export + 1), max(1, export // 4)
    if up - export >= 2:
        return min(export + step, up - 1)
    down = max(low, export // 2)
    if export - down >= 2:
        return max(export - step, down + 1)
    return None


def run_sizes(dims: Sequence[DynamicDim], export: Mapping[str, int], point: str) -> dict[str, int]:
    """The sizes of the run shape ``point`` (one of SHAPE_POINTS): each dim
    moved in that direction within its range (never 0 or 1, never its export
    size), then nudged so no two dims share a size. ``ValueError`` says why a
    point does not exist for the case (e.g. the export size is the maximum)."""
    sizes: dict[str, int] = {}
    for dim in dims:
        low, high = max(dim.min, 2), dim.max
        size = _point_size(export[dim.name], low, high, point)
        if size is None:
            raise ValueError(
                f"no size {point} the export size {export[dim.name]} of {dim.name} "
                f"within its declared range [{dim.min}, {dim.max}]"
            )
        taken = set(sizes.values()) | {export[dim.name]}
        step = 1 if point != "below" else -1
        while size in taken:
            size += step
        if not low <= size <= high:
            raise ValueError(f"no free size {point} the export shape for {dim.name}")
        sizes[dim.name] = size
    return sizes


def describe_sizes(sizes: Mapping[str, int]) -> str:
    """``batch=8,seq=17``: a shape's dynamic sizes, as rows carry them."""
    return ",".join(f"{k}={v}" for k, v in sizes.items())


def resize_inputs(
    inputs: tuple, dims: Sequence[DynamicDim], sizes: Mapping[str, int], key: Iterable[object]
) -> tuple:
    """``inputs`` resampled to ``sizes`` along each dim's axes: positions drawn
    (with replacement) from the export inputs' own, the same positions for
    every input that carries the dim, so rows of different inputs stay together."""
    out = list(inputs)
    for dim in dims:
        index, axis = dim.at[0]
        old, new = int(inputs[index].shape[axis]), sizes[dim.name]
        picks = InputGen(*key, "resize", dim.name, new).integers(0, old, new)
        for index, axis in dim.at:
            out[index] = out[index].index_select(axis, picks)
    return tuple(out)


def dims_between(
    export: Sequence[torch.Tensor],
    run: Sequence[torch.Tensor],
    known: Mapping[tuple[int, int], DynamicDim],
) -> tuple[DynamicDim, ...]:
    """The dynamic dims of inputs seen at two shapes (a layer's inputs at the
    export and the run shape): every axis whose size differs, grouped by its
    (export size, run size). A group with a ``known`` dim's sizes (the case's
    ``batch``, 4 -> 9) takes its name and range; another one (a flattened
    batch x seq) is ``dim_<export>_<run>``, free from 2 (or less, as seen) to
    1024 (or more). ``ValueError`` says why the inputs cannot be declared so:
    their count or ranks differ, or two dims share an export size."""
    if len(export) != len(run):
        raise ValueError(
            f"{len(export)} tensor inputs at the export shape, {len(run)} at the run shape"
        )
    axes: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for index, (e, r) in enumerate(zip(export, run, strict=True)):
        if e.dim() != r.dim():
            raise ValueError(
                f"input {index} has rank {e.dim()} at the export shape, {r.dim()} at the run shape"
            )
        for axis, (a, b) in enumerate(zip(e.shape, r.shape, strict=True)):
            if a != b:
                axes.setdefault((int(a), int(b)), []).append((index, axis))
    dims = tuple(_dim_for(sizes, at, known.get(sizes)) for sizes, at in axes.items())
    export_sizes(tuple(export), dims)  # refuses two dims with one export size (#153896)
    return dims


def _dim_for(
    sizes: tuple[int, int], at: list[tuple[int, int]], known: DynamicDim | None
) -> DynamicDim:
    if known is not None:
        return DynamicDim(known.name, at, min=known.min, max=known.max)
    low, high = min(sizes), max(sizes)
    return DynamicDim(f"dim_{sizes[0]}_{sizes[1]}", at, min=min(2, low), max=max(1024, high))
