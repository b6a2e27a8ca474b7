"""Interpolation in every mode, with align_corners and antialias."""

import torch.nn.functional as F

from torchparity.strategies import FLOATS, single
from torchparity.suites.ops.common import ACCUMULATE, NO_HALF_KERNEL, normal, op

S1 = single(FLOATS, "moderate", ((1, 2, 5), (2, 1, 3), (1, 1, 1)))
S2 = single(FLOATS, "moderate", ((1, 2, 5, 4), (2, 1, 3, 3), (1, 1, 1, 2)))
S3 = single(FLOATS, "moderate", ((1, 1, 3, 4, 2), (1, 2, 2, 2, 2)))
X1, X2, X3 = normal((1, 2, 5)), normal((1, 2, 5, 4)), normal((1, 1, 3, 4, 2))


@op(X2, S2, exact=True)
def interp_nearest(x):
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


@op(X2, S2, exact=True)
def interp_nearest_size(x):
    """non-integer ratio: the floor rule picks source pixels"""
    return F.interpolate(x, size=(7, 3), mode="nearest")


@op(X2, S2, exact=True)
def interp_nearest_exact(x):
    return F.interpolate(x, size=(7, 3), mode="nearest-exact")


@op(X1, S1, tolerances=ACCUMULATE)
def interp_linear(x):
    return F.interpolate(x, size=8, mode="linear", align_corners=False)


@op(X1, S1, tolerances=ACCUMULATE)
def interp_linear_align(x):
    return F.interpolate(x, size=8, mode="linear", align_corners=True)


@op(X2, S2, tolerances=ACCUMULATE)
def interp_bilinear(x):
    return F.interpolate(x, size=(7, 6), mode="bilinear", align_corners=False)


@op(X2, S2, tolerances=ACCUMULATE)
def interp_bilinear_align(x):
    return F.interpolate(x, size=(7, 6), mode="bilinear", align_corners=True)


@op(X2, S2, tolerances=ACCUMULATE, precisions=NO_HALF_KERNEL)
def interp_bilinear_antialias(x):
    """downsampling with antialias=True"""
    return F.interpolate(x, size=(3, 2), mode="bilinear", antialias=True)


@op(X2, S2, tolerances=ACCUMULATE)
def interp_bicubic(x):
    return F.interpolate(x, size=(7, 6), mode="bicubic", align_corners=False)


@op(X2, S2, tolerances=ACCUMULATE)
def interp_bicubic_align(x):
    return F.interpolate(x, size=(7, 6), mode="bicubic", align_corners=True)


@op(X2, S2, tolerances=ACCUMULATE, precisions=NO_HALF_KERNEL)
def interp_bicubic_antialias(x):
    return F.interpolate(x, size=(3, 2), mode="bicubic", antialias=True)


@op(X3, S3, tolerances=ACCUMULATE)
def interp_trilinear(x):
    return F.interpolate(x, size=(4, 5, 3), mode="trilinear", align_corners=False)


@op(X2, S2, tolerances=ACCUMULATE)
def interp_area(x):
    return F.interpolate(x, size=(3, 2), mode="area")
