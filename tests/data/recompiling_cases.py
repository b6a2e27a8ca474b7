"""A model whose forward reads a Python counter it bumps on every call: dynamo
guards on the value, so every call recompiles (the compile backend must say so)."""

import torch

from torchparity import register_model


class CallCounter(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.linear(x) * self.calls


register_model(
    "call_counter",
    CallCounter,
    lambda gen, batch: (gen.normal(batch, 8),),
    batch=4,
    suites=["recompiling"],
)
