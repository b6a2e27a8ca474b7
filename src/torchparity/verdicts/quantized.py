"""The two verdicts of an int8 cell (docs/drift.md, "int8"):

- **fidelity**: does the deployed artifact compute what the quantized model
  means? The backend's outputs against the quantized reference (the
  pt2e-converted model in eager), in units of the output's quantization step:
  the scale of the dequantize producing the output, or, for an output the
  graph leaves in float, the step an int8 per-tensor quantizer spanning the
  reference output's range would have (``(max - min) / 255``, zero included).
  Passes when the largest error is within ``quant_max_steps`` and the mean
  within ``quant_mean_steps``.
- **agreement**: how far is the quantized model from the fp32 model on the
  task? Cosine and SQNR (dB) for every float leaf; for classifier-shaped
  leaves (2-D, N rows of C >= 2 scores) the share of rows whose fp32 top-1
  class is int8's top-1, and (C > 5) among its top 5. Budget: ``min_cosine``,
  ``min_sqnr_db``, ``min_top1``, ``min_top5``. An integer leaf (an argmax)
  has no cosine or SQNR: its agreement is ``exact``, the share of elements
  equal to fp32's (``min_exact``).

A cell passes when both hold; ``int8_failed`` names the verdicts that did not.
A metric that does not apply to a leaf stays None (an empty column), never a
perfect score. The quantized reference's own agreement is judged too
(``reference_agreement_failed``): when it fails, the int8 recipe loses the
task whatever runtime runs it (blame ``quantization``, verdicts/blame.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from torchparity.cases.tolerance import Tolerance

INT8_LEVELS = 255  # steps across an int8 range


@dataclass
class QuantLeaf:
    """One output leaf's int8 metrics."""

    name: str
    step: float | None = None  # None: an integer leaf, judged by equality
    step_source: str = ""  # graph (the output's dequantize) or range (no output quantizer)
    max_steps: float | None = None
    mean_steps: float | None = None
    cosine: float | None = None  # float leaves only
    sqnr_db: float | None = None
    top1: float | None = None
    top5: float | None = None
    exact: float | None = None  # integer leaves only: the share equal to fp32's
    fidelity_reason: str = ""
    agreement_reason: str = ""


def range_step(reference: torch.Tensor) -> float:
    """The step of an int8 per-tensor affine quantizer over ``reference``'s range (zero included)."""
    finite = reference[torch.isfinite(reference)]
    if finite.numel() == 0:
        return 0.0
    low, high = min(float(finite.min()), 0.0), max(float(finite.max()), 0.0)
    return (high - low) / INT8_LEVELS


def _finite_pair(a: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Float64 copies at positions finite in both, and how many positions differ in NaN/inf."""
    a, e = a.detach().cpu().double(), e.detach().cpu().double()
    finite = torch.isfinite(a) & torch.isfinite(e)
    nonfinite = int((~finite & ~((a == e) | (torch.isnan(a) & torch.isnan(e)))).sum())
    return a[finite], e[finite], nonfinite


def fidelity(
    leaf: QuantLeaf, actual: torch.Tensor, qref: torch.Tensor, step: float | None, tol: Tolerance
) -> None:
    """Fill ``leaf``'s fidelity metrics and reason (actual vs the quantized reference)."""
    unit = step or range_step(qref.double())
    leaf.step, leaf.step_source = unit, ("graph" if step else "range")
    if tuple(actual.shape) != tuple(qref.shape):
        leaf.max_steps = leaf.mean_steps = math.inf
        leaf.fidelity_reason = (
            f"{leaf.name}: shape {tuple(actual.shape)} != quantized reference {tuple(qref.shape)}"
        )
        return
    a, e, nonfinite = _finite_pair(actual, qref)
    diff = (a - e).abs()
    if unit > 0:
        leaf.max_steps = float(diff.max()) / unit if diff.numel() else 0.0
        leaf.mean_steps = float(diff.mean()) / unit if diff.numel() else 0.0
    else:  # a constant reference: any difference is infinitely many steps
        leaf.max_steps = leaf.mean_steps = 0.0 if not bool((diff > 0).any()) else math.inf
    max_ok, mean_ok = tol.quant_max_steps or 0.0, tol.quant_mean_steps or 0.0
    if nonfinite:
        leaf.fidelity_reason = (
            f"{leaf.name}: NaN/inf at {nonfinite} position(s) where the quantized reference differs"
        )
    elif leaf.max_steps > max_ok or leaf.mean_steps > mean_ok:
        leaf.fidelity_reason = (
            f"{leaf.name}: {leaf.max_steps:.3g} steps max, {leaf.mean_steps:.3g} mean from the "
            f"quantized reference (bound {max_ok:g} max, {mean_ok:g} mean; step {leaf.step:.3g}, {leaf.step_source})"
        )


def _topk_agreement(actual: torch.Tensor, fp32: torch.Tensor, k: int) -> float:
    truth = fp32.argmax(dim=1, keepdim=True)
    top = actual.topk(k, dim=1).indices
    return float((top == truth).any(dim=1).double().mean())


def agreement(leaf: QuantLeaf, actual: torch.Tensor, fp32: torch.Tensor, tol: Tolerance) -> None:
    """Fill ``leaf``'s agreement metrics and reason (actual vs fp32 eager)."""
    if tuple(actual.shape) != tuple(fp32.shape):
        leaf.cosine, leaf.sqnr_db = 0.0, -math.inf
        leaf.agreement_reason = (
            f"{leaf.name}: shape {tuple(actual.shape)} != fp32 {tuple(fp32.shape)}"
        )
        return
    a, e, nonfinite = _finite_pair(actual, fp32)
    signal, noise = float((e * e).sum()), float(((a - e) ** 2).sum())
    norms = float(a.norm()) * float(e.norm())
    leaf.cosine = float(a @ e) / norms if norms > 0 else (1.0 if noise == 0 else 0.0)
    leaf.sqnr_db = (
        10 * math.log10(signal / noise)
        if noise > 0 and signal > 0
        else (math.inf if noise == 0 else -math.inf)
    )
    if actual.dim() == 2 and actual.shape[1] >= 2 and actual.is_floating_point():
        leaf.top1 = _topk_agreement(actual.double(), fp32.double(), 1)
        leaf.top5 = (
            _topk_agreement(actual.double(), fp32.double(), 5) if actual.shape[1] > 5 else None
        )
    short = [
        f"{what} {value:.3g} < {bound:g}"
        for what, value, bound in (
            ("cosine", leaf.cosine, tol.min_cosine),
            ("SQNR dB", leaf.sqnr_db, tol.min_sqnr_db),
            ("top-1 agreement", leaf.top1, tol.min_top1),
            ("top-5 agreement", leaf.top5, tol.min_top5),
        )
        if value is not None and bound is not None and value < bound
    ]
    if nonfinite:
        short.insert(0, f"NaN/inf at {nonfinite} position(s) where fp32 differs")
    if short:
        leaf.agreement_reason = f"{leaf.name}: " + ", ".join(short) + " against fp32 eager"


def exact_agreement(
    leaf: QuantLeaf, actual: torch.Tensor, fp32: torch.Tensor, tol: Tolerance
) -> None:
    """Fill an integer leaf's agreement (actual vs fp32 eager): the share of
    elements equal, as an argmax's classes must be; no cosine, no SQNR."""
    if tuple(actual.shape) != tuple(fp32.shape):
        leaf.exact = 0.0
        leaf.agreement_reason = (
            f"{leaf.name}: shape {tuple(actual.shape)} != fp32 {tuple(fp32.shape)}"
        )
        return
    equal = actual.detach().cpu().to(fp32.dtype) == fp32.detach().cpu()
    leaf.exact = float(equal.double().mean()) if equal.numel() else 1.0
    bound = tol.min_exact
    if bound is not None and leaf.exact < bound:
        leaf.agreement_reason = (
            f"{leaf.name}: {leaf.exact:.3g} of integer elements equal fp32 eager's "
            f"(bound {bound:g})"
        )


@dataclass
class QuantVerdict:
    leaves: list[QuantLeaf]
    tolerance: Tolerance
    # The quantized reference itself fails agreement: the recipe loses the
    # task, whichever runtime runs the program (None: not judged).
    reference_agreement_failed: bool | None = None

    @property
    def failed(self) -> list[str]:
        """The verdicts that failed: fidelity, agreement, both or none."""
        out = []
        if any(lf.fidelity_reason for lf in self.leaves):
            out.append("fidelity")
        if any(lf.agreement_reason for lf in self.leaves):
            out.append("agreement")
        return out

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def fidelity_share(self) -> float:
        """The worst leaf's fidelity error as a share of its bounds (<= 1 holds);
        an integer leaf counts 0 when equal to the reference, else inf."""
        t = self.tolerance

        def share(value: float | None, bound: float | None) -> float:
            if value is None:
                return 0.0
            if bound:
                return value / bound
            return 0.0 if value == 0 else math.inf

        def leaf_share(lf: QuantLeaf) -> float:
            if lf.step is None:  # an integer leaf: equal or not
                return math.inf if lf.fidelity_reason else 0.0
            return max(
                share(lf.max_steps, t.quant_max_steps), share(lf.mean_steps, t.quant_mean_steps)
            )

        return max((leaf_share(lf) for lf in self.leaves), default=0.0)

    @property
    def reason(self) -> str:
        parts = []
        for verdict in self.failed:
            attr = f"{verdict}_reason"
            first = next(getattr(lf, attr) for lf in self.leaves if getattr(lf, attr))
            parts.append(f"{verdict} failed: {first}")
        return "; ".join(parts)

    def columns(self) -> dict[str, float | str | bool | None]:
        def worst(attr: str, pick: Callable[[list[float]], float]) -> float | None:
            values = [getattr(lf, attr) for lf in self.leaves if getattr(lf, attr) is not None]
            return pick(values) if values else None

        t = self.tolerance
        return {
            "int8_failed": ",".join(self.failed),
            "fidelity_max_steps": worst("max_steps", max),
            "fidelity_mean_steps": worst("mean_steps", max),
            "fidelity_step": worst("step", min),
            "fidelity_step_source": ",".join(
                sorted({lf.step_source for lf in self.leaves if lf.step_source})
            ),
            "agree_cosine": worst("cosine", min),
            "agree_sqnr_db": worst("sqnr_db", min),
            "agree_top1": worst("top1", min),
            "agree_top5": worst("top5", min),
            "agree_exact": worst("exact", min),
            "quant_reference_agrees": (
                None
                if self.reference_agreement_failed is None
                else not self.reference_agreement_failed
            ),
            "fidelity_bound_max_steps": t.quant_max_steps,
            "fidelity_bound_mean_steps": t.quant_mean_steps,
            "agree_min_cosine": t.min_cosine,
            "agree_min_sqnr_db": t.min_sqnr_db,
            "agree_min_top1": t.min_top1,
            "agree_min_top5": t.min_top5,
            "agree_min_exact": t.min_exact,
        }

    def leaf_records(self) -> list[dict]:
        return [asdict(lf) for lf in self.leaves]


def judge_leaf(
    name: str, actual: torch.Tensor, qref: torch.Tensor, fp32: torch.Tensor,
    step: float | None, tolerance: Tolerance,
) -> QuantLeaf:  # fmt: skip
    """One leaf's fidelity (to ``qref``) and agreement (with ``fp32``); an
    integer leaf must equal the quantized reference's and agree exactly with fp32's."""
    leaf = QuantLeaf(name)
    if not qref.is_floating_point():
        if tuple(actual.shape) != tuple(qref.shape) or not torch.equal(
            actual.cpu().to(qref.dtype), qref.cpu()
        ):
            leaf.fidelity_reason = f"{name}: integer elements differ from the quantized reference"
        exact_agreement(leaf, actual, fp32, tolerance)
    else:
        fidelity(leaf, actual, qref, step, tolerance)
        agreement(leaf, actual, fp32, tolerance)
    return leaf


def judge(
    names: list[str],
    actual: list[torch.Tensor],
    qref: list[torch.Tensor],
    fp32: list[torch.Tensor],
    steps: list[float | None],
    tolerance: Tolerance,
) -> QuantVerdict:
    """Both verdicts over the leaves ``names`` (same order in every list), and
    whether the quantized reference itself agrees with fp32."""
    leaves, own = [], []
    for i, name in enumerate(names):
        step = steps[i] if i < len(steps) else None
        leaves.append(judge_leaf(name, actual[i], qref[i], fp32[i], step, tolerance))
        own.append(judge_leaf(name, qref[i], qref[i], fp32[i], step, tolerance))
    reference_failed = any(lf.agreement_reason for lf in own)
    return QuantVerdict(leaves, tolerance, reference_failed)
