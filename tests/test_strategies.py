"""Meta tests of the op strategies: each catalog strategy draws inputs its op
accepts (eager runs them at fp64 and fp32 without error), and the shared
strategies draw what they claim (special values, every listed dtype)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings

from torchparity import strategies
from torchparity.cases.case import SUITES, load_all, suite_cases
from torchparity.cases.inputs import cast_inputs
from torchparity.cases.reference import build_module

load_all([])
OPS = [c for c in suite_cases("ops")]
EXAMPLES = 6


def test_catalog_size_and_families() -> None:
    assert len(SUITES["ops"]) >= 120
    names = set(SUITES["ops"])
    for required in (
        "div_floor",
        "div_trunc",
        "remainder",
        "fmod",
        "round",
        "eq",
        "logical_and",
        "to_int32",
        "sum",
        "argmax",
        "var",
        "logsumexp",
        "cumprod",
        "sort_stable",
        "topk",
        "unique",
        "matmul",
        "bmm",
        "linear",
        "einsum_bmm",
        "conv3d",
        "conv_transpose2d",
        "max_pool2d_ceil",
        "adaptive_avg_pool2d",
        "batch_norm",
        "layer_norm",
        "group_norm",
        "instance_norm",
        "rms_norm",
        "gelu_tanh",
        "mish",
        "softplus_beta_threshold",
        "hardswish",
        "log_softmax",
        "interp_bicubic_antialias",
        "interp_bilinear_align",
        "gather",
        "scatter",
        "take",
        "masked_fill",
        "where",
        "cat",
        "pad_reflect",
        "roll",
        "tril",
        "embedding",
        "dropout_eval",
    ):
        assert required in names, required


@pytest.mark.parametrize("case", OPS, ids=lambda c: c.name)
def test_strategy_draws_inputs_the_op_accepts(case) -> None:
    module = build_module(case, 0)

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case.extra["strategy"](0))  # every shape of the pools
    def accepts(args: tuple) -> None:
        assert all(isinstance(a, torch.Tensor) for a in args)
        with torch.inference_mode():
            for dtype in (torch.float64, torch.float32):
                module(*cast_inputs(args, dtype, torch.device("cpu")))

    accepts()


@pytest.mark.parametrize("case", OPS[::9], ids=lambda c: c.name)
def test_op_modules_trace_and_script(case) -> None:
    module = build_module(case, 0)
    inputs = cast_inputs(_samples(case), torch.float32, torch.device("cpu"))
    torch.jit.trace(module, inputs, check_trace=False)
    torch.jit.script(module)


def _samples(case):
    from torchparity.cases.reference import build_inputs

    return build_inputs(case, 0)


def test_special_values_and_dtypes_are_drawn() -> None:
    seen_dtypes: set[torch.dtype] = set()
    seen: set[str] = set()

    @settings(max_examples=150, derandomize=True, deadline=None, database=None)
    @given(strategies.elementwise(1, strategies.ALL)(0))
    def collect(args: tuple) -> None:
        (x,) = args
        seen_dtypes.add(x.dtype)
        if x.is_floating_point():
            for v in x.reshape(-1).tolist():
                if math.isnan(v):
                    seen.add("nan")
                elif math.isinf(v):
                    seen.add("+inf" if v > 0 else "-inf")
                elif v == 0:
                    seen.add("-0" if math.copysign(1, v) < 0 else "+0")
                elif abs(v) % 1 == 0.5:
                    seen.add("tie")
                elif abs(v) < 1.2e-38:
                    seen.add("subnormal")
        elif x.dtype != torch.bool and x.numel():
            if int(x.min()) == torch.iinfo(x.dtype).min or int(x.max()) == torch.iinfo(x.dtype).max:
                seen.add(f"extreme {x.dtype}")
            if int(x.min()) < 0:
                seen.add("negative int")
        if x.numel() == 0:
            seen.add("zero-size")
        if x.dim() == 0:
            seen.add("0-d")

    collect()
    assert seen_dtypes == {strategies.DTYPES[d] for d in strategies.ALL}
    for want in (
        "nan",
        "+inf",
        "-inf",
        "+0",
        "-0",
        "tie",
        "subnormal",
        "negative int",
        "zero-size",
        "0-d",
    ):
        assert want in seen, (want, seen)
    assert any(s.startswith("extreme") for s in seen)


def test_ci_pool_limit_bounds_signatures() -> None:
    signatures = set()

    @settings(max_examples=60, derandomize=True, deadline=None, database=None)
    @given(strategies.elementwise(2, ("float",))(2))
    def collect(args: tuple) -> None:
        signatures.add(tuple(tuple(a.shape) for a in args))

    collect()
    assert signatures <= set(strategies.BINARY_SHAPES[:2])
