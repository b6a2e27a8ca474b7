"""Cases with a planted slowdown, for the gate's A/B validation
(benchmarks/validate_gate.py; loaded with --case-file).

``planted_*`` cases stack ``LAYERS`` blocks of Linear(256, 256) + tanh; when
the environment variable TORCHPARITY_PLANTED_SLOWDOWN is set (e.g. ``1.2``),
they stack that many times more blocks, so their work grows by that factor
(the fixed per-call overhead is small beside ten such blocks). ``steady_*``
cases are the same models and never change: the gate must leave them alone.
They join the ``models`` suite so one run holds them beside the real models.
"""

from __future__ import annotations

import os

import torch

from torchparity import register_model

ENV = "TORCHPARITY_PLANTED_SLOWDOWN"
LAYERS = 10
WIDTH = 256


def _stack(name: str) -> torch.nn.Module:
    factor = float(os.environ.get(ENV) or 1.0) if name.startswith("planted") else 1.0
    layers = round(LAYERS * factor)
    blocks = [m for _ in range(layers) for m in (torch.nn.Linear(WIDTH, WIDTH), torch.nn.Tanh())]
    return torch.nn.Sequential(*blocks)


for _name in ("planted_a", "planted_b", "steady_a", "steady_b"):
    register_model(
        _name,
        lambda n=_name: _stack(n),
        lambda gen, batch: (gen.normal(batch, WIDTH),),
        batch=32,
        suites=["models", "planted"],
        description=f"{LAYERS} x Linear({WIDTH}) + tanh; planted_* grow with ${ENV}",
    )
