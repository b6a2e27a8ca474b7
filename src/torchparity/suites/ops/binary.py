"""Binary arithmetic (integer division and modulo families, every rounding
mode), comparisons, logical ops and casts."""

import torch

from torchparity.strategies import ALL, FLOATS, INTS, REALS, elementwise
from torchparity.suites.ops.common import FEW_ULP, chain, ints, nonzero_ints, normal, op, positive

X = (3, 4)
REAL2 = elementwise(2, REALS)
ALL2 = elementwise(2, ALL)
FLOAT2 = elementwise(2, FLOATS)
DIVISION = elementwise(2, REALS, nonzero_last=True)  # integer x / 0 raises in eager
INT_ONLY = ("int64", "int32", "int16", "int8", "uint8", "bool")


@op(normal(X, X), REAL2, dtypes=REALS, exact=True)
def add(a, b):
    return torch.add(a, b)


@op(normal(X, X), REAL2, dtypes=REALS)
def add_alpha(a, b):
    return torch.add(a, b, alpha=2)


@op(
    normal(X, X),
    elementwise(2, ("float", "int64", "int32", "int16", "int8")),
    dtypes=("float", "int64", "int32", "int16", "int8"),
    exact=True,
)
def sub(a, b):
    return torch.sub(a, b)


@op(normal(X, X), ALL2, dtypes=ALL, exact=True)
def mul(a, b):
    return torch.mul(a, b)


@op(normal(X, X), REAL2, dtypes=REALS, exact=True)
def div(a, b):
    """true division"""
    return torch.div(a, b)


@op(chain(normal(X, std=5.0), nonzero_ints(X, low=-4, high=5)), DIVISION, dtypes=REALS)
def div_trunc(a, b):
    return torch.div(a, b, rounding_mode="trunc")


@op(chain(normal(X, std=5.0), nonzero_ints(X, low=-4, high=5)), DIVISION, dtypes=REALS)
def div_floor(a, b):
    return torch.div(a, b, rounding_mode="floor")


@op(chain(normal(X, std=5.0), nonzero_ints(X, low=-4, high=5)), DIVISION, dtypes=REALS)
def floor_divide(a, b):
    """the // operator"""
    return a // b


@op(chain(normal(X, std=5.0), nonzero_ints(X, low=-4, high=5)), DIVISION, dtypes=REALS)
def remainder(a, b):
    """Python-style modulo (sign of the divisor)"""
    return torch.remainder(a, b)


@op(chain(normal(X, std=5.0), nonzero_ints(X, low=-4, high=5)), DIVISION, dtypes=REALS, exact=True)
def fmod(a, b):
    """C-style modulo (sign of the dividend)"""
    return torch.fmod(a, b)


@op(
    chain(ints(X), nonzero_ints(X)),
    elementwise(2, INTS, nonzero_last=True),
    dtypes=INTS,
    precisions=["fp32"],
)
def int_floordiv_mod(a, b):
    """divmod identity on integers: (a // b) * b + a % b"""
    return (a // b) * b + torch.remainder(a, b)


@op(positive(X, X), FLOAT2, tolerances=FEW_ULP)
def pow(a, b):
    return torch.pow(a, b)


@op(normal(X), elementwise(1, FLOATS))
def pow_scalar(x):
    """x ** 2.5"""
    return torch.pow(x, 2.5)


@op(normal(X, X), FLOAT2, tolerances=FEW_ULP)
def atan2(a, b):
    return torch.atan2(a, b)


@op(normal(X, X), FLOAT2, tolerances=FEW_ULP)
def hypot(a, b):
    return torch.hypot(a, b)


@op(normal(X, X), FLOAT2, exact=True)
def copysign(a, b):
    return torch.copysign(a, b)


@op(normal(X, X), FLOAT2, tolerances=FEW_ULP)
def logaddexp(a, b):
    return torch.logaddexp(a, b)


@op(normal(X, X), REAL2, dtypes=REALS, exact=True)
def maximum(a, b):
    """NaN-propagating maximum"""
    return torch.maximum(a, b)


@op(normal(X, X), REAL2, dtypes=REALS, exact=True)
def minimum(a, b):
    return torch.minimum(a, b)


@op(normal(X, X), FLOAT2, exact=True)
def fmax(a, b):
    """NaN-ignoring maximum"""
    return torch.fmax(a, b)


@op(normal(X, X), FLOAT2, exact=True)
def fmin(a, b):
    return torch.fmin(a, b)


@op(normal(X, X, X), elementwise(3, FLOATS))
def lerp(a, b, w):
    return torch.lerp(a, b, w)


@op(normal(X, X, X), elementwise(3, FLOATS), tolerances=FEW_ULP)
def addcmul(a, b, c):
    return torch.addcmul(a, b, c, value=0.5)


@op(normal(X, X, X), elementwise(3, FLOATS), tolerances=FEW_ULP)
def addcdiv(a, b, c):
    return torch.addcdiv(a, b, c, value=0.5)


@op(normal(X, X, X), elementwise(3, REALS), dtypes=REALS, exact=True)
def clamp_tensor(x, lo, hi):
    return torch.clamp(x, lo, hi)


@op(ints(X, X), elementwise(2, INT_ONLY), dtypes=INT_ONLY, precisions=["fp32"])
def bitwise_and(a, b):
    return torch.bitwise_and(a, b)


@op(ints(X, X), elementwise(2, INT_ONLY), dtypes=INT_ONLY, precisions=["fp32"])
def bitwise_or(a, b):
    return torch.bitwise_or(a, b)


@op(ints(X, X), elementwise(2, INT_ONLY), dtypes=INT_ONLY, precisions=["fp32"])
def bitwise_xor(a, b):
    return torch.bitwise_xor(a, b)


# --- comparisons and logical ops ------------------------------------------------


@op(ints(X, X, low=-3, high=3), ALL2, dtypes=ALL)
def eq(a, b):
    return torch.eq(a, b)


@op(ints(X, X, low=-3, high=3), ALL2, dtypes=ALL)
def ne(a, b):
    return torch.ne(a, b)


@op(normal(X, X), REAL2, dtypes=REALS)
def lt(a, b):
    return torch.lt(a, b)


@op(normal(X, X), REAL2, dtypes=REALS)
def le(a, b):
    return torch.le(a, b)


@op(normal(X, X), REAL2, dtypes=REALS)
def gt(a, b):
    return torch.gt(a, b)


@op(normal(X, X), REAL2, dtypes=REALS)
def ge(a, b):
    return torch.ge(a, b)


@op(normal(X, X), FLOAT2)
def isclose(a, b):
    return torch.isclose(a, b, rtol=1e-2, atol=1e-3, equal_nan=True)


@op(ints(X, X, low=-1, high=2), ALL2, dtypes=ALL)
def logical_and(a, b):
    return torch.logical_and(a, b)


@op(ints(X, X, low=-1, high=2), ALL2, dtypes=ALL)
def logical_or(a, b):
    return torch.logical_or(a, b)


@op(ints(X, X, low=-1, high=2), ALL2, dtypes=ALL)
def logical_xor(a, b):
    return torch.logical_xor(a, b)


@op(normal(X), elementwise(1, ALL), dtypes=ALL)
def logical_not(x):
    return torch.logical_not(x)


# --- casts -------------------------------------------------------------------------
# Float -> integer casts of NaN, inf or out-of-range values are undefined
# behaviour in C++, so those strategies draw in-range values only.


@op(normal(X, std=30.0), elementwise(1, FLOATS, values="moderate"))
def to_int64(x):
    """float -> int64 (truncation toward zero)"""
    return x.to(torch.int64)


@op(normal(X, std=30.0), elementwise(1, FLOATS, values="moderate"))
def to_int32(x):
    return x.to(torch.int32)


@op(normal(X, std=30.0), elementwise(1, FLOATS, values="moderate"))
def to_uint8_from_float(x):
    """float -> uint8 (in-range, non-negative values)"""
    return x.abs().to(torch.uint8)


@op(normal(X), elementwise(1, FLOATS))
def to_bool(x):
    return x.to(torch.bool)


@op(normal(X), elementwise(1, FLOATS), exact=True)
def to_float16(x):
    return x.to(torch.float16)


@op(normal(X), elementwise(1, FLOATS), exact=True)
def to_bfloat16(x):
    return x.to(torch.bfloat16)


@op(ints(X), elementwise(1, ALL), dtypes=ALL, exact=True)
def to_float32(x):
    return x.to(torch.float32)


@op(
    ints(X, low=-100000, high=100000),
    elementwise(1, INT_ONLY),
    dtypes=INT_ONLY,
    precisions=["fp32"],
)
def int_to_int8(x):
    """integer narrowing wraps modulo 2**8"""
    return x.to(torch.int8)


@op(ints(X), elementwise(1, INT_ONLY), dtypes=INT_ONLY, precisions=["fp32"])
def int_to_bool(x):
    return x.to(torch.bool)


@op(ints(X), elementwise(1, INT_ONLY), dtypes=INT_ONLY, precisions=["fp32"])
def int_to_float64(x):
    return x.to(torch.float64)
