"""Neural-network ops: pooling, normalisations, activations, embedding, dropout in eval."""

import torch.nn.functional as F

from torchparity.strategies import (
    FLOAT,
    FLOATS,
    composite,
    draw_choice,
    draw_tensor,
    elementwise,
    fixed,
    single,
)
from torchparity.suites.ops.common import (
    ACCUMULATE,
    BATCH,
    FEW_ULP,
    GELU_INF,
    LENGTH,
    NO_HALF_KERNEL,
    ORT_MAXPOOL_NAN,
    ORT_SIGMOID,
    ORT_VS_EAGER_GELU,
    ROWS,
    chain,
    normal,
    op,
    positive,
)

ACT = elementwise(1, FLOATS)
A = (3, 5)


# --- pooling -----------------------------------------------------------------------

P1 = single(FLOATS, "any", ((2, 3, 8), (1, 1, 5), (1, 2, 7)))
P2 = single(FLOATS, "any", ((1, 2, 6, 6), (2, 1, 5, 7), (1, 1, 4, 4)))
P2M = single(FLOATS, "moderate", ((1, 2, 6, 6), (2, 1, 5, 7), (1, 1, 4, 4)))
P3 = single(FLOATS, "any", ((1, 2, 4, 4, 4), (1, 1, 5, 3, 4)))
P3M = single(FLOATS, "moderate", ((1, 2, 4, 4, 4), (1, 1, 5, 3, 4)))


@op(normal((2, 3, 8)), P1, exact=True, known=[ORT_MAXPOOL_NAN], dynamic=[BATCH, LENGTH])
def max_pool1d(x):
    return F.max_pool1d(x, 3, stride=2)


@op(normal((1, 2, 6, 6)), P2, exact=True, known=[ORT_MAXPOOL_NAN])
def max_pool2d(x):
    """max pool with NaN and inf in the window"""
    return F.max_pool2d(x, 2)


@op(normal((1, 2, 7, 7)), P2, exact=True, known=[ORT_MAXPOOL_NAN])
def max_pool2d_ceil(x):
    """ceil_mode=True, padding=1, stride 2"""
    return F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)


@op(normal((1, 2, 4, 4, 4)), P3, exact=True, known=[ORT_MAXPOOL_NAN])
def max_pool3d(x):
    return F.max_pool3d(x, 2)


@op(
    normal((2, 3, 8)),
    single(FLOATS, "moderate", ((2, 3, 8), (1, 1, 5), (1, 2, 7))),
    tolerances=ACCUMULATE,
    dynamic=[BATCH, LENGTH],
)
def avg_pool1d(x):
    return F.avg_pool1d(x, 3, stride=2, padding=1)


@op(normal((1, 2, 6, 6)), P2M, tolerances=ACCUMULATE)
def avg_pool2d(x):
    return F.avg_pool2d(x, 2)


@op(normal((1, 2, 7, 7)), P2M, tolerances=ACCUMULATE)
def avg_pool2d_ceil(x):
    """ceil_mode=True, count_include_pad=False"""
    return F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)


@op(normal((1, 2, 4, 4, 4)), P3M, tolerances=ACCUMULATE, precisions=NO_HALF_KERNEL)
def avg_pool3d(x):
    return F.avg_pool3d(x, 2)


@op(
    normal((2, 3, 8)),
    single(FLOATS, "moderate", ((2, 3, 8), (1, 2, 7), (1, 1, 5))),
    tolerances=ACCUMULATE,
    dynamic=[BATCH, LENGTH],
)
def adaptive_avg_pool1d(x):
    """output size 3 (uneven windows)"""
    return F.adaptive_avg_pool1d(x, 3)


@op(normal((1, 2, 7, 5)), P2M, tolerances=ACCUMULATE)
def adaptive_avg_pool2d(x):
    return F.adaptive_avg_pool2d(x, (3, 2))


@op(normal((1, 2, 7, 5)), P2, exact=True, known=[ORT_MAXPOOL_NAN])
def adaptive_max_pool2d(x):
    return F.adaptive_max_pool2d(x, (3, 2))


# --- normalisation -----------------------------------------------------------------

N = "unit"  # |x| <= 1: a near-constant row divides rounding error by sqrt(eps)


def _bn_args(draw, shapes):
    shape = draw_choice(draw, ((2, 3, 4), (1, 2, 5, 5), (4, 3)), shapes)
    c = shape[1]
    return (
        draw_tensor(draw, shape, FLOAT, N),
        draw_tensor(draw, (c,), FLOAT, N),
        draw_tensor(draw, (c,), FLOAT, "positive"),
        draw_tensor(draw, (c,), FLOAT, N),
        draw_tensor(draw, (c,), FLOAT, N),
    )


@op(
    chain(normal((2, 3, 4)), normal((3,)), positive((3,)), normal((3,), (3,))),
    composite(_bn_args),
    tolerances=ACCUMULATE,
)
def batch_norm(x, mean, var, w, b):
    """inference batch norm with running statistics"""
    return F.batch_norm(x, mean, var, w, b, training=False, eps=1e-5)


def _affine_args(draw, shapes, pool, channels_of):
    shape = draw_choice(draw, pool, shapes)
    c = channels_of(shape)
    return (
        draw_tensor(draw, shape, FLOAT, N),
        draw_tensor(draw, (c,), FLOAT, N),
        draw_tensor(draw, (c,), FLOAT, N),
    )


@op(
    normal((2, 3, 8), (8,), (8,)),
    composite(lambda d, s: _affine_args(d, s, ((2, 3, 8), (4, 6), (1, 5)), lambda sh: sh[-1])),
    tolerances=ACCUMULATE,
    dynamic=[BATCH, ROWS],
)
def layer_norm(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)


@op(
    normal((2, 4, 5), (4,), (4,)),
    composite(
        lambda d, s: _affine_args(d, s, ((2, 4, 5), (1, 6, 3, 3), (3, 2, 4)), lambda sh: sh[1])
    ),
    tolerances=ACCUMULATE,
    dynamic=[BATCH, LENGTH],
)
def group_norm(x, w, b):
    """2 groups"""
    return F.group_norm(x, 2, w, b, eps=1e-5)


@op(
    normal((2, 3, 6)),
    single(FLOATS, N, ((2, 3, 6), (1, 2, 4, 4), (3, 1, 5))),
    tolerances=ACCUMULATE,
    dynamic=[BATCH, LENGTH],
)
def instance_norm(x):
    return F.instance_norm(x, eps=1e-5)


@op(
    normal((2, 3, 8), (8,)),
    composite(lambda d, s: _affine_args(d, s, ((2, 3, 8), (4, 6), (1, 5)), lambda sh: sh[-1])[:2]),
    tolerances=ACCUMULATE,
    dynamic=[BATCH, ROWS],
)
def rms_norm(x, w):
    return F.rms_norm(x, (x.shape[-1],), w, eps=1e-6)


@op(normal((3, 5)), single(FLOATS, N, ((3, 5), (2, 3, 4), (1, 1))), tolerances=ACCUMULATE)
def normalize(x):
    """L2 normalisation along dim 1"""
    return F.normalize(x, p=2.0, dim=1)


# --- activations -------------------------------------------------------------------


@op(normal(A), ACT, exact=True)
def relu(x):
    return F.relu(x)


@op(normal(A, std=4.0), ACT, exact=True)
def relu6(x):
    return F.relu6(x)


@op(normal(A), ACT)
def leaky_relu(x):
    return F.leaky_relu(x, 0.1)


@op(normal(A), ACT, tolerances=FEW_ULP)
def elu(x):
    return F.elu(x, alpha=1.5)


@op(normal(A), ACT, tolerances=FEW_ULP)
def selu(x):
    return F.selu(x)


@op(normal(A), ACT, tolerances=FEW_ULP)
def celu(x):
    return F.celu(x, alpha=0.5)


@op(normal(A), ACT, tolerances=FEW_ULP, known=[GELU_INF, ORT_VS_EAGER_GELU])
def gelu(x):
    """exact (erf) form"""
    return F.gelu(x)


@op(normal(A), ACT, tolerances=FEW_ULP)
def gelu_tanh(x):
    """tanh approximation"""
    return F.gelu(x, approximate="tanh")


@op(normal(A), ACT, tolerances=FEW_ULP)
def silu(x):
    return F.silu(x)


@op(normal(A), ACT, tolerances=FEW_ULP)
def mish(x):
    return F.mish(x)


@op(normal(A, std=3.0), ACT, tolerances=FEW_ULP)
def softplus(x):
    return F.softplus(x)


@op(normal(A, std=3.0), ACT, tolerances=FEW_ULP)
def softplus_beta_threshold(x):
    """beta=2, threshold=5: linear above x*beta > 5"""
    return F.softplus(x, beta=2.0, threshold=5.0)


@op(normal(A, std=3.0), ACT)
def hardswish(x):
    return F.hardswish(x)


@op(normal(A, std=3.0), ACT)
def hardsigmoid(x):
    return F.hardsigmoid(x)


@op(normal(A), ACT, exact=True)
def hardtanh(x):
    return F.hardtanh(x, -0.5, 0.5)


@op(normal(A), ACT)
def softsign(x):
    return F.softsign(x)


@op(normal(A), ACT, exact=True)
def softshrink(x):
    return F.softshrink(x, 0.5)


@op(normal(A), ACT, exact=True)
def hardshrink(x):
    return F.hardshrink(x, 0.5)


@op(normal(A), ACT, tolerances=FEW_ULP, known=[ORT_SIGMOID])
def logsigmoid(x):
    return F.logsigmoid(x)


@op(normal(A), ACT, exact=True)
def threshold(x):
    return F.threshold(x, 0.5, -1.0)


@op(normal(A), single(FLOATS, "any", ((3, 5), (2, 3, 4), (1, 1), (4, 0))), tolerances=FEW_ULP)
def softmax(x):
    return F.softmax(x, dim=-1)


@op(normal(A), single(FLOATS, "any", ((3, 5), (2, 3, 4), (1, 1), (4, 0))), tolerances=FEW_ULP)
def log_softmax(x):
    return F.log_softmax(x, dim=-1)


@op(
    normal((2, 3, 4), (3,)),
    fixed(
        (((2, 3, 4), (1, 3), (2, 3, 2, 2)), FLOATS, "any"), (((3,), (3,), (3,)), "same", "moderate")
    ),
)
def prelu(x, w):
    return F.prelu(x, w)


@op(normal((3, 6)), single(FLOATS, "any", ((3, 6), (2, 4), (1, 2))), tolerances=FEW_ULP)
def glu(x):
    return F.glu(x, dim=-1)


# --- embedding, dropout --------------------------------------------------------------


def _embedding_args(draw, shapes):
    vocab, dim = draw_choice(draw, ((10, 4), (3, 2), (7, 1)), shapes)
    idx_shape = draw_choice(draw, ((5,), (2, 3), (0,)), shapes)
    return (
        draw_tensor(draw, idx_shape, "int64", low=0, high=vocab - 1),
        draw_tensor(draw, (vocab, dim), FLOAT, "any"),
    )


def _embedding_samples(gen, batch):
    return (gen.integers(0, 10, 2, 3), gen.normal(10, 4))


@op(_embedding_samples, composite(_embedding_args), exact=True)
def embedding(ids, weight):
    return F.embedding(ids, weight)


@op(normal((3, 5)), ACT, exact=True)
def dropout_eval(x):
    """dropout with training=False is the identity"""
    return F.dropout(x, p=0.5, training=False)


@op(normal((3, 5)), ACT, exact=True)
def alpha_dropout_eval(x):
    return F.alpha_dropout(x, p=0.3, training=False)
