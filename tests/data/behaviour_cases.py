"""A case whose computation changes without any edit to this file (loaded with
--case-file): its forward calls a helper module, its constructor takes an
argument that is not a parameter, and it reads a config file and an
environment variable when built. The test edits those, never this file."""

import json
import os
import sys
from pathlib import Path

import torch

from torchparity import register_model

WORLD = Path(os.environ["TP_BEHAVIOUR_DIR"])  # the helper module and the config
sys.path.insert(0, str(WORLD))

import behaviour_helper  # noqa: E402 - found in WORLD


class Chain(torch.nn.Module):
    """``k`` and ``act`` are constructor arguments, not parameters: the weights
    are the same whatever they are."""

    def __init__(self, k: int, act: str, scale: float) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(6, 6)
        self.k, self.act, self.scale = k, getattr(torch, act), scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.k):
            x = self.act(self.linear(x))
        return behaviour_helper.finish(x) * self.scale


def make() -> Chain:
    config = json.loads((WORLD / "config.json").read_text(encoding="utf-8"))
    return Chain(config["k"], config["act"], float(os.environ.get("TP_BEHAVIOUR_SCALE", "1")))


register_model(
    "behaviour_chain",
    make,
    lambda gen, batch: (gen.normal(batch, 6),),
    batch=3,
    suites=["behaviour"],
)


class Noisy(torch.nn.Module):
    """Draws from the global RNG in forward: never the same output twice."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + 1e-3 * torch.rand_like(x)


register_model(
    "behaviour_noisy",
    Noisy,
    lambda gen, batch: (gen.normal(batch, 6),),
    batch=3,
    suites=["behaviour"],
)


class Chatty(torch.nn.Module):
    """Prints 64 KB on every call (a model left in debug mode)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("chatter " * 8192, flush=True)
        return self.linear(x)


register_model(
    "behaviour_chatty", Chatty, lambda gen, batch: (gen.normal(batch, 6),), suites=["behaviour"]
)
