"""Reductions (sum, mean, prod, max/min, arg-reductions, var/std, logsumexp,
norms, cumulative ops) and sorting (sort, topk, unique)."""

import torch

from torchparity.strategies import ALL, FLOATS, REALS, REDUCE_SHAPES, single
from torchparity.suites.ops.common import ACCUMULATE, ORT_REDUCE_NAN, ints, normal, op

X = (4, 6)
MOD = single(FLOATS, "moderate")  # accumulation error stays inside ACCUMULATE
ANY = single(FLOATS, "any")  # special values: NaN and inf must propagate the same way
# max/amax/argmax/inf-norm over the last dim have no identity: an empty last dim is
# an error in eager itself, not a parity question.
ANY_NONEMPTY = single(FLOATS, "any", tuple(s for s in REDUCE_SHAPES if s[-1] != 0))
REAL_MOD = single(REALS, "moderate")


@op(normal(X), MOD, tolerances=ACCUMULATE)
def sum(x):
    return torch.sum(x)


@op(normal(X), single(ALL, "moderate"), dtypes=ALL, tolerances=ACCUMULATE)
def sum_dim(x):
    return torch.sum(x, dim=-1)


@op(normal(X), ANY, tolerances=ACCUMULATE)
def sum_special(x):
    """sum over inputs with NaN and inf"""
    return torch.sum(x, dim=0)


@op(normal(X), MOD, tolerances=ACCUMULATE)
def mean(x):
    return torch.mean(x, dim=-1, keepdim=True)


@op(normal(X), MOD, tolerances=ACCUMULATE)
def nansum(x):
    return torch.nansum(x, dim=-1)


@op(normal(X, std=0.8), single(FLOATS, "unit"), tolerances=ACCUMULATE)
def prod(x):
    return torch.prod(x, dim=-1)


# max/min over every real dtype with finite values; the NaN semantics (NaN
# wins) get their own float-only ops, so a known NaN mark hides nothing else.
@op(normal(X), single(REALS, "moderate"), dtypes=REALS, exact=True)
def max_dim(x):
    """values and indices"""
    return torch.max(x, dim=-1)


@op(normal(X), single(REALS, "moderate"), dtypes=REALS, exact=True)
def min_dim(x):
    return torch.min(x, dim=0)


@op(normal(X), single(REALS, "moderate"), dtypes=REALS, exact=True)
def amax(x):
    return torch.amax(x, dim=-1)


@op(normal(X), single(REALS, "moderate"), dtypes=REALS, exact=True)
def amin(x):
    return torch.amin(x, dim=0)


@op(normal(X), ANY_NONEMPTY, exact=True, known=[ORT_REDUCE_NAN])
def max_dim_nan(x):
    """max with indices over inputs with NaN and inf (NaN wins)"""
    return torch.max(x, dim=-1)


@op(normal(X), ANY_NONEMPTY, exact=True, known=[ORT_REDUCE_NAN])
def amax_nan(x):
    return torch.amax(x, dim=-1)


@op(normal(X), ANY, exact=True, known=[ORT_REDUCE_NAN])
def amin_nan(x):
    return torch.amin(x, dim=0)


@op(normal(X), single(REALS, "moderate"), dtypes=REALS)
def argmax(x):
    """first index of the maximum (ties!)"""
    return torch.argmax(x, dim=-1)


@op(normal(X), single(REALS, "moderate"), dtypes=REALS)
def argmin(x):
    return torch.argmin(x, dim=-1)


@op(normal(X), ANY_NONEMPTY, exact=True)
def argmax_nan(x):
    """argmax over inputs with NaN (NaN counts as the maximum)"""
    return torch.argmax(x, dim=-1)


@op(normal(X), MOD, tolerances=ACCUMULATE)
def var(x):
    return torch.var(x, dim=-1)


@op(normal(X), MOD, tolerances=ACCUMULATE)
def var_biased(x):
    return torch.var(x, dim=0, correction=0)


@op(normal(X), MOD, tolerances=ACCUMULATE)
def std(x):
    return torch.std(x, dim=-1)


@op(normal(X), MOD, tolerances=ACCUMULATE)
def logsumexp(x):
    return torch.logsumexp(x, dim=-1)


@op(normal(X), MOD, tolerances=ACCUMULATE)
def norm_l2(x):
    return torch.linalg.vector_norm(x, ord=2, dim=-1)


@op(normal(X), MOD, tolerances=ACCUMULATE)
def norm_l1(x):
    return torch.linalg.vector_norm(x, ord=1, dim=-1)


@op(normal(X), ANY_NONEMPTY, exact=True, known=[ORT_REDUCE_NAN])
def norm_inf(x):
    return torch.linalg.vector_norm(x, ord=float("inf"), dim=-1)


@op(normal(X), MOD, tolerances=ACCUMULATE)
def frobenius_norm(x):
    return torch.norm(x)


@op(normal(X), single(REALS, "moderate"), dtypes=REALS, tolerances=ACCUMULATE)
def cumsum(x):
    return torch.cumsum(x, dim=-1)


@op(normal(X, std=0.8), single(FLOATS, "unit"), tolerances=ACCUMULATE)
def cumprod(x):
    return torch.cumprod(x, dim=-1)


@op(ints(X, low=0, high=2), single(ALL, "any"), dtypes=ALL)
def all(x):
    return torch.all(x, dim=-1)


@op(ints(X, low=0, high=2), single(ALL, "any"), dtypes=ALL)
def any(x):
    return torch.any(x, dim=-1)


@op(ints(X, low=-1, high=2), single(ALL, "any"), dtypes=ALL)
def count_nonzero(x):
    return torch.count_nonzero(x, dim=-1)


# --- sorting -----------------------------------------------------------------------


@op(normal(X), single(REALS, "any"), dtypes=REALS, exact=True)
def sort_values(x):
    """sorted values (NaN sorts last)"""
    return torch.sort(x, dim=-1).values


@op(normal(X), single(REALS, "moderate"), dtypes=REALS, exact=True)
def sort_stable(x):
    """values and indices of a stable descending sort (ties keep order)"""
    return torch.sort(x, dim=-1, descending=True, stable=True)


@op(normal(X), single(REALS, "moderate"), dtypes=REALS, exact=True)
def argsort_stable(x):
    return torch.argsort(x, dim=0, stable=True)


@op(
    normal(X),
    single(REALS, "moderate", shape_pool=((3, 4), (2, 5), (1, 3), (4, 2))),
    dtypes=REALS,
    exact=True,
)
def topk(x):
    """top-2 values and indices along the last dim"""
    return torch.topk(x, 2, dim=-1)


@op(normal(X), single(FLOATS, "any", shape_pool=((3, 4), (2, 5), (6,))), exact=True)
def topk_values_nan(x):
    """top-3 values with NaN and inf in the input"""
    return torch.topk(x, 3, dim=-1).values


@op(
    ints(X, low=-3, high=3),
    single(("int64", "int32", "float"), "moderate", shape_pool=((12,), (3, 4), (0,), (5,))),
    dtypes=("int64", "int32", "float"),
    exact=True,
)
def unique(x):
    """sorted unique values with inverse indices and counts"""
    return torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
