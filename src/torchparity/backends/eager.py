"""Eager PyTorch: the module as it is. The trivial backend and the baseline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from torchparity.backends.base import Backend, PrepareContext, autocast_context


class EagerBackend(Backend):
    name = "eager"
    description = "the module called directly (under the pipeline's torch.no_grad)"
    supports_autocast = True
    shapes = True  # the module itself: every shape it computes

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        def call(*inputs: Any) -> Any:
            with autocast_context(ctx):
                return module(*inputs)

        return call

    trains = True

    def train_forward(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        return module


BACKEND = EagerBackend()
