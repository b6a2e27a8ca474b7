"""User cases for the int8 precisions (loaded with --case-file): a small
classifier judged by the default int8 budget, and the same model with an
agreement budget no int8 model meets (a case's override under torch.int8)."""

import torch

from torchparity import Tolerance, register_model


def classifier() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def inputs(gen, batch):
    return (gen.normal(batch, 16),)


register_model("int8_classifier", classifier, inputs, batch=8, suites=["int8"])
register_model(
    "int8_strict",
    classifier,
    inputs,
    batch=8,
    suites=["int8"],
    tolerances={torch.int8: Tolerance(min_sqnr_db=200.0)},
)
