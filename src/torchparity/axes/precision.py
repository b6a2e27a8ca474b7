"""The precision axis: names, dtypes and the default tolerances per dtype."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from torchparity.cases.tolerance import Tolerance


@dataclass(frozen=True)
class Precision:
    """One value of the precision axis.

    ``dtype`` is what float parameters and float inputs are cast to. An
    ``autocast`` dtype (set by the autocast modes) leaves parameters in fp32
    and runs the forward under ``torch.autocast``. ``quant`` (``static`` or
    ``dynamic``) marks an int8 precision: the fp32 model is quantized to int8
    (backends/quantize.py) and judged by the int8 verdicts (verdicts/quantized.py).
    """

    name: str
    dtype: torch.dtype
    autocast: torch.dtype | None = None
    quant: str | None = None

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype whose rounding the outputs carry (drives tolerances and ULPs)."""
        return self.autocast or self.dtype


PRECISIONS: dict[str, Precision] = {
    "fp64": Precision("fp64", torch.float64),
    "fp32": Precision("fp32", torch.float32),
    "fp16": Precision("fp16", torch.float16),
    "bf16": Precision("bf16", torch.bfloat16),
    "amp-fp16": Precision("amp-fp16", torch.float32, autocast=torch.float16),
    "amp-bf16": Precision("amp-bf16", torch.float32, autocast=torch.bfloat16),
    # int8: weights and activations quantized after calibration (static), or
    # weights quantized and activations quantized per call (dynamic). Inputs
    # and outputs stay fp32; the fp32 model is what gets quantized.
    "int8-static": Precision("int8-static", torch.float32, quant="static"),
    "int8-dynamic": Precision("int8-dynamic", torch.float32, quant="dynamic"),
}

# Plain dtypes first: the default matrix. Autocast and int8 modes are opt-in.
DEFAULT_PRECISIONS = ("fp64", "fp32", "fp16", "bf16")


# The same defaults as torch.testing.assert_close, so a verdict here means what
# a PyTorch developer expects it to mean.
DEFAULT_TOLERANCES: dict[torch.dtype, Tolerance] = {
    torch.float16: Tolerance(atol=1e-5, rtol=1e-3),
    torch.bfloat16: Tolerance(atol=1e-5, rtol=1.6e-2),
    torch.float32: Tolerance(atol=1e-5, rtol=1.3e-6),
    torch.float64: Tolerance(atol=1e-7, rtol=1e-7),
    torch.complex64: Tolerance(atol=1e-5, rtol=1.3e-6),
    torch.complex128: Tolerance(atol=1e-7, rtol=1e-7),
}

# Whole models accumulate rounding through many layers, so an elementwise
# per-op tolerance fails honest fp16/bf16 models. Model cells are judged on the
# relative L2 error of each output leaf, ||y - ref|| / ||ref|| (a relative-norm
# criterion, like PyTorch's dynamo benchmark runner's RMSE check), against
# MODEL_UNIT_ROUNDOFFS unit roundoffs u = eps/2 of the dtype. Rounding the
# output alone costs ~0.6 u; the built-in models sit at 0.5-2.5 u. See docs/drift.md.
MODEL_UNIT_ROUNDOFFS = 16


def _model_bound(dtype: torch.dtype) -> float:
    return MODEL_UNIT_ROUNDOFFS * torch.finfo(dtype).eps / 2


MODEL_REL_L2: dict[torch.dtype, float] = {
    dtype: _model_bound(dtype)
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16)
}  # fp64 1.8e-15, fp32 9.5e-7, fp16 7.8e-3, bf16 6.3e-2


# int8 cells are judged twice (verdicts/quantized.py), with these defaults; a
# case overrides them with ``tolerances={torch.int8: Tolerance(...)}``.
# Fidelity, against the quantized reference (the pt2e-converted model in
# eager), in quantization steps of the output: a runtime with other integer
# kernels (fixed-point requantization) rounds some values one step the other
# way (the built-in models on ExecuTorch and ONNX Runtime: at most 1 step,
# 0.13 on average), but a systematic fault (a zero point off by one) moves
# the mean by about a step. Dynamic quantization computes activation scales
# per call in each runtime's own kernel, so the same input lands on slightly
# different grids and the mean bound is wider. Agreement, against fp32 eager:
# the task-level budget of quantizing at all (SQNR 20 dB is cosine ~0.995);
# an integer output (an argmax) must equal fp32's at 9 elements in 10.
INT8_TOLERANCE = Tolerance(
    atol=0.0,
    rtol=0.0,
    quant_max_steps=8.0,
    quant_mean_steps=0.25,
    min_cosine=0.99,
    min_sqnr_db=20.0,
    min_top1=0.75,
    min_top5=1.0,
    min_exact=0.9,
)
INT8_TOLERANCES: dict[str, Tolerance] = {
    "static": INT8_TOLERANCE,
    "dynamic": dataclasses.replace(INT8_TOLERANCE, quant_mean_steps=0.5),
}


def int8_tolerance(override: Tolerance | None, mode: str = "static") -> Tolerance:
    """The int8 budget of ``mode`` with a case's set fields in place of its own."""
    default = INT8_TOLERANCES[mode]
    if override is None:
        return default
    fields = {k: v for k, v in vars(override).items() if v is not None}
    for elementwise in ("atol", "rtol"):  # the float policies' fields; int8 has its own
        fields.pop(elementwise, None)
    return dataclasses.replace(default, **fields)


def default_tolerance(dtype: torch.dtype) -> Tolerance:
    """The elementwise tolerance for outputs of ``dtype`` (exact for ints and bools)."""
    return DEFAULT_TOLERANCES.get(dtype, Tolerance(atol=0.0, rtol=0.0))


def get_precision(name: str) -> Precision:
    return PRECISIONS[name]
