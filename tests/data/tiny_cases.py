"""A user case file, as a user would write one (loaded with --case-file)."""

from dataclasses import dataclass

import torch

from torchparity import KnownFailure, register_model


@dataclass
class Pair:
    first: torch.Tensor
    second: dict


class TwoHeads(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(8, 4)
        self.b = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> Pair:
        return Pair(self.a(x), {"b": self.b(x), "argmax": self.a(x).argmax(dim=1)})


register_model(
    "tiny_linear",
    lambda: torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh()),
    lambda gen, batch: (gen.normal(batch, 8),),
    batch=4,
    suites=["tiny"],
)
register_model(
    "tiny_heads", TwoHeads, lambda gen, batch: (gen.normal(batch, 8),), batch=4, suites=["tiny"]
)


class Broken(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this model is broken on purpose\nsecond line")


register_model(
    "tiny_broken",
    Broken,
    lambda gen, batch: (gen.normal(batch, 8),),
    suites=["tiny_broken"],
    known_failures=[
        KnownFailure("broken on purpose", precision="bf16", link="https://example.org/1")
    ],
)
