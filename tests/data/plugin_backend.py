"""A user's backend, loaded with --case-file or --plugin like a user's cases:
eager under torch.no_grad, with a user option recorded in the row."""

from typing import Any

import torch

from torchparity import Backend, PrepareContext, register_backend


class NoGradBackend(Backend):
    name = "user-nograd"
    description = "a user plugin: the module under torch.no_grad"
    options = {"label": "free text recorded in the row"}

    def prepare(self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext) -> Any:
        ctx.notes["label"] = ctx.options.get("label", "")

        def call(*inputs: Any) -> Any:
            with torch.no_grad():
                return module(*inputs)

        return call


register_backend(NoGradBackend())
