"""Shared pieces of the op catalog: the registration decorator, sample-input
helpers and the tolerance overrides the families reuse."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from torchparity import DynamicDim, InputGen, KnownFailure, Tolerance, register_op
from torchparity.strategies import OpStrategy, elementwise

SUITE = "ops"

# Accumulating ops (reductions, matmul, convolutions, norms) round once per
# term, so their error grows with the term count and the terms' magnitude;
# these bounds fit inputs of |x| <= 100 and a few dozen terms.
ACCUMULATE = {
    torch.float64: Tolerance(atol=1e-9, rtol=1e-9),
    torch.float32: Tolerance(atol=1e-4, rtol=1e-5),
    torch.float16: Tolerance(atol=5e-2, rtol=1e-2),
    torch.bfloat16: Tolerance(atol=5e-1, rtol=5e-2),
}
# Ops whose IEEE result is defined exactly (sign/abs/selection/copies, and
# single correctly rounded operations: + - * / sqrt): within half a ULP of the
# exact value, i.e. correctly rounded. Against the unrounded fp64 reference
# (`run`) that admits the output's own rounding and nothing more; between two
# rounded outputs (`fuzz`, backend vs eager) one ULP already fails.
EXACT = {
    dtype: Tolerance(
        atol=torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps / 2,
        rtol=torch.finfo(dtype).eps / 2,
    )
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16)
}
# Ops without fp16/bf16 CPU kernels in eager (NotImplementedError for 'Half'):
# their fp16/bf16 cells are skip rows; autocast runs them in fp32.
NO_HALF_KERNEL = ("fp64", "fp32", "amp-fp16", "amp-bf16")
# Shape mode: ops over (batch, channels, length) or (batch, rows, features)
# inputs take any batch and any length / row count (docs/shapes.md).
BATCH = DynamicDim("batch", {0: 0}, min=1, max=64)
LENGTH = DynamicDim("length", {0: 2}, min=3, max=256)
ROWS = DynamicDim("rows", {0: 1}, min=1, max=64)
# Transcendentals implemented by vector libraries (SLEEF, MLAS) are a few ULP off.
FEW_ULP = {torch.float32: Tolerance(atol=1e-5, rtol=1e-5)}


def op(
    samples: Callable[[InputGen, int], tuple],
    strategy: OpStrategy | None = None,
    *,
    name: str | None = None,
    dtypes: Iterable[str] = ("float",),
    precisions: Iterable[str] | None = None,
    tolerances: dict | None = None,
    known: Iterable[KnownFailure] = (),
    tags: Iterable[str] = (),
    exact: bool = False,
    dynamic: Iterable[DynamicDim] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as an op of the ``ops`` suite, named
    after the function unless ``name`` is given; ``exact`` asks for bit-exact
    float outputs (``EXACT``); ``dynamic`` the input dims that may change size
    (shape mode, docs/shapes.md)."""
    if exact:
        tolerances = EXACT

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        register_op(
            name or fn.__name__,
            fn,
            samples,
            strategy if strategy is not None else elementwise(_arity(fn), tuple(dtypes)),
            suites=[SUITE],
            dtypes=dtypes,
            precisions=precisions,
            tolerances=tolerances,
            known_failures=known,
            tags=tags,
            dynamic=dynamic,
            description=(fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
        )
        return fn

    return wrap


def _arity(fn: Callable[..., Any]) -> int:
    return fn.__code__.co_argcount


def normal(*shapes: tuple[int, ...], std: float = 1.0) -> Callable[[InputGen, int], tuple]:
    """Samples: one approximately normal float tensor per shape."""
    return lambda gen, batch: tuple(gen.normal(*s, std=std) for s in shapes)


def positive(*shapes: tuple[int, ...], low: float = 0.1, high: float = 4.0) -> Callable:
    """Samples: uniform floats in [low, high)."""
    return lambda gen, batch: tuple(gen.uniform(*s, low=low, high=high) for s in shapes)


def ints(
    *shapes: tuple[int, ...], low: int = -50, high: int = 50, dtype: torch.dtype = torch.int64
) -> Callable:
    """Samples: integers in [low, high) of ``dtype``."""
    return lambda gen, batch: tuple(gen.integers(low, high, *s).to(dtype) for s in shapes)


def nonzero_ints(*shapes: tuple[int, ...], low: int = -50, high: int = 50) -> Callable:
    """Samples: integers in [low, high) without zero (divisors)."""

    def make(gen: InputGen, batch: int) -> tuple:
        out = []
        for s in shapes:
            t = gen.integers(low, high, *s)
            out.append(torch.where(t == 0, torch.ones_like(t), t))
        return tuple(out)

    return make


def chain(*parts: Callable[[InputGen, int], tuple]) -> Callable[[InputGen, int], tuple]:
    """Samples: the concatenation of several sample makers' tuples."""
    return lambda gen, batch: tuple(x for p in parts for x in p(gen, batch))


def known(reason: str, link: str = "", **where: str) -> KnownFailure:
    return KnownFailure(reason=reason, link=link, **where)


# Known upstream divergences, shared by the ops they affect. Each was found by
# `torchparity fuzz` and matched to the upstream report linked.
EAGER_SQRT = known(
    "CPU fp32 torch.sqrt goes through MKL VML (1 ULP bound), not correctly rounded",
    "https://github.com/pytorch/pytorch/issues/31250",
    backend="eager",
    precision="fp32",
)
ORT_VS_EAGER_SQRT = known(
    "eager's fp32 sqrt is 1 ULP off (MKL VML); ONNX Runtime's is correctly rounded",
    "https://github.com/pytorch/pytorch/issues/31250",
    backend="onnxruntime",
    precision="fp32",
)
GELU_INF = known(
    "eager gelu(+inf) is NaN on CPU (vectorised erf path)",
    "https://github.com/pytorch/pytorch/issues/185770",
    backend="eager",
)
ORT_VS_EAGER_GELU = known(
    "eager gelu(+inf) is NaN on CPU; ONNX Runtime gives inf",
    "https://github.com/pytorch/pytorch/issues/185770",
    backend="onnxruntime",
)
SIGN_NAN = known(
    "eager torch.sign(NaN) is 0, ONNX Sign propagates NaN",
    "https://github.com/pytorch/pytorch/issues/41245",
    backend="onnxruntime",
)
ORT_REDUCE_NAN = known(
    "ONNX Runtime ReduceMax/ReduceMin drop NaN depending on its position",
    "https://github.com/microsoft/onnxruntime/issues/10514",
    backend="onnxruntime",
)
ORT_MAXPOOL_NAN = known(
    "ONNX Runtime MaxPool ignores NaN (an all-NaN window gives -FLT_MAX)",
    "https://github.com/microsoft/onnxruntime/issues/24819",
    backend="onnxruntime",
)
ORT_SIGMOID = known(
    "ONNX Runtime's fp32 Sigmoid loses relative precision for small outputs",
    "https://github.com/pytorch/pytorch/issues/147508",
    backend="onnxruntime",
)
