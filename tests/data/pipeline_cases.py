"""Cases that try to fool the cell pipeline (loaded with --case-file): outputs
with nothing to compare, a model that edits its inputs, a model that reads the
grad mode, a big model for peak memory, and a backend that cannot autocast."""

from typing import Any

import torch

from torchparity import Backend, PrepareContext, register_backend, register_model


class Returns(torch.nn.Module):
    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> Any:
        return self.value


class InPlace(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(2.0)


class GradModeProbe(torch.nn.Module):
    """Its output says under which grad mode it ran (0: no_grad, 1: grad, 2: inference)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = 2.0 if torch.is_inference_mode_enabled() else float(torch.is_grad_enabled())
        return x * 0.0 + mode


def _x(gen, batch):
    return (gen.normal(batch, 4),)


register_model("returns_none", lambda: Returns(None), _x, suites=["vacuous"])
register_model("returns_text", lambda: Returns("hello"), _x, suites=["vacuous"])
register_model("returns_empty_tuple", lambda: Returns(()), _x, suites=["vacuous"])
register_model("zero_batch", lambda: torch.nn.Linear(4, 2), _x, batch=0, suites=["vacuous"])
register_model(
    "zero_size_input",
    lambda: torch.nn.Identity(),
    lambda gen, batch: (gen.normal(batch, 0),),
    suites=["vacuous"],
)
register_model(
    "zero_batch_expected",
    lambda: torch.nn.Linear(4, 2),
    _x,
    batch=0,
    empty_output_ok=True,
    suites=["empty_ok"],
)
register_model("mutates_input", InPlace, _x, batch=2, suites=["mutating"])
# Its output is a constant by design: the grad mode, not a function of x.
register_model("grad_mode_probe", GradModeProbe, _x, constant_output_ok=True, suites=["grad_mode"])
# 4096 x 1024 fp32 weights: 16 MiB, so an extra copy shows in peak memory.
register_model(
    "big_linear",
    lambda: torch.nn.Linear(1024, 4096),
    lambda gen, batch: (gen.normal(batch, 1024),),
    suites=["big"],
)


class AsIs(Backend):
    """The module called as it is: no copy, no conversion, no autocast."""

    name = "as-is"
    description = "the module as it is (a plugin that cannot autocast)"
    supports_autocast = False

    def prepare(self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext) -> Any:
        return module


register_backend(AsIs())
