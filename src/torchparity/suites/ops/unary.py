"""Unary math: elementwise functions of one tensor."""

import torch

from torchparity.strategies import FLOATS, REALS, elementwise
from torchparity.suites.ops.common import (
    EAGER_SQRT,
    FEW_ULP,
    ORT_VS_EAGER_SQRT,
    SIGN_NAN,
    ints,
    normal,
    op,
    positive,
)

X = (3, 4)
ANY = elementwise(1, FLOATS)
REAL_ANY = elementwise(1, REALS)


@op(normal(X), REAL_ANY, dtypes=REALS, exact=True)
def abs(x):
    return torch.abs(x)


@op(
    normal(X),
    elementwise(1, ("float", "int64", "int32", "int16", "int8")),
    dtypes=("float", "int64", "int32", "int16", "int8"),
    exact=True,
)
def neg(x):
    return torch.neg(x)


@op(normal(X), REAL_ANY, dtypes=REALS, exact=True, known=[SIGN_NAN])
def sign(x):
    return torch.sign(x)


@op(normal(X), REAL_ANY, dtypes=REALS, exact=True)
def square(x):
    return torch.square(x)


@op(normal(X), ANY, tolerances=FEW_ULP)
def exp(x):
    return torch.exp(x)


@op(normal(X), ANY, tolerances=FEW_ULP)
def exp2(x):
    return torch.exp2(x)


@op(normal(X), ANY, tolerances=FEW_ULP)
def expm1(x):
    return torch.expm1(x)


@op(positive(X), ANY, tolerances=FEW_ULP)
def log(x):
    return torch.log(x)


@op(positive(X), ANY, tolerances=FEW_ULP)
def log2(x):
    return torch.log2(x)


@op(positive(X), ANY, tolerances=FEW_ULP)
def log10(x):
    return torch.log10(x)


@op(positive(X), ANY, tolerances=FEW_ULP)
def log1p(x):
    return torch.log1p(x)


@op(positive(X), ANY, exact=True, known=[EAGER_SQRT, ORT_VS_EAGER_SQRT])
def sqrt(x):
    return torch.sqrt(x)


@op(positive(X), ANY, tolerances=FEW_ULP)
def rsqrt(x):
    return torch.rsqrt(x)


@op(normal(X), ANY, exact=True)
def reciprocal(x):
    return torch.reciprocal(x)


@op(normal(X), ANY, tolerances=FEW_ULP)
def sin(x):
    return torch.sin(x)


@op(normal(X), ANY, tolerances=FEW_ULP)
def cos(x):
    return torch.cos(x)


@op(normal(X), ANY, tolerances=FEW_ULP)
def tan(x):
    return torch.tan(x)


@op(normal(X, std=0.5), ANY, tolerances=FEW_ULP)
def asin(x):
    return torch.asin(x)


@op(normal(X, std=0.5), ANY, tolerances=FEW_ULP)
def acos(x):
    return torch.acos(x)


@op(normal(X), ANY, tolerances=FEW_ULP)
def atan(x):
    return torch.atan(x)


@op(normal(X), ANY, tolerances=FEW_ULP)
def sinh(x):
    return torch.sinh(x)


@op(normal(X), ANY, tolerances=FEW_ULP)
def cosh(x):
    return torch.cosh(x)


@op(normal(X), ANY, tolerances=FEW_ULP)
def tanh(x):
    return torch.tanh(x)


@op(normal(X), ANY, tolerances=FEW_ULP)
def asinh(x):
    return torch.asinh(x)


@op(positive(X, low=1.0, high=5.0), ANY, tolerances=FEW_ULP)
def acosh(x):
    return torch.acosh(x)


@op(normal(X, std=0.4), ANY, tolerances=FEW_ULP)
def atanh(x):
    return torch.atanh(x)


@op(normal(X), ANY, tolerances=FEW_ULP)
def sigmoid(x):
    return torch.sigmoid(x)


@op(normal(X), ANY, tolerances=FEW_ULP)
def erf(x):
    return torch.erf(x)


@op(normal(X), ANY, tolerances=FEW_ULP)
def erfc(x):
    return torch.erfc(x)


@op(normal(X, std=0.4), ANY, tolerances=FEW_ULP)
def erfinv(x):
    return torch.erfinv(x)


@op(positive(X), ANY, tolerances=FEW_ULP)
def lgamma(x):
    return torch.lgamma(x)


@op(normal(X, std=3.0), REAL_ANY, dtypes=REALS, exact=True)
def floor(x):
    return torch.floor(x)


@op(normal(X, std=3.0), REAL_ANY, dtypes=REALS, exact=True)
def ceil(x):
    return torch.ceil(x)


@op(normal(X, std=3.0), REAL_ANY, dtypes=REALS, exact=True)
def trunc(x):
    return torch.trunc(x)


@op(normal(X, std=3.0), REAL_ANY, dtypes=REALS, exact=True)
def round(x):
    """round half to even"""
    return torch.round(x)


@op(normal(X, std=30.0), ANY)
def round_decimals(x):
    """round to 1 decimal"""
    return torch.round(x, decimals=1)


@op(normal(X, std=3.0), ANY)
def frac(x):
    return torch.frac(x)


@op(normal(X), ANY, exact=True)
def isnan(x):
    return torch.isnan(x)


@op(normal(X), ANY, exact=True)
def isinf(x):
    return torch.isinf(x)


@op(normal(X), ANY, exact=True)
def isfinite(x):
    return torch.isfinite(x)


@op(normal(X), ANY, exact=True)
def signbit(x):
    return torch.signbit(x)


@op(normal(X), ANY, exact=True)
def nan_to_num(x):
    return torch.nan_to_num(x, nan=0.0, posinf=100.0, neginf=-100.0)


@op(normal(X), REAL_ANY, dtypes=REALS, exact=True)
def clamp(x):
    return torch.clamp(x, min=-2, max=3)


@op(
    ints(X),
    elementwise(1, ("int64", "int32", "int8", "uint8", "bool")),
    dtypes=("int64", "int32", "int8", "uint8", "bool"),
    precisions=["fp32"],
)
def bitwise_not(x):
    return torch.bitwise_not(x)
