"""The ``shapes`` suite: small reproductions of artifacts that give other
numbers, or drop the asked dynamism, at a shape other than the one they were
built at, and a control that every shape-generic backend must match
(``torchparity run --suite shapes --mode shape``; docs/shapes.md).

Each is built at batch 4 and run at batches 2, 5 and 9 (``len_pool_classifier``
also at sequence 6, run at 3, 7 and 13).
"""

from __future__ import annotations

import torch
from torch import nn

from torchparity import DynamicDim, register_model

FEATURES = 16
TOKENS = 6
BATCH = DynamicDim("batch", {0: 0}, min=2, max=64)
SEQ = DynamicDim("seq", {0: 1}, min=2, max=64)


class SumOverLen(nn.Module):
    """``x.sum(0) / len(x)``: a mean written with Python's ``len``. A tracer
    records ``len(x)`` as the constant 4 (torch.jit.trace, the legacy ONNX
    exporter), so at batch 8 the artifact returns twice the mean; torch.export
    specialises the dim, and the dynamo ONNX exporter's fallback keeps a static input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(0) / len(x)


class LenMeanPool(nn.Module):
    """The mean over the tokens of ``[batch, seq, d]``, written with ``len``:
    ``h.sum(1) / len(h[0])``. Traced, ``len(h[0])`` is the export shape's
    sequence length."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.sum(1) / len(h[0])


class LenPoolClassifier(nn.Module):
    """Embed each token, pool, classify: the one wrong layer is ``pool``."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(FEATURES, 32)
        self.act = nn.ReLU()
        self.pool = LenMeanPool()
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.act(self.embed(x))))


def _rows(gen, batch: int) -> tuple:
    return (gen.normal(batch, FEATURES),)


def _tokens(gen, batch: int) -> tuple:
    return (gen.normal(batch, TOKENS, FEATURES),)


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
register_model(
    "len_pool_classifier",
    LenPoolClassifier,
    _tokens,
    batch=4,
    suites=["shapes"],
    dynamic=[BATCH, SEQ],
    description="a token-mean pool written with len(): tracing exporters bake the length into one layer",
)
