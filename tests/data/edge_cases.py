"""A user's own models at the edges of what eager runs and returns (loaded
with --case-file): a list of ints among the positional inputs (a constant
every backend takes), forwards returning None or a Python float (no tensor:
the case's, on every backend), and keyword inputs that name the graph's inputs."""

import torch

from torchparity import register_model


class Reshape(torch.nn.Module):
    """A positional input that is a list of ints (a shape), not a tensor."""

    def forward(self, x: torch.Tensor, shape: list[int]) -> torch.Tensor:
        return x.reshape(shape) * 2


class ReturnsNone(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> None:
        x.sum()  # forgot the return


class ReturnsFloat(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> float:
        return float(x.sum())


class Scaled(torch.nn.Module):
    def forward(self, x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return x * scale + bias


def _x(gen, batch):
    return (gen.normal(batch, 4),)


register_model(
    "list_input",
    Reshape,
    lambda gen, batch: (gen.normal(batch, 4), [batch * 2, 2]),
    batch=2,
    suites=["edges"],
)
register_model("returns_none", ReturnsNone, _x, batch=2, suites=["edges"])
register_model("returns_float", ReturnsFloat, _x, batch=2, suites=["edges"])
register_model(
    "keyword_named",
    Scaled,
    lambda gen, batch: (
        (gen.normal(batch, 4),),
        {"scale": gen.normal(batch, 4), "bias": gen.normal(batch, 4)},
    ),
    batch=2,
    suites=["edges"],
)
