"""The ``shapes`` suite: small reproductions of artifacts that give other
numbers, or drop the asked dynamism, at a shape other than the one they were
built at, and a control that every shape-generic backend must match
(``torchparity run --suite shapes --mode shape``; docs/shapes.md).

Each is built at batch 4 and run at batches 2, 5 and 9.
"""

from __future__ import annotations

import torch
from torch import nn

from torchparity import DynamicDim, register_model

FEATURES = 16
BATCH = DynamicDim("batch", {0: 0}, min=2, max=64)


class SumOverLen(nn.Module):
    """``x.sum(0) / len(x)``: a mean written with Python's ``len``. A tracer
    records ``len(x)`` as the constant 4 (torch.jit.trace, the legacy ONNX
    exporter), so at batch 8 the artifact returns twice the mean; torch.export
    specialises the dim, and the dynamo ONNX exporter's fallback keeps a static input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(0) / len(x)


def _rows(gen, batch: int) -> tuple:
    return (gen.normal(batch, FEATURES),)


register_model(
    "sum_over_len",
    SumOverLen,
    _rows,
    batch=4,
    suites=["shapes"],
    dynamic=[BATCH],
    description="x.sum(0) / len(x): len() baked in by tracing exporters",
)
register_model(
    "batch_mlp",
    lambda: nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU(), nn.Linear(32, 4)),
    _rows,
    batch=4,
    suites=["shapes"],
    dynamic=[BATCH],
    description="a plain MLP, dynamic in batch: the control that every backend matches",
)
