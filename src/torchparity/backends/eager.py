"""Eager PyTorch: the module as it is. The trivial backend and the baseline.

At the int8 precisions it runs the pt2e-converted module (backends/quantize.py):
the quantized reference every other int8 cell is judged against."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from torchparity.backends.base import Backend, PrepareContext, autocast_context
from torchparity.backends.quantize import quantized_for


class EagerBackend(Backend):
    name = "eager"
    description = "the module called directly (under the pipeline's torch.no_grad)"
    supports_autocast = True
    quantized_modes = ("static", "dynamic")
    shapes = True  # the module itself: every shape it computes

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        if ctx.precision.quant is not None:
            return quantized_for(module, example_inputs, ctx).module

        def call(*inputs: Any) -> Any:
            with autocast_context(ctx):
                return module(*inputs)

        return call

    generates = True

    def generation_unsupported(self, case: Any, precision: Any) -> str | None:
        if precision.quant is not None:
            return "eager generation at the int8 precisions is not built (docs/generation.md)"
        return None

    def prepare_generation(
        self, model: torch.nn.Module, prompts: Any, max_len: int, ctx: PrepareContext
    ) -> Any:
        from torchparity.backends.hf_cache_path import HFCachePath

        return HFCachePath(model, context=lambda: autocast_context(ctx))

    trains = True

    def train_forward(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        return module


BACKEND = EagerBackend()
