"""User cases a probe of output dtypes and shapes used (issue 36; loaded
with --case-file): a fp16 model whose sum overflows in eager, while an ONNX
graph that ends in a FLOAT output does not, and a 0-d output."""

import torch

from torchparity import register_model


class Overflow(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(16, 512)

    def forward(self, x):
        return (self.lin(x) * 4 + 3).sum()


class SumOfSigmoid(torch.nn.Module):
    def forward(self, x):
        return torch.sigmoid(x - 20).sum()


def inputs(gen, batch):
    return (gen.normal(batch, 16),)


register_model("fp16_overflow_sum", Overflow, inputs, batch=64, suites=["dtype-probe"])
register_model("sigmoid_sum", SumOfSigmoid, inputs, batch=8, suites=["dtype-probe"])
