"""Training drift: a train cell's losses, first-step gradients and parameter
updates compared with the fp64 reference training run, and the verdict.

The policy (docs/training.md). Each quantity is judged on a relative error
against a bound in unit roundoffs ``u`` of the cell's compute dtype, made of

- a rounding term: ``k u``, growing linearly with the step for the loss, and
  for the update ``k u N (1 + ||p_N|| / ||p_N - p_0||)``: each step rounds
  the stored weights (relative ``u`` of the weights), which is large against
  a small update;
- a conditioning term: ``C kappa u``, where ``kappa`` is the quantity's
  measured sensitivity, its relative change in the fp64 reference when the
  weights and inputs are perturbed by a relative ``eps`` (divided by
  ``eps``). An ill-conditioned quantity (a gradient that is a sum of large
  cancelling terms) gets a bound as wide as its conditioning, and no wider.

Parameters are judged on their update ``p_N - p_0``, not on ``p_N``: the
initial weights would dilute an error in what training changed (an optimizer
that ignores weight decay changes the update by percents, ``p_N`` by 1e-5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

LOSS_UNIT_ROUNDOFFS = 16  # per step: 16 u (k + 1) at step k (0-based)
GRAD_UNIT_ROUNDOFFS = 64  # the first step's gradients: forward and backward
UPDATE_UNIT_ROUNDOFFS = 16  # per step, on the update, scaled by ||p|| / ||update||
CONDITIONING_FACTOR = 32  # C: rounding happens in every op, not only in weights and inputs
TINY = 1e-30  # below this a norm is zero
# A bound of 1 would pass a cell that did not train at all: bounds are capped,
# and a cell whose dtype cannot resolve its quantity fails, saying so.
MAX_BOUND = 0.5
# A parameter whose gradient holds at least this share of the reference
# gradient's norm must not be off by more than MAX_BOUND on its own: the global
# norm would hide a layer whose gradients are zero under a loose bf16 bound.
TENSOR_SHARE = 0.01


def unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2


def _norm2(tensors: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float(t.detach().double().cpu().pow(2).sum()) for t in tensors))


def rel_l2(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> float:
    """||actual - expected|| / ||expected|| over the concatenated tensors (fp64)."""
    diff = _norm2(
        [
            a.detach().double().cpu() - e.detach().double().cpu()
            for a, e in zip(actual, expected, strict=False)
        ]
    )
    if not math.isfinite(diff):
        return math.inf
    return diff / max(_norm2(expected), TINY)


def worst_tensor(names: list[str], actual: list[torch.Tensor], expected: list[torch.Tensor]) -> str:
    """The tensor contributing most to the error, for the reason."""
    errs = [
        _norm2([a.detach().double().cpu() - e.detach().double().cpu()])
        for a, e in zip(actual, expected, strict=False)
    ]
    errs = [math.inf if not math.isfinite(x) else x for x in errs]
    return names[max(range(len(errs)), key=errs.__getitem__)] if errs else ""


def wrong_tensors(
    names: list[str], actual: list[torch.Tensor], expected: list[torch.Tensor]
) -> list[str]:
    """Parameters (with a TENSOR_SHARE of the reference norm) off by more than MAX_BOUND."""
    total = max(_norm2(expected), TINY)
    return [
        n
        for n, a, e in zip(names, actual, expected, strict=True)
        if _norm2([e]) >= TENSOR_SHARE * total and not rel_l2([a], [e]) <= MAX_BOUND
    ]


def updates(params: list[torch.Tensor], params0: list[torch.Tensor]) -> list[torch.Tensor]:
    return [
        p.detach().double().cpu() - p0.detach().double().cpu()
        for p, p0 in zip(params, params0, strict=False)
    ]


def _loss_errors(actual: list[float], expected: list[float]) -> list[float]:
    return [
        abs(a - e) / max(abs(e), TINY) if math.isfinite(a) else math.inf
        for a, e in zip(actual, expected, strict=False)
    ]


def sensitivities(ref: Any, moved: Any, eps: float) -> dict[str, Any]:
    """kappa per quantity: the relative change of the reference trace ``ref``
    in the perturbed trace ``moved``, per unit relative perturbation ``eps``."""
    return {
        "loss": [e / eps for e in _loss_errors(moved.losses, ref.losses)],
        "grad": rel_l2(moved.grads, ref.grads) / eps,
        "update": rel_l2(updates(moved.params, moved.params0), updates(ref.params, ref.params0))
        / eps,
    }


@dataclass
class TrainDrift:
    """The comparison's metrics, bounds and verdict."""

    loss_rel_err: list[float]
    loss_bounds: list[float]
    grad_rel_err: float
    grad_bound: float
    update_rel_err: float
    update_bound: float
    param_rel_err: float
    worst_grad: str = ""
    worst_update: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def reason(self) -> str:
        return "; ".join(self.problems)

    def columns(self) -> dict[str, object]:
        worst_loss = max(
            range(len(self.loss_rel_err)), key=lambda k: self.loss_rel_err[k] / self.loss_bounds[k]
        )
        return {
            "loss_max_rel_err": max(self.loss_rel_err),
            "loss_bound": self.loss_bounds[worst_loss],
            "grad_rel_err": self.grad_rel_err,
            "grad_bound": self.grad_bound,
            "update_rel_err": self.update_rel_err,
            "update_bound": self.update_bound,
            "param_rel_err": self.param_rel_err,
            "max_rel_err": max([*self.loss_rel_err, self.grad_rel_err, self.update_rel_err]),
            "tolerance_used": max(
                _share(e, b)
                for e, b in zip(
                    [*self.loss_rel_err, self.grad_rel_err, self.update_rel_err],
                    [*self.loss_bounds, self.grad_bound, self.update_bound],
                    strict=False,
                )
            ),
            "worst_grad_tensor": self.worst_grad,
            "worst_update_tensor": self.worst_update,
        }


def _share(err: float, bound: float) -> float:
    """An error as a share of its bound (> 1 fails); NaN is beyond any bound."""
    if math.isnan(err):
        return math.inf
    return err / bound if bound > 0 else (0.0 if err == 0 else math.inf)


def bounds(
    dtype: torch.dtype,
    param_dtype: torch.dtype,
    steps: int,
    kappa: dict[str, Any],
    param_ratio: float,
) -> tuple[list[float], float, float]:
    """(loss bounds per step, gradient bound, update bound) for
    compute ``dtype``; the weights are stored (rounded each step) in ``param_dtype``."""
    u, c = unit_roundoff(dtype), CONDITIONING_FACTOR
    loss = [u * (LOSS_UNIT_ROUNDOFFS * (k + 1) + c * kappa["loss"][k]) for k in range(steps)]
    grad = u * (GRAD_UNIT_ROUNDOFFS + c * kappa["grad"])
    storage = unit_roundoff(param_dtype) * UPDATE_UNIT_ROUNDOFFS * steps * (1 + param_ratio)
    update = storage + u * (UPDATE_UNIT_ROUNDOFFS * steps + c * kappa["update"])
    return loss, grad, update


def compare_training(
    losses: list[float],
    ref_losses: list[float],
    names: list[str],
    grads: list[torch.Tensor],
    ref_grads: list[torch.Tensor],
    params0: list[torch.Tensor],
    params: list[torch.Tensor],
    ref_params0: list[torch.Tensor],
    ref_params: list[torch.Tensor],
    dtype: torch.dtype,
    kappa: dict[str, Any],
    param_dtype: torch.dtype | None = None,
) -> TrainDrift:
    """Losses per step, first-step gradients and the update p_N - p_0 against the reference."""
    steps = len(ref_losses)
    upd, ref_upd = updates(params, params0), updates(ref_params, ref_params0)
    ratio = _norm2(ref_params) / max(_norm2(ref_upd), TINY)
    loss_bounds, grad_bound, update_bound = bounds(dtype, param_dtype or dtype, steps, kappa, ratio)
    unresolved = [
        what
        for what, b in (
            ("loss", max(loss_bounds)),
            ("gradients", grad_bound),
            ("update", update_bound),
        )
        if b > MAX_BOUND
    ]
    loss_bounds = [min(b, MAX_BOUND) for b in loss_bounds]
    grad_bound, update_bound = min(grad_bound, MAX_BOUND), min(update_bound, MAX_BOUND)
    drift = TrainDrift(
        loss_rel_err=_loss_errors(losses, ref_losses),
        loss_bounds=loss_bounds,
        grad_rel_err=rel_l2(grads, ref_grads),
        grad_bound=grad_bound,
        update_rel_err=rel_l2(upd, ref_upd),
        update_bound=update_bound,
        param_rel_err=rel_l2(params, ref_params),
        worst_grad=worst_tensor(names, grads, ref_grads),
        worst_update=worst_tensor(names, upd, ref_upd),
    )
    if len(losses) != steps:
        drift.problems.append(f"{len(losses)} losses for {steps} steps")
    for k, (err, bound) in enumerate(zip(drift.loss_rel_err, loss_bounds, strict=False)):
        if not err <= bound:
            drift.problems.append(
                f"loss at step {k + 1} off by {err:.3g} relative (bound {bound:.3g})"
            )
            break
    if not drift.grad_rel_err <= grad_bound:
        drift.problems.append(
            f"first-step gradients off by {drift.grad_rel_err:.3g} relative L2 "
            f"(bound {grad_bound:.3g}; most in {drift.worst_grad})"
        )
    wrong = wrong_tensors(names, grads, ref_grads)
    if wrong:
        drift.problems.append(
            f"first-step gradients of {', '.join(wrong[:4])}{' ...' if len(wrong) > 4 else ''} "
            f"are off by more than {MAX_BOUND:g} relative (zero or wrong)"
        )
    if not drift.update_rel_err <= update_bound:
        drift.problems.append(
            f"parameter update after {steps} steps off by {drift.update_rel_err:.3g} "
            f"relative L2 (bound {update_bound:.3g}; most in {drift.worst_update})"
        )
    if drift.problems and unresolved:
        drift.problems.append(
            f"{dtype} rounding (stored in {param_dtype or dtype}) cannot resolve the "
            f"{', '.join(unresolved)} of this case at all (||update||/||weights|| = {1 / max(ratio, TINY):.2g}); "
            "train with fp32 weights (amp-*) instead"
        )
    return drift
