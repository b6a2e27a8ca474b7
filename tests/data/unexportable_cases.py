"""A model with data-dependent control flow: scripting and eager run it,
tracing bakes in one branch, and torch.export (so the ONNX dynamo exporter)
cannot capture it."""

import torch

from torchparity import register_model


class DataDependentBranch(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        if y.sum() > 0:
            return y * 2
        return y - 1


register_model(
    "data_dependent_branch",
    DataDependentBranch,
    lambda gen, batch: (gen.normal(batch, 8),),
    batch=4,
    suites=["unexportable"],
)
