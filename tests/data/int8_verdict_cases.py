"""User cases a probe of the int8 verdicts used (issue 36; loaded with
--case-file): a classifier whose inputs lie below int8's smallest step, so
quantization zeroes them and int8 predicts class 0 for every row (returning
its argmax, an integer output, or its logits), one with an integer budget of
its own, and a model with nothing to quantize."""

import torch

from torchparity import Tolerance, register_model


class Faint(torch.nn.Module):
    """Inputs scaled to 1e-9: an activation quantizer's step cannot go below
    float32's eps, so the quantized input, and every output, is zero."""

    def __init__(self, argmax: bool):
        super().__init__()
        self.argmax = argmax
        self.net = torch.nn.Sequential(
            torch.nn.Linear(16, 32, bias=False),
            torch.nn.ReLU(),
            torch.nn.Linear(32, 10, bias=False),
        )

    def forward(self, x):
        logits = self.net(x * 1e-9)
        return logits.argmax(-1) if self.argmax else logits


class NothingToQuantize(torch.nn.Module):
    def forward(self, x):
        return torch.sin(x).cumsum(-1)


def inputs(gen, batch):
    return (gen.normal(batch, 16),)


register_model("faint_argmax", lambda: Faint(True), inputs, batch=16, suites=["int8-probe"])
register_model("faint_logits", lambda: Faint(False), inputs, batch=16, suites=["int8-probe"])
register_model(
    "faint_argmax_lenient",
    lambda: Faint(True),
    inputs,
    batch=16,
    suites=["int8-probe"],
    tolerances={torch.int8: Tolerance(min_exact=0.0)},
)
register_model("sin_cumsum", NothingToQuantize, inputs, batch=8, suites=["int8-probe"])
