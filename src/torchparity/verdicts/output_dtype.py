"""The output dtype verdict (docs/drift.md, "Output dtype"): a path that
returns another dtype than eager at the cell's precision has not run that
precision end to end (an ONNX graph whose fp16 model ends in a FLOAT output
computed its last ops in fp32), so its values say nothing about the precision
asked for. The row records ``output_dtype``; a dtype other than eager's (at
an int8 precision: the quantized reference's; under autocast: eager's own
under autocast) is a ``fail`` whose reason names both dtypes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def dtype_name(dtype: torch.dtype) -> str:
    """``float16`` for ``torch.float16``."""
    return str(dtype).removeprefix("torch.")


def dtype_text(names: Sequence[str], tensors: Sequence[torch.Tensor]) -> str:
    """The ``output_dtype`` column: the one dtype of every leaf (``float16``),
    or each leaf's when they differ (``logits=float16,ids=int64``)."""
    dtypes = [dtype_name(t.dtype) for t in tensors]
    if len(set(dtypes)) <= 1:
        return dtypes[0] if dtypes else ""
    return ",".join(f"{n}={d}" for n, d in zip(names, dtypes, strict=True))


def dtype_mismatch(
    names: Sequence[str],
    actual: Sequence[torch.Tensor],
    expected: Sequence[torch.Tensor],
    precision: str,
    reference: str = "eager",
) -> str:
    """The fail reason when a leaf's dtype differs from ``reference``'s at
    ``precision`` (the first such leaf), else ``""``."""
    for name, a, e in zip(names, actual, expected, strict=True):
        if a.dtype != e.dtype:
            leaf = f"{name}: " if len(names) > 1 else ""
            return (
                f"{leaf}output dtype {dtype_name(a.dtype)} where {reference} at {precision} "
                f"returns {dtype_name(e.dtype)}: this path did not run {precision} end to end"
            )
    return ""
