"""Hypothesis strategies for op inputs, shared by the catalog and by users' own ops.

Every public factory here returns an ``OpStrategy``: a function of ``shapes``
(how many entries of each shape pool to use; the ``ci`` profile keeps it small
so a backend prepares few input signatures) returning a hypothesis strategy of
argument tuples. hypothesis is imported only when a strategy is built, so the
catalog imports (and ``torchparity run`` works) without it.

Floats are drawn as float64 and cast to the cell's precision by the fuzzer
(the fp64 reference then sees the very values the cell saw); integer and bool
tensors keep their dtype. Special values are always in the mix: NaN, +-inf,
+-0, halves (rounding ties), subnormals of fp64/fp32/fp16, large magnitudes,
and integer extremes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

FLOAT = "float"  # a float tensor in the cell's precision
INTS = ("int64", "int32", "int16", "int8", "uint8")
FLOATS = (FLOAT,)
REALS = (FLOAT, "int64", "int32", "int16", "int8", "uint8")
ALL = (*REALS, "bool")

SPECIAL_FLOATS = (
    math.nan,
    math.inf,
    -math.inf,
    0.0,
    -0.0,
    0.5,
    -0.5,
    1.5,
    -1.5,
    2.5,
    -2.5,
    1.0,
    -1.0,
    5e-324,
    1e-310,
    1e-40,
    6e-8,
    65504.0,
    70000.0,
    3.0e38,
    -3.0e38,
    1e300,
    -1e300,
)
TIES = (0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 3.5, -3.5, 0.0, -0.0)

# Shape pools: the first entries matter most (ci uses only the first few).
# Broadcasting, 0-d scalars and zero-size dimensions are all in them.
UNARY_SHAPES: tuple[tuple[int, ...], ...] = ((2, 3), (5,), (), (0, 3), (2, 3, 4), (1, 7))
BINARY_SHAPES: tuple[tuple[tuple[int, ...], ...], ...] = (
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((2, 1), (1, 3)),
    ((), (4,)),
    ((0, 3), (1, 3)),
    ((3, 1, 2), (4, 1)),
)
TERNARY_SHAPES: tuple[tuple[tuple[int, ...], ...], ...] = (
    ((2, 3), (2, 3), (2, 3)),
    ((2, 3), (3,), (2, 1)),
    ((), (4,), ()),
    ((0, 2), (2,), (1, 2)),
)
REDUCE_SHAPES: tuple[tuple[int, ...], ...] = ((3, 4), (2, 3, 5), (6,), (1, 4), (4, 1), (2, 0))
DTYPES = {
    "float": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}

OpStrategy = Callable[[int], Any]


def dtype_choice(dtypes: Sequence[str]) -> Any:
    """One of ``dtypes``, the first (usually float) half of the time: the few
    examples of the ci profile must not all go to integer dtypes."""
    from hypothesis import strategies as st

    dtypes = tuple(dtypes)
    return (
        st.sampled_from(dtypes)
        if len(dtypes) == 1
        else st.one_of(st.just(dtypes[0]), st.sampled_from(dtypes))
    )


def pool(items: Sequence[Any], shapes: int) -> Sequence[Any]:
    """The first ``shapes`` items of a pool (all when ``shapes`` <= 0)."""
    return items[:shapes] if shapes > 0 else items


def float_values(kind: str = "any") -> Any:
    """Python floats: ``any`` (specials + everything), ``finite``, ``moderate``
    (|x| <= 100, ties and signed zeros included), ``positive``, ``unit`` (|x| <= 1)."""
    from hypothesis import strategies as st

    if kind == "any":
        return st.one_of(
            st.sampled_from(SPECIAL_FLOATS),
            st.sampled_from(TIES),  # rounding-mode bugs only show on ties
            st.floats(-1e4, 1e4),
            st.floats(allow_nan=True, allow_infinity=True),
        )
    if kind == "finite":
        finite = [v for v in SPECIAL_FLOATS if math.isfinite(v) and abs(v) < 1e30]
        return st.one_of(st.sampled_from(finite), st.floats(-1e4, 1e4))
    if kind == "moderate":
        return st.one_of(st.sampled_from(TIES), st.floats(-100.0, 100.0))
    if kind == "positive":
        return st.one_of(st.sampled_from((0.5, 1.0, 2.5, 1e-3)), st.floats(1e-3, 1e3))
    if kind == "unit":
        return st.one_of(st.sampled_from((0.0, -0.0, 0.5, -0.5, 1.0, -1.0)), st.floats(-1.0, 1.0))
    raise ValueError(f"unknown float kind {kind!r}; valid: any, finite, moderate, positive, unit")


def int_values(
    dtype: str, nonzero: bool = False, low: int | None = None, high: int | None = None
) -> Any:
    """Integers of ``dtype``'s range: extremes, -1, 0, 1 and everything between."""
    from hypothesis import strategies as st

    info = torch.iinfo(DTYPES[dtype])
    lo = info.min if low is None else max(low, info.min)
    hi = info.max if high is None else min(high, info.max)
    special = [v for v in (lo, hi, lo + 1, hi - 1, -1, 0, 1, 2, -2, 7, -7) if lo <= v <= hi]
    values = st.one_of(st.sampled_from(special), st.integers(lo, hi))
    return values.filter(lambda v: v != 0) if nonzero else values


def tensor(
    shape: Sequence[int],
    dtype: str,
    values: str = "any",
    nonzero: bool = False,
    low: int | None = None,
    high: int | None = None,
) -> Any:
    """A tensor strategy: float64 (for ``float``), an integer dtype, or bool."""
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    shape = tuple(shape)
    if dtype == "bool":
        elements, np_dtype = st.booleans(), np.bool_
    elif dtype == FLOAT:
        elements, np_dtype = float_values(values), np.float64
        if nonzero:
            elements = elements.filter(lambda v: v != 0)
    else:
        elements = int_values(dtype, nonzero, low, high)
        np_dtype = np.dtype(str(DTYPES[dtype]).removeprefix("torch."))
    return hnp.arrays(np_dtype, shape, elements=elements).map(lambda a: torch.from_numpy(a.copy()))


def elementwise(
    n: int = 1,
    dtypes: Sequence[str] = FLOATS,
    values: str = "any",
    nonzero_last: bool = False,
    shape_pool: Sequence[Any] | None = None,
) -> OpStrategy:
    """``n`` mutually broadcastable tensors of one drawn dtype. ``nonzero_last``
    keeps the last argument free of zeros (integer division and modulo)."""

    def build(shapes: int) -> Any:
        from hypothesis import strategies as st

        default = {1: tuple((s,) for s in UNARY_SHAPES), 2: BINARY_SHAPES, 3: TERNARY_SHAPES}[n]
        shape_sets = pool(shape_pool or default, shapes)

        @st.composite
        def draw_args(draw: Any) -> tuple:
            dtype = draw(dtype_choice(dtypes))
            shape_set = draw(st.sampled_from(shape_sets))
            # Integer MIN / -1 overflows: SIGFPE in eager itself (undefined in
            # C), which would kill the in-process fuzzer, so division draws skip MIN.
            low = torch.iinfo(DTYPES[dtype]).min + 1 if nonzero_last and dtype in INTS else None
            return tuple(
                draw(tensor(s, dtype, values, nonzero=nonzero_last and i == n - 1, low=low))
                for i, s in enumerate(shape_set)
            )

        return draw_args()

    return build


def single(
    dtypes: Sequence[str] = FLOATS,
    values: str = "any",
    shape_pool: Sequence[tuple[int, ...]] = REDUCE_SHAPES,
) -> OpStrategy:
    """One tensor from ``shape_pool`` (reductions, sort, shape ops)."""
    return elementwise(1, dtypes, values, shape_pool=tuple((s,) for s in shape_pool))


def fixed(*specs: tuple[Sequence[Sequence[int]], Sequence[str] | str, str]) -> OpStrategy:
    """Arguments with independent shape pools: each spec is
    ``(shape_pool, dtypes or "same", values)``; ``"same"`` reuses the previous
    argument's dtype. Shapes are drawn by one index into every pool, so the
    pools line up (e.g. an input and its matching weight)."""

    def build(shapes: int) -> Any:
        from hypothesis import strategies as st

        count = min(len(s[0]) for s in specs)
        count = min(count, shapes) if shapes > 0 else count

        @st.composite
        def draw_args(draw: Any) -> tuple:
            index = draw(st.integers(0, count - 1))
            out, dtype = [], FLOAT
            for shape_pool, dtypes, values in specs:
                if dtypes != "same":
                    dtype = draw(dtype_choice(dtypes))
                out.append(draw(tensor(shape_pool[index], dtype, values)))
            return tuple(out)

        return draw_args()

    return build


def composite(fn: Callable[[Any, int], tuple]) -> OpStrategy:
    """Wrap ``fn(draw, shapes) -> args`` (with hypothesis' ``draw``) as an
    OpStrategy, for inputs whose parts depend on each other (gather's index
    on its input's shape, a convolution's weight on its channels)."""

    def build(shapes: int) -> Any:
        from hypothesis import strategies as st

        @st.composite
        def draw_args(draw: Any) -> tuple:
            return tuple(fn(draw, shapes))

        return draw_args()

    return build


def draw_tensor(
    draw: Any, shape: Sequence[int], dtype: str = FLOAT, values: str = "any", **kw: Any
) -> torch.Tensor:
    """``draw(tensor(...))``: a shorthand for composite strategies."""
    return draw(tensor(shape, dtype, values, **kw))


def draw_choice(draw: Any, items: Sequence[Any], shapes: int = 0) -> Any:
    """One item of the first ``shapes`` items of ``items``."""
    from hypothesis import strategies as st

    return draw(st.sampled_from(tuple(pool(items, shapes))))


def run_shapes(
    dims: Sequence[Any], export: dict[str, int], cap: int = 64
) -> Any:  # hypothesis.strategies.SearchStrategy[dict[str, int]]
    """Run shapes for shape-mode fuzzing (``torchparity fuzz --mode shape``):
    each dynamic dim (``torchparity.DynamicDim``) drawn within its declared
    range and at most ``cap`` (never 0 or 1, exporters specialise those),
    never its export size, and no two dims equal (pytorch/pytorch#153896).
    Shrinks toward the smallest sizes."""
    from hypothesis import strategies as st

    def sizes_of(dim: Any) -> Any:
        low, high = max(dim.min, 2), min(dim.max, max(cap, export[dim.name] + 1))
        return st.integers(low, high).filter(lambda n, e=export[dim.name]: n != e)

    drawn = st.fixed_dictionaries({d.name: sizes_of(d) for d in dims})
    return drawn.filter(lambda s: len(set(s.values())) == len(s))
