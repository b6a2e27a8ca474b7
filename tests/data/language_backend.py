"""A user's backend for a runtime in another language that computes in fp32
whatever precision the cell asks for, and says so (``effective_precision``)."""

import copy
from typing import Any

import torch

from torchparity import Backend, PrepareContext, register_backend


class Fp32Runtime(Backend):
    name = "user-fp32-runtime"
    description = "a user plugin: a Rust runtime that computes in fp32"
    runtime_language = "Rust"

    def prepare(self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext) -> Any:
        asked = ctx.precision.dtype
        runs = copy.deepcopy(module).float()
        ctx.effective_precision = "fp32"

        def call(*inputs: Any) -> Any:
            return runs(*[x.float() if x.is_floating_point() else x for x in inputs]).to(asked)

        return call


register_backend(Fp32Runtime())
