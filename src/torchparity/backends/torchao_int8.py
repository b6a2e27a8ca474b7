"""torchao: int8 dynamic quantization with ``torchao.quantization.quantize_``,
run in eager (``torchao``) or under torch.compile (the ``compile`` backend at
``int8-dynamic``).

The configuration follows the quantized reference's recipe (backends/quantize.py)
as far as torchao has it: ``Int8DynamicActivationInt8WeightConfig`` with int8
per-tensor asymmetric activations quantized per call and int8 per-channel
(per-row) symmetric weights, on every ``nn.Linear``. What differs is the
implementation (torchao's quantized tensor subclass and its integer matmul,
not pt2e's dequantize-compute-quantize graph), which is what the fidelity
verdict then measures. The reference's dynamic recipe also quantizes
convolutions, this configuration linear layers only: on a convolutional model
the two int8 models differ by design, fidelity fails and says by how many
steps, and agreement with fp32 is the verdict that speaks for torchao there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision
from torchparity.backends.base import Backend, PrepareContext

RECIPE = (
    "quantize_(Int8DynamicActivationInt8WeightConfig(granularity=[PerTensor(), PerRow()], "
    "act_mapping_type=ASYMMETRIC)) on nn.Linear"
)


def torchao_quantize(module: torch.nn.Module, ctx: PrepareContext) -> torch.nn.Module:
    """``module`` (a private fp32 copy) with its linear layers quantized in place."""
    from torchao.quantization import (
        Int8DynamicActivationInt8WeightConfig,
        MappingType,
        PerRow,
        PerTensor,
        quantize_,
    )

    config = Int8DynamicActivationInt8WeightConfig(
        granularity=[PerTensor(), PerRow()],
        act_mapping_type=MappingType.ASYMMETRIC,
        set_inductor_config=False,  # inductor's settings stay the run's
    )
    quantize_(module, config)
    ctx.notes["int8_recipe"] = RECIPE
    ctx.notes["torchao_linears"] = sum(
        1 for m in module.modules() if isinstance(m, torch.nn.Linear)
    )
    return module


class TorchaoBackend(Backend):
    name = "torchao"
    description = "torchao quantize_ (int8 dynamic activations, int8 weights) in eager"
    quantized_modes = ("dynamic",)

    def supports(self, cell: Cell, precision: Precision) -> str | None:
        if precision.quant is None:
            return f"torchao serves the int8 precisions only (here: int8-dynamic), not {precision.name}"
        return None

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        return torchao_quantize(module, ctx)


BACKEND = TorchaoBackend()
