"""A user case file for the machine-fault tests: a model whose artifact (64 KiB of
weights) does not fit a small disk, and whose references do."""

import torch

from torchparity import register_model

register_model(
    "wide_linear",
    lambda: torch.nn.Linear(128, 128),
    lambda gen, batch: (gen.normal(batch, 128),),
    batch=2,
    suites=["machine"],
)
