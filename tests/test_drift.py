import math

import pytest
import torch

from torchparity.axes.precision import MODEL_REL_L2, Tolerance, default_tolerance
from torchparity.verdicts.drift import compare, compare_leaf, max_abs_diff, ulp

TOL32 = default_tolerance(torch.float32)


def test_default_tolerances_match_assert_close():
    assert default_tolerance(torch.float16) == Tolerance(1e-5, 1e-3)
    assert default_tolerance(torch.bfloat16) == Tolerance(1e-5, 1.6e-2)
    assert default_tolerance(torch.float32) == Tolerance(1e-5, 1.3e-6)
    assert default_tolerance(torch.float64) == Tolerance(1e-7, 1e-7)
    assert default_tolerance(torch.int64) == Tolerance(0.0, 0.0)


@pytest.mark.parametrize(
    "dtype, value, spacing",
    [
        (torch.float16, 1.0, 2.0**-10),
        (torch.float16, 1024.0, 1.0),
        (torch.float16, 0.0, 2.0**-24),  # fp16 smallest subnormal
        (torch.float16, 3e-6, 2.0**-24),  # subnormal range: constant spacing
        (torch.bfloat16, 1.0, 2.0**-7),
        (torch.bfloat16, 2.5, 2.0**-6),
        (torch.float32, 1.0, 2.0**-23),
        (torch.float64, 1.0, 2.0**-52),
        (torch.float64, -0.75, 2.0**-53),
    ],
)
def test_ulp_spacing(dtype, value, spacing):
    assert ulp(torch.tensor([value], dtype=torch.float64), dtype).item() == spacing


def test_max_ulp_counts_in_the_cell_dtype():
    ref = torch.tensor([1.0, 2.0], dtype=torch.float64)
    half = compare_leaf(
        "x", torch.tensor([1.0 + 2**-10, 2.0]), ref, torch.float16, Tolerance(0, 0), "elementwise"
    )
    assert half.max_pointwise_ulp == 1.0  # one ULP at 1.0 ...
    assert half.max_ulp == 0.5  # ... is half an ULP at the output's scale (2.0)
    bf = compare_leaf(
        "x",
        torch.tensor([1.0, 2.0 + 3 * 2**-6]),
        ref,
        torch.bfloat16,
        Tolerance(0, 0),
        "elementwise",
    )
    assert bf.max_ulp == 3.0
    assert bf.max_abs_err == 3 * 2**-6
    assert bf.max_rel_err == pytest.approx(3 * 2**-7)


def test_nan_where_reference_is_finite_fails_and_matching_nans_pass():
    ref = torch.tensor([1.0, math.nan, 3.0], dtype=torch.float64)
    same = compare_leaf(
        "x", torch.tensor([1.0, math.nan, 3.0]), ref, torch.float32, TOL32, "elementwise"
    )
    assert same.passed and same.nonfinite_mismatches == 0
    extra_nan = compare_leaf(
        "x", torch.tensor([math.nan, math.nan, 3.0]), ref, torch.float32, TOL32, "elementwise"
    )
    assert not extra_nan.passed and extra_nan.nonfinite_mismatches == 1
    lost_nan = compare_leaf(
        "x", torch.tensor([1.0, 2.0, 3.0]), ref, torch.float32, TOL32, "elementwise"
    )
    assert not lost_nan.passed and "NaN" in lost_nan.reason
    # the model policy must not forgive NaNs either
    assert not compare_leaf(
        "x", torch.tensor([1.0, 2.0, 3.0]), ref, torch.float32, TOL32, "model"
    ).passed


def test_inf_sign_and_position_matter():
    ref = torch.tensor([math.inf, -math.inf, 1.0], dtype=torch.float64)
    ok = compare_leaf(
        "x", torch.tensor([math.inf, -math.inf, 1.0]), ref, torch.float32, TOL32, "elementwise"
    )
    assert ok.passed
    flipped = compare_leaf(
        "x", torch.tensor([-math.inf, -math.inf, 1.0]), ref, torch.float32, TOL32, "elementwise"
    )
    assert not flipped.passed and flipped.nonfinite_mismatches == 1
    overflow = compare_leaf(
        "x", torch.tensor([math.inf, -math.inf, math.inf]), ref, torch.float32, TOL32, "elementwise"
    )
    assert not overflow.passed


def test_integer_and_bool_outputs_are_exact():
    ref = torch.tensor([1, 2, 3])
    assert compare_leaf(
        "i", torch.tensor([1, 2, 3]), ref, torch.float16, Tolerance(1, 1), "elementwise"
    ).passed
    off = compare_leaf("i", torch.tensor([1, 2, 4]), ref, torch.float16, Tolerance(1, 1), "model")
    assert not off.passed and off.mismatches == 1 and off.max_abs_err == 1.0
    assert not compare_leaf(
        "b",
        torch.tensor([True, False]),
        torch.tensor([True, True]),
        torch.float32,
        TOL32,
        "elementwise",
    ).passed


def test_elementwise_mismatch_fraction_and_cosine():
    ref = torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    d = compare_leaf(
        "x", torch.tensor([1.0, 1.0, 1.1, 1.0]), ref, torch.float32, TOL32, "elementwise"
    )
    assert not d.passed and d.mismatches == 1
    assert d.cosine == pytest.approx(4.1 / (2 * math.sqrt(3 + 1.21)))
    drift = compare(["x"], [torch.tensor([1.0, 1.0, 1.1, 1.0])], [ref], torch.float32, TOL32)
    assert drift.columns()["mismatch_frac"] == 0.25


def test_model_policy_uses_relative_l2_with_teeth():
    ref = torch.linspace(-1, 1, 1000, dtype=torch.float64)
    bound = MODEL_REL_L2[torch.float16]
    honest = ref.to(torch.float16)  # rounding only: ~0.6 u
    assert compare_leaf(
        "y", honest, ref, torch.float16, default_tolerance(torch.float16), "model"
    ).passed
    # the same output with every element 2% off is a real fault
    broken = (ref * 1.02).to(torch.float16)
    leaf = compare_leaf("y", broken, ref, torch.float16, default_tolerance(torch.float16), "model")
    assert not leaf.passed and leaf.rel_l2 > bound and "relative L2" in leaf.reason
    # a case may override the bound
    lenient = Tolerance(1e-5, 1e-3, rel_l2=0.05)
    assert compare_leaf("y", broken, ref, torch.float16, lenient, "model").passed


def test_shape_and_leaf_count_mismatch_fail():
    ref = torch.zeros(3, dtype=torch.float64)
    assert not compare_leaf("x", torch.zeros(4), ref, torch.float32, TOL32, "elementwise").passed
    assert not compare(["x"], [], [ref], torch.float32, TOL32).passed


def test_max_abs_diff_against_eager():
    a = [torch.tensor([1.0, 2.0]), torch.tensor([3.0])]
    assert max_abs_diff(a, [torch.tensor([1.0, 2.5]), torch.tensor([3.0])]) == 0.5
    assert max_abs_diff([torch.tensor([math.nan])], [torch.tensor([0.0])]) == math.inf
    assert max_abs_diff([torch.tensor([math.nan])], [torch.tensor([math.nan])]) == 0.0


def test_near_zero_reference_elements_do_not_dominate_the_scale_metrics():
    # a bf16 output whose reference has a tiny element: pointwise figures explode,
    # the scale-aware ones (and the verdict) see an ordinary rounding error
    ref = torch.tensor([1e-30, 1.0, -2.0], dtype=torch.float64)
    out = torch.tensor([3e-3, 1.0, -2.0])
    leaf = compare_leaf("x", out, ref, torch.bfloat16, Tolerance(1e-5, 1.6e-2), "model")
    assert leaf.max_pointwise_rel_err > 1e20 and leaf.max_pointwise_ulp > 1e20
    assert leaf.max_rel_err == pytest.approx(3e-3 / 2.0)
    assert leaf.max_ulp == pytest.approx(3e-3 / 2**-6)  # bf16 spacing at 2.0 is 2^-6
    assert leaf.passed and 0 < leaf.tolerance_used < 1


def test_tolerance_used_is_the_verdicts_metric_over_its_bound():
    ref = torch.tensor([1.0, 2.0], dtype=torch.float64)
    tol = Tolerance(atol=1e-3, rtol=0.0)
    half_way = compare_leaf(
        "x", torch.tensor([1.0005, 2.0]), ref, torch.float32, tol, "elementwise"
    )
    assert half_way.passed and half_way.tolerance_used == pytest.approx(0.5, rel=1e-3)
    over = compare_leaf("x", torch.tensor([1.002, 2.0]), ref, torch.float32, tol, "elementwise")
    assert not over.passed and over.tolerance_used == pytest.approx(2.0, rel=1e-3)
    model = compare_leaf("x", torch.tensor([1.0, 2.0 + 1e-6]), ref, torch.float32, TOL32, "model")
    assert model.tolerance_used == pytest.approx(model.rel_l2 / MODEL_REL_L2[torch.float32])
    nan = compare_leaf("x", torch.tensor([math.nan, 2.0]), ref, torch.float32, TOL32, "model")
    assert nan.tolerance_used == math.inf
