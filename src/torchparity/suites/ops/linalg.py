"""Matrix products (matmul, bmm, linear, einsum, addmm) and convolutions
(1d/2d/3d, transposed, strided/dilated/grouped)."""

import torch
import torch.nn.functional as F

from torchparity.strategies import FLOATS, fixed
from torchparity.suites.ops.common import ACCUMULATE, normal, op

U = "unit"  # |x| <= 1 keeps accumulated error inside ACCUMULATE


def _pairs(*pairs):
    return fixed(
        *(
            (tuple(p[i] for p in pairs), FLOATS if i == 0 else "same", U)
            for i in range(len(pairs[0]))
        )
    )


@op(
    normal((3, 4), (4, 5)),
    _pairs(
        ((3, 4), (4, 5)),
        ((2, 3, 4), (4, 2)),
        ((4,), (4, 3)),
        ((2, 1, 3, 4), (5, 4, 2)),
        ((0, 3), (3, 2)),
    ),
    tolerances=ACCUMULATE,
)
def matmul(a, b):
    """matmul with broadcasting and 1-D operands"""
    return torch.matmul(a, b)


@op(
    normal((3, 4), (4, 5)),
    _pairs(((3, 4), (4, 5)), ((1, 7), (7, 2)), ((2, 0), (0, 3))),
    tolerances=ACCUMULATE,
)
def mm(a, b):
    return torch.mm(a, b)


@op(
    normal((2, 3, 4), (2, 4, 5)),
    _pairs(((2, 3, 4), (2, 4, 5)), ((1, 2, 2), (1, 2, 3)), ((3, 1, 5), (3, 5, 1))),
    tolerances=ACCUMULATE,
)
def bmm(a, b):
    return torch.bmm(a, b)


@op(normal((4,), (4,)), _pairs(((4,), (4,)), ((9,), (9,)), ((0,), (0,))), tolerances=ACCUMULATE)
def dot(a, b):
    return torch.dot(a, b)


@op(
    normal((3, 8), (5, 8), (5,)),
    _pairs(((3, 8), (5, 8), (5,)), ((2, 3, 4), (2, 4), (2,)), ((4,), (3, 4), (3,))),
    tolerances=ACCUMULATE,
)
def linear(x, w, b):
    return F.linear(x, w, b)


@op(
    normal((3,), (2, 4), (4, 3)),
    _pairs(((3,), (2, 4), (4, 3)), ((1,), (3, 2), (2, 1))),
    tolerances=ACCUMULATE,
)
def addmm(c, a, b):
    return torch.addmm(c, a, b, beta=0.5, alpha=2.0)


@op(
    normal((2, 3, 4), (2, 4, 5)),
    _pairs(((2, 3, 4), (2, 4, 5)), ((1, 2, 3), (1, 3, 2))),
    tolerances=ACCUMULATE,
)
def einsum_bmm(a, b):
    return torch.einsum("bij,bjk->bik", a, b)


@op(normal((3, 4), (4, 3)), _pairs(((3, 4), (4, 3)), ((2, 2), (2, 2))), tolerances=ACCUMULATE)
def einsum_trace(a, b):
    """einsum with a contraction to a scalar"""
    return torch.einsum("ij,ji->", a, b)


# --- convolutions ------------------------------------------------------------------


@op(
    normal((2, 3, 10), (4, 3, 3), (4,)),
    _pairs(((2, 3, 10), (4, 3, 3), (4,)), ((1, 1, 5), (2, 1, 5), (2,))),
    tolerances=ACCUMULATE,
)
def conv1d(x, w, b):
    return F.conv1d(x, w, b, padding=1)


@op(
    normal((1, 3, 8, 8), (4, 3, 3, 3), (4,)),
    _pairs(((1, 3, 8, 8), (4, 3, 3, 3), (4,)), ((2, 2, 5, 4), (3, 2, 3, 3), (3,))),
    tolerances=ACCUMULATE,
)
def conv2d(x, w, b):
    return F.conv2d(x, w, b, padding=1)


@op(
    normal((1, 4, 9, 9), (4, 2, 3, 3), (4,)),
    _pairs(((1, 4, 9, 9), (4, 2, 3, 3), (4,)), ((2, 4, 7, 8), (4, 2, 3, 3), (4,))),
    tolerances=ACCUMULATE,
)
def conv2d_strided_grouped(x, w, b):
    """stride 2, dilation 2, padding 2, 2 groups"""
    return F.conv2d(x, w, b, stride=2, padding=2, dilation=2, groups=2)


@op(
    normal((1, 2, 5, 5, 5), (3, 2, 3, 3, 3), (3,)),
    _pairs(((1, 2, 5, 5, 5), (3, 2, 3, 3, 3), (3,)), ((1, 1, 4, 3, 4), (2, 1, 2, 2, 2), (2,))),
    tolerances=ACCUMULATE,
)
def conv3d(x, w, b):
    return F.conv3d(x, w, b)


@op(
    normal((2, 3, 6), (3, 4, 3), (4,)),
    _pairs(((2, 3, 6), (3, 4, 3), (4,)), ((1, 1, 4), (1, 2, 2), (2,))),
    tolerances=ACCUMULATE,
)
def conv_transpose1d(x, w, b):
    return F.conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=1)


@op(
    normal((1, 3, 5, 5), (3, 2, 3, 3), (2,)),
    _pairs(((1, 3, 5, 5), (3, 2, 3, 3), (2,)), ((2, 2, 3, 4), (2, 3, 2, 2), (3,))),
    tolerances=ACCUMULATE,
)
def conv_transpose2d(x, w, b):
    return F.conv_transpose2d(x, w, b, stride=2)


@op(
    normal((1, 2, 3, 3, 3), (2, 2, 2, 2, 2), (2,)),
    _pairs(((1, 2, 3, 3, 3), (2, 2, 2, 2, 2), (2,)), ((1, 1, 2, 3, 2), (1, 3, 3, 3, 3), (3,))),
    tolerances=ACCUMULATE,
)
def conv_transpose3d(x, w, b):
    return F.conv_transpose3d(x, w, b, padding=1)
