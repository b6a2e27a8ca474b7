"""Eager PyTorch: the module as it is. The trivial backend and the baseline."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from harness.backends.base import Backend, PrepareContext


class EagerBackend(Backend):
    name = "eager"
    description = "the module called directly (torch.inference_mode)"
    supports_autocast = True

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        autocast = ctx.precision.autocast
        device_type = ctx.device.torch_device().type

        def call(*inputs: Any) -> Any:
            amp = (
                torch.autocast(device_type=device_type, dtype=autocast)
                if autocast is not None
                else contextlib.nullcontext()
            )
            with torch.inference_mode(), amp:
                return module(*inputs)

        return call


BACKEND = EagerBackend()
