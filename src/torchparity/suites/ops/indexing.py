"""Indexing (gather, scatter, index_select, masked_fill, where, take) and shape
ops (cat, stack, reshape, permute, pad, flip, roll, tril, ...)."""

import torch
import torch.nn.functional as F

from torchparity.strategies import (
    ALL,
    FLOAT,
    FLOATS,
    composite,
    draw_choice,
    draw_tensor,
    dtype_choice,
    elementwise,
    fixed,
    single,
)
from torchparity.suites.ops.common import normal, op


def _index_args(draw, shapes, dim_size_of=lambda s: s[-1], index_shape_of=None):
    shape = draw_choice(draw, ((3, 4), (2, 5), (4, 1)), shapes)
    dtype = draw(dtype_choice(ALL))
    x = draw_tensor(draw, shape, dtype)
    index_shape = index_shape_of(shape) if index_shape_of else (shape[0], 2)
    index = draw_tensor(draw, index_shape, "int64", low=0, high=dim_size_of(shape) - 1)
    return x, index


def _gather_samples(gen, batch):
    return (gen.normal(3, 4), gen.integers(0, 4, 3, 2))


@op(_gather_samples, composite(_index_args), dtypes=ALL, exact=True)
def gather(x, index):
    return torch.gather(x, 1, index)


@op(_gather_samples, composite(_index_args), dtypes=ALL, exact=True)
def take_along_dim(x, index):
    return torch.take_along_dim(x, index, dim=1)


def _scatter_args(draw, shapes):
    x, index = _index_args(draw, shapes)
    src = draw_tensor(draw, index.shape, "float" if x.is_floating_point() else "int64")
    return x, index, src.to(x.dtype)


def _scatter_samples(gen, batch):
    return (gen.normal(3, 4), torch.tensor([[0, 1], [2, 3], [3, 0]]), gen.normal(3, 2))


@op(_scatter_samples, composite(_scatter_args), dtypes=ALL, exact=True)
def scatter(x, index, src):
    """rows with distinct indices; a duplicate index is unspecified"""
    return torch.scatter(x, 1, index[:, :1], src[:, :1])


@op(_scatter_samples, composite(_scatter_args), dtypes=ALL)
def scatter_add(x, index, src):
    """duplicate indices accumulate"""
    return torch.scatter_add(x, 1, index, src)


@op(_scatter_samples, composite(_scatter_args), dtypes=ALL, exact=True)
def scatter_reduce_amax(x, index, src):
    return torch.scatter_reduce(x, 1, index, src, reduce="amax", include_self=True)


def _select_args(draw, shapes):
    return _index_args(draw, shapes, dim_size_of=lambda s: s[0], index_shape_of=lambda s: (3,))


@op(
    lambda gen, b: (gen.normal(4, 3), gen.integers(0, 4, 5)),
    composite(_select_args),
    dtypes=ALL,
    exact=True,
)
def index_select(x, index):
    return torch.index_select(x, 0, index)


@op(
    lambda gen, b: (gen.normal(4, 3), gen.integers(0, 4, 5)),
    composite(_select_args),
    dtypes=ALL,
    exact=True,
)
def advanced_index(x, index):
    """x[index] with a tensor index"""
    return x[index]


def _take_args(draw, shapes):
    x, _ = _index_args(draw, shapes)
    n = x.numel()
    return x, draw_tensor(draw, (4,), "int64", low=-n, high=n - 1)


@op(
    lambda gen, b: (gen.normal(3, 4), gen.integers(-12, 12, 4)),
    composite(_take_args),
    dtypes=ALL,
    exact=True,
)
def take(x, index):
    """flat indices, negatives included"""
    return torch.take(x, index)


def _mask_args(draw, shapes):
    shape = draw_choice(draw, ((3, 4), (2, 5), (0, 2)), shapes)
    return draw_tensor(draw, shape, FLOAT), draw_tensor(draw, shape, "bool")


def _mask_samples(gen, batch):
    return (gen.normal(3, 4), gen.integers(0, 2, 3, 4).bool())


@op(_mask_samples, composite(_mask_args), exact=True)
def masked_fill(x, mask):
    return x.masked_fill(mask, -1.5)


@op(_mask_samples, composite(_mask_args), exact=True)
def masked_fill_neg_inf(x, mask):
    """the attention-mask idiom"""
    return x.masked_fill(mask, float("-inf"))


def _where_args(draw, shapes):
    a, b = draw(elementwise(2, ALL)(shapes))
    cond = draw_tensor(
        draw, draw_choice(draw, ((), (1,)) + ((a.shape,) if a.dim() else ())), "bool"
    )
    return cond, a, b


@op(
    lambda gen, b: (gen.integers(0, 2, 3, 4).bool(), gen.normal(3, 4), gen.normal(3, 4)),
    composite(_where_args),
    dtypes=ALL,
    exact=True,
)
def where(cond, a, b):
    return torch.where(cond, a, b)


# --- shape ops -----------------------------------------------------------------------

SH = single(ALL, "any", ((2, 3, 4), (1, 6, 2), (3, 2, 2)))


@op(
    normal((2, 3), (4, 3)),
    fixed((((2, 3), (0, 3), (1, 2)), ALL, "any"), (((4, 3), (2, 3), (3, 2)), "same", "any")),
    dtypes=ALL,
    exact=True,
)
def cat(a, b):
    return torch.cat([a, b], dim=0)


@op(
    normal((2, 3), (2, 3)),
    elementwise(2, ALL, shape_pool=(((2, 3), (2, 3)), ((0,), (0,)), ((), ()))),
    dtypes=ALL,
    exact=True,
)
def stack(a, b):
    return torch.stack([a, b], dim=-1)


@op(normal((2, 3, 4)), SH, dtypes=ALL, exact=True)
def reshape(x):
    return x.reshape(x.shape[0], -1)


@op(normal((2, 3, 4)), SH, dtypes=ALL, exact=True)
def permute(x):
    return x.permute(2, 0, 1).contiguous()


@op(normal((2, 3, 4)), SH, dtypes=ALL, exact=True)
def transpose(x):
    return x.transpose(0, 1)


@op(normal((2, 3, 4)), SH, dtypes=ALL, exact=True)
def flatten(x):
    return torch.flatten(x, 1)


@op(normal((2, 3, 4)), SH, dtypes=ALL, exact=True)
def unsqueeze_squeeze(x):
    return x.unsqueeze(1).squeeze(0)


@op(normal((2, 3, 4)), SH, dtypes=ALL, exact=True)
def flip(x):
    return torch.flip(x, dims=[0, 2])


@op(normal((2, 3, 4)), SH, dtypes=ALL, exact=True)
def roll(x):
    return torch.roll(x, shifts=(1, -2), dims=(1, 2))


@op(normal((2, 3, 4)), SH, dtypes=ALL, exact=True)
def tril(x):
    return torch.tril(x, diagonal=-1)


@op(normal((2, 3, 4)), SH, dtypes=ALL, exact=True)
def triu(x):
    return torch.triu(x, diagonal=1)


@op(normal((2, 3, 4)), SH, dtypes=ALL, exact=True)
def repeat(x):
    return x.repeat(1, 2, 1)


@op(
    normal((2, 1, 4)), single(ALL, "any", ((2, 1, 4), (1, 1, 2), (3, 1, 1))), dtypes=ALL, exact=True
)
def expand(x):
    return x.expand(-1, 3, -1).contiguous()


@op(normal((2, 3, 4)), SH, dtypes=ALL, exact=True)
def chunk(x):
    """tuple output"""
    return torch.chunk(x, 2, dim=-1)


@op(normal((2, 3, 4)), SH, dtypes=ALL, exact=True)
def narrow(x):
    return torch.narrow(x, 2, 1, 1)


PAD = single(FLOATS, "any", ((1, 2, 4, 5), (2, 1, 3, 3), (1, 1, 4, 2)))


@op(
    normal((1, 2, 4, 5)), single(ALL, "any", ((1, 2, 4, 5), (2, 3), (0, 3))), dtypes=ALL, exact=True
)
def pad_constant(x):
    return F.pad(x, (1, 2), mode="constant", value=0.0)  # TorchScript wants a float value


@op(normal((1, 2, 4, 5)), PAD, exact=True)
def pad_reflect(x):
    return F.pad(x, (1, 1, 2, 1), mode="reflect")


@op(normal((1, 2, 4, 5)), PAD, exact=True)
def pad_replicate(x):
    return F.pad(x, (2, 1, 1, 0), mode="replicate")


@op(normal((1, 2, 4, 5)), PAD, exact=True)
def pad_circular(x):
    return F.pad(x, (1, 1, 1, 1), mode="circular")


def _where_scalar_samples(gen, batch):
    return (gen.normal(3, 4), gen.integers(0, 2, 3, 4).to(torch.bool))


@op(
    _where_scalar_samples,
    fixed((((3, 4), (2, 2)), FLOATS, "any"), (((3, 4), (2, 2)), ("bool",), "any")),
    exact=True,
)
def where_scalar(x, mask):
    """torch.where with a Python-scalar branch"""
    return torch.where(mask, x, 0.0)
