"""What an int8 cell adds to the inference stages (docs/precisions.md):

- its calibration batches: ``CALIBRATION_BATCHES`` independent draws of the
  case's own input factory, cast like the cell's inputs, recorded in the row;
- its two comparison points: the quantized reference (the pt2e-converted model
  in eager, the very program the backends deploy; backends/quantize.py) and
  fp32 eager (the model before quantization);
- its verdicts (verdicts/quantized.py): fidelity to the first, agreement with
  the second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from torchparity.backends.base import PrepareContext
from torchparity.backends.quantize import CALIBRATION_BATCHES, calibration_draw, quantized_for
from torchparity.cases.inputs import cast_inputs
from torchparity.cases.outputs import Flattened, flat_leaves, flatten
from torchparity.cases.reference import build_inputs
from torchparity.cell.context import CellContext
from torchparity.cell.stages import NothingToCompare
from torchparity.verdicts import quantized as verdict
from torchparity.verdicts.output_dtype import dtype_mismatch


def calibration(ctx: CellContext, batches: int = CALIBRATION_BATCHES) -> tuple[tuple, ...]:
    """The cell's calibration batches, from the case's input factory."""
    device = ctx.device.torch_device()
    return tuple(
        cast_inputs(
            build_inputs(ctx.case, ctx.seed, draw=calibration_draw(i)), ctx.precision.dtype, device
        )
        for i in range(batches)
    )


def judge(
    prepare_ctx: PrepareContext,
    module: Callable[[], torch.nn.Module],
    inputs: Callable[[], tuple],
    output: Flattened,
    names: list[str],
    common: list[str],
    tolerance: Any,
) -> tuple[verdict.QuantVerdict, dict[str, Any], str]:
    """Both int8 verdicts of ``output`` (leaves named ``names``, judged on
    ``common``); ``module()`` is a fresh fp32 copy of the cell's model and
    ``inputs()`` a fresh copy of its inputs. Also the row's recipe columns,
    the largest difference from the quantized reference (eager at this
    precision), and the fail reason when an output's dtype is not the
    reference's (or ``""``). ``NothingToCompare`` when the recipe quantized
    nothing: such a cell is no int8 test."""
    quantized = quantized_for(module(), inputs(), prepare_ctx)
    if not quantized.quantize_nodes:
        raise NothingToCompare(
            f"no op was quantized: the {quantized.recipe.mode} recipe "
            f"({quantized.recipe.quantizer}) annotates no op of this model, so the cell "
            "is no int8 test (its int8 outputs are the fp32 model's)"
        )
    with torch.no_grad():
        qref = [t for t in flat_leaves(quantized.module(*inputs())) if isinstance(t, torch.Tensor)]
        fp32 = flatten(module()(*inputs())).by_name()
    if len(qref) != len(names):
        raise RuntimeError(
            f"the quantized reference returned {len(qref)} tensors where the model has {len(names)}"
        )
    steps = dict(zip(names, quantized.output_steps, strict=False))
    qref_by = dict(zip(names, qref, strict=True))
    actual = output.by_name()
    result = verdict.judge(
        common,
        [actual[n] for n in common],
        [qref_by[n] for n in common],
        [fp32[n] for n in common],
        [steps.get(n) for n in common],
        tolerance,
    )
    extra: dict[str, Any] = dict(quantized.recipe.columns())
    extra["quant_calibration_draws"] = (
        f"{calibration_draw(0)}..{calibration_draw(len(prepare_ctx.calibration) - 1)}"
    )
    extra["eager_max_abs_diff"] = max(
        (
            float((actual[n].double().cpu() - qref_by[n].double()).abs().max())
            for n in common
            if actual[n].shape == qref_by[n].shape and actual[n].numel()
        ),
        default=0.0,
    )
    mismatch = dtype_mismatch(
        common,
        [actual[n] for n in common],
        [qref_by[n] for n in common],
        prepare_ctx.precision.name,
        "the quantized reference",
    )
    return result, extra, mismatch
