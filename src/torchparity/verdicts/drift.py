"""Drift: how far a cell's outputs are from the fp64 reference, and the verdict.

Two policies (see docs/drift.md):
- ``elementwise`` (ops): every element within ``atol + rtol * |ref|``, the
  torch.testing.assert_close rule, and NaN/inf positions identical.
- ``model`` (whole models): each leaf's relative L2 error within the dtype's
  bound in ``MODEL_REL_L2`` and NaN/inf positions identical.
Integer and bool outputs are always compared exactly.

``tolerance_used`` is the verdict's own metric as a share of its bound (the
cell passes at <= 1): what ranks "largest drift". ``max_rel_err`` and
``max_ulp`` are measured at the output's scale (the leaf's largest reference
magnitude), so an element that should be ~0 does not dominate them; the
pointwise forms are kept as ``max_pointwise_rel_err`` / ``max_pointwise_ulp``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from torchparity.axes.precision import MODEL_REL_L2, Tolerance


def ulp(reference: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Spacing of ``dtype`` at each value of ``reference`` (float64), subnormals included."""
    finfo = torch.finfo(dtype)
    mantissa_bits = round(-math.log2(finfo.eps))  # fp16: 10, bf16: 7, fp32: 23, fp64: 52
    min_exponent = round(math.log2(finfo.tiny))  # fp16: -14, bf16/fp32: -126, fp64: -1022
    _, exp = torch.frexp(reference.abs())
    exp = torch.where(reference == 0, torch.full_like(exp, min_exponent), exp - 1)
    exp = exp.clamp(min=min_exponent)
    one = torch.ones_like(reference, dtype=torch.float64)
    return torch.ldexp(one, (exp - mantissa_bits).to(torch.float64))


@dataclass
class LeafDrift:
    """Drift of one output leaf against the reference."""

    name: str
    numel: int
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0  # max |y - ref| / max |ref|: relative to the leaf's scale
    max_ulp: float = 0.0  # max |y - ref| / ulp(max |ref|): ULPs at the leaf's scale
    max_pointwise_rel_err: float = (
        0.0  # max |y - ref| / |ref| over non-zero ref (near-zero dominated)
    )
    max_pointwise_ulp: float = 0.0  # max |y - ref| / ulp(ref) (near-zero dominated)
    tolerance_used: float = 0.0  # the verdict's metric / its bound; <= 1 passes
    cosine: float = 1.0
    rel_l2: float = 0.0
    mismatches: int = 0
    nonfinite_mismatches: int = 0
    passed: bool = True
    reason: str = ""


def model_limit(tolerance: Tolerance, dtype: torch.dtype) -> float:
    """The model policy's bound on a leaf's relative L2 error."""
    return (
        tolerance.rel_l2
        if tolerance.rel_l2 is not None
        else MODEL_REL_L2.get(dtype, tolerance.rtol)
    )


def _finite_max(t: torch.Tensor) -> float:
    return float(t.max()) if t.numel() else 0.0


def compare_leaf(
    name: str,
    actual: torch.Tensor,
    expected: torch.Tensor,
    dtype: torch.dtype,
    tolerance: Tolerance,
    policy: str,
) -> LeafDrift:
    """Compare one leaf. ``dtype`` is the cell's compute dtype (ULPs are counted in it)."""
    actual = actual.detach().cpu()
    expected = expected.detach().cpu()
    drift = LeafDrift(name=name, numel=expected.numel())
    if tuple(actual.shape) != tuple(expected.shape):
        drift.passed = False
        drift.mismatches = drift.numel
        drift.tolerance_used = math.inf
        drift.reason = f"{name}: shape {tuple(actual.shape)} != reference {tuple(expected.shape)}"
        return drift
    if actual.is_complex() or expected.is_complex():
        actual, expected = torch.view_as_real(actual), torch.view_as_real(expected)
    if not expected.is_floating_point():
        _integer_verdict(drift, actual, expected)
    else:
        _float_metrics(drift, actual.double(), expected.double(), dtype, tolerance)
        _float_verdict(drift, dtype, tolerance, policy)
    return drift


def _integer_verdict(drift: LeafDrift, actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Integer and bool outputs (argmax, masks, ids) must match exactly."""
    unequal = actual.to(expected.dtype) != expected
    drift.mismatches = int(unequal.sum())
    drift.max_abs_err = _finite_max((actual.double() - expected.double()).abs())
    drift.passed = drift.mismatches == 0
    drift.tolerance_used = 0.0 if drift.passed else math.inf
    if not drift.passed:
        drift.reason = f"{drift.name}: {drift.mismatches}/{drift.numel} integer elements differ"


def _float_metrics(
    drift: LeafDrift, a: torch.Tensor, e: torch.Tensor, dtype: torch.dtype, tolerance: Tolerance
) -> None:
    """Every drift metric of a float leaf (float64 ``a`` against ``e``), one
    pass; ``tolerance_used`` is the elementwise one (``_float_verdict`` may replace it)."""
    nan_mismatch = torch.isnan(a) != torch.isnan(e)
    inf_mismatch = (torch.isinf(a) | torch.isinf(e)) & ~(torch.isnan(a) | torch.isnan(e)) & (a != e)
    drift.nonfinite_mismatches = int((nan_mismatch | inf_mismatch).sum())
    finite = torch.isfinite(a) & torch.isfinite(e)
    af, ef = a[finite], e[finite]
    diff = (af - ef).abs()
    drift.max_abs_err = _finite_max(diff)
    nonzero = ef != 0
    drift.max_pointwise_rel_err = _finite_max(diff[nonzero] / ef[nonzero].abs())
    drift.max_pointwise_ulp = _finite_max(diff / ulp(ef, dtype))
    scale = _finite_max(ef.abs())
    drift.max_rel_err = (
        drift.max_abs_err / scale if scale > 0 else (0.0 if drift.max_abs_err == 0 else math.inf)
    )
    drift.max_ulp = drift.max_abs_err / float(
        ulp(torch.tensor([scale], dtype=torch.float64), dtype)[0]
    )
    bound = tolerance.atol + tolerance.rtol * ef.abs()
    drift.mismatches = int((diff > bound).sum()) + drift.nonfinite_mismatches
    drift.tolerance_used = (
        _finite_max(diff / bound)
        if bool((bound > 0).all())
        else (0.0 if drift.max_abs_err == 0 else math.inf)
    )
    norm_a, norm_e = float(af.norm()), float(ef.norm())
    diff_norm = float(diff.norm())
    if norm_a == 0.0 and norm_e == 0.0:
        drift.cosine = 1.0
    elif norm_a == 0.0 or norm_e == 0.0:
        drift.cosine = 0.0
    else:
        drift.cosine = float((af @ ef) / (norm_a * norm_e))
    drift.rel_l2 = diff_norm / norm_e if norm_e > 0 else (0.0 if diff_norm == 0 else math.inf)


def _float_verdict(drift: LeafDrift, dtype: torch.dtype, tolerance: Tolerance, policy: str) -> None:
    """Pass or fail a float leaf whose metrics are filled: NaN/inf where the
    reference differs always fails; models by relative L2, ops elementwise."""
    name = drift.name
    if drift.nonfinite_mismatches:
        drift.tolerance_used = math.inf
        drift.passed = False
        drift.reason = f"{name}: NaN/inf at {drift.nonfinite_mismatches} position(s) where the reference differs"
    elif policy == "model":
        limit = model_limit(tolerance, dtype)
        drift.tolerance_used = (
            drift.rel_l2 / limit if limit > 0 else (0.0 if drift.rel_l2 == 0 else math.inf)
        )
        drift.passed = drift.rel_l2 <= limit
        if not drift.passed:
            drift.reason = f"{name}: relative L2 error {drift.rel_l2:.3g} > {limit:.3g}"
    else:
        drift.passed = drift.mismatches == 0
        if not drift.passed:
            drift.reason = (
                f"{name}: {drift.mismatches}/{drift.numel} elements outside "
                f"atol={tolerance.atol:g} rtol={tolerance.rtol:g} (max_abs_err {drift.max_abs_err:.3g})"
            )


@dataclass
class Drift:
    """Drift of all output leaves of a cell; the row's drift columns derive from it."""

    leaves: list[LeafDrift]
    tolerance: Tolerance
    policy: str

    @property
    def passed(self) -> bool:
        return all(leaf.passed for leaf in self.leaves)

    @property
    def reason(self) -> str:
        failing = [leaf.reason for leaf in self.leaves if not leaf.passed]
        if not failing:
            return ""
        more = f" (+{len(failing) - 1} more leaves)" if len(failing) > 1 else ""
        return failing[0] + more

    def columns(self) -> dict[str, float | str]:
        total = sum(leaf.numel for leaf in self.leaves)
        return {
            "max_abs_err": max((lf.max_abs_err for lf in self.leaves), default=0.0),
            "max_rel_err": max((lf.max_rel_err for lf in self.leaves), default=0.0),
            "max_ulp": max((lf.max_ulp for lf in self.leaves), default=0.0),
            "max_pointwise_rel_err": max(
                (lf.max_pointwise_rel_err for lf in self.leaves), default=0.0
            ),
            "max_pointwise_ulp": max((lf.max_pointwise_ulp for lf in self.leaves), default=0.0),
            "tolerance_used": max((lf.tolerance_used for lf in self.leaves), default=0.0),
            "cosine": min((lf.cosine for lf in self.leaves), default=1.0),
            "rel_l2": max((lf.rel_l2 for lf in self.leaves), default=0.0),
            "mismatch_frac": (sum(lf.mismatches for lf in self.leaves) / total) if total else 0.0,
            "nonfinite_mismatches": sum(lf.nonfinite_mismatches for lf in self.leaves),
            "atol": self.tolerance.atol,
            "rtol": self.tolerance.rtol,
            "drift_policy": self.policy,
        }

    def leaf_records(self) -> list[dict]:
        return [asdict(leaf) for leaf in self.leaves]


def compare(
    names: list[str],
    actual: list[torch.Tensor],
    expected: list[torch.Tensor],
    dtype: torch.dtype,
    tolerance: Tolerance,
    policy: str = "elementwise",
) -> Drift:
    """Compare output leaves to reference leaves (same order and names)."""
    if len(actual) != len(expected):
        leaf = LeafDrift(name="<outputs>", numel=0, passed=False, tolerance_used=math.inf)
        leaf.reason = f"{len(actual)} output leaves, reference has {len(expected)}"
        return Drift([leaf], tolerance, policy)
    leaves = [
        compare_leaf(n, a, e, dtype, tolerance, policy)
        for n, a, e in zip(names, actual, expected, strict=True)
    ]
    return Drift(leaves, tolerance, policy)


def max_abs_diff(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> float:
    """Largest elementwise difference between two output lists of the same
    dtype (e.g. a backend against eager); inf when shapes or NaN positions differ."""
    worst = 0.0
    if len(actual) != len(expected):
        return math.inf
    for a, e in zip(actual, expected, strict=True):
        a, e = a.detach().cpu(), e.detach().cpu()
        if a.shape != e.shape:
            return math.inf
        a, e = a.double(), e.double()
        if bool((torch.isnan(a) != torch.isnan(e)).any()):
            return math.inf
        finite = torch.isfinite(a) & torch.isfinite(e)
        if bool(((a != e) & ~finite & ~torch.isnan(a)).any()):
            return math.inf
        worst = max(worst, _finite_max((a[finite] - e[finite]).abs()))
    return worst
