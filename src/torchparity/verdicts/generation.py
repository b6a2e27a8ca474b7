"""The generation verdict (docs/generation.md): does a path generate the fp64
reference's tokens, and where it does not, is that a near-tie its precision
cannot resolve or a real fault?

Pure: tensors in, numbers and words out. The inputs, all [steps, batch, vocab]
logits where step ``i`` chooses generated token ``i`` (step 0 is prefill's
last position):

- the reference's greedy run (fp64 eager with its own cache): its tokens and logits;
- the path's free-running greedy tokens;
- the path's teacher-forced logits (fed the reference's tokens);
- optionally the prefill-versus-incremental check: the logits at the same
  positions from one full prefill of the prompt and the reference's tokens,
  for the fp64 model (``model_full``) and for the path itself (``path_full``).

The rules, in order: the model's own incremental logits differ from its full
prefill (in fp64): ``error``, the case's; the path's incremental logits differ
from its own full prefill beyond the bound: ``fail``, the path's; a prompt
diverges at a step where the reference's top-1/top-2 margin is beyond the
path's own (teacher-forced) logit error there: ``fail``; a divergence within
it, at an error within the bound, is a near-tie (``tie_flips``) and the
free-running comparison stops counting; every step's teacher-forced logits
within the bound, else ``fail`` naming the worst step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from torchparity._core.status import Status

# The fp64 model's incremental logits against its own full prefill: reassociation
# (attention over other lengths) moves bits, a cache fault moves logits by O(1).
MODEL_INCREMENTAL_BOUND = 1e-9
# A flip is a near-tie when the margin is within what the step's error can move
# it: each of the two logits by up to the error, so twice the error.
TIE_REACH = 2.0


@dataclass
class GenerationVerdict:
    """The row's verdict, its generation columns and the per-prompt detail."""

    status: str = Status.PASS
    reason: str = ""
    error_stage: str = ""  # set for an error (the case's: "reference")
    columns: dict[str, Any] = field(default_factory=dict)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    drift: list[float] = field(default_factory=list)  # teacher-forced rel. L2 per step


def margins(logits: torch.Tensor) -> torch.Tensor:
    """The top-1 minus top-2 logit of each [..., vocab] row."""
    top = logits.double().topk(2, dim=-1).values
    return top[..., 0] - top[..., 1]


def step_rel_l2(actual: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """Relative L2 error of each step's logits ([steps, batch, vocab] -> [steps])."""
    diff = (actual.double() - expected.double()).flatten(1).norm(dim=1)
    scale = expected.double().flatten(1).norm(dim=1).clamp_min(torch.finfo(torch.float64).tiny)
    return torch.where(torch.isfinite(diff), diff / scale, torch.full_like(diff, float("inf")))


def margin_summary(ref_logits: torch.Tensor) -> dict[str, float]:
    """The distribution of the reference's top-1/top-2 margins over every step
    and prompt: how decisive greedy decoding is on this model."""
    m = margins(ref_logits).flatten()
    m = m[torch.isfinite(m)]
    if m.numel() == 0:
        return {}
    q = torch.quantile(m, torch.tensor([0.0, 0.1, 0.5], dtype=torch.float64))
    return {"margin_min": float(q[0]), "margin_p10": float(q[1]), "margin_p50": float(q[2])}


def first_divergence(ref_tokens: torch.Tensor, tokens: torch.Tensor) -> list[int | None]:
    """Per prompt, the first step whose token differs from the reference's (None: none)."""
    out: list[int | None] = []
    for row in (tokens != ref_tokens).tolist():
        out.append(row.index(True) if True in row else None)
    return out


def incremental_error(incremental: torch.Tensor, full: torch.Tensor) -> float:
    """The worst step's relative L2 error of incremental logits against one full prefill's."""
    return float(step_rel_l2(incremental, full).max())


def culprit(
    forced: torch.Tensor, path_full: torch.Tensor, ref_logits: torch.Tensor, bound: float
) -> str:
    """Where the path leaves the reference, at the first step beyond the bound:
    its cache (its own full prefill of the same tokens is right, its incremental
    logits are not) or its forward (its full prefill is wrong too)."""
    incremental = step_rel_l2(forced, path_full)
    full = step_rel_l2(path_full, ref_logits)
    for step in range(forced.shape[0]):
        if not float(full[step]) <= bound:
            return f"forward (step {step}: the path's full prefill differs from the reference)"
        if not float(incremental[step]) <= bound:
            return (
                f"kv-cache (decode step {step}: the path's incremental logits differ from its "
                "own full prefill, which matches the reference)"
            )
    return ""


def _prompt_detail(
    b: int, step: int | None, ref_tokens: torch.Tensor, tokens: torch.Tensor
) -> dict[str, Any]:
    return {
        "prompt": b,
        "tokens_agree": float((tokens[b] == ref_tokens[b]).double().mean()),
        "first_divergent_step": step,
        "reference_tokens": ref_tokens[b].tolist(),
        "path_tokens": tokens[b].tolist(),
    }


def judge(
    ref_tokens: torch.Tensor,
    ref_logits: torch.Tensor,
    tokens: torch.Tensor,
    forced: torch.Tensor,
    bound: float,
    model_full: torch.Tensor | None = None,
    path_full: torch.Tensor | None = None,
) -> GenerationVerdict:
    """The verdict of one path's generation against the reference (see the module doc).
    ``ref_tokens``/``tokens`` [batch, steps]; logits [steps, batch, vocab]."""
    v = GenerationVerdict()
    drift = step_rel_l2(forced, ref_logits)
    v.drift = [float(x) for x in drift]
    abs_err = (forced.double() - ref_logits.double()).abs().amax(dim=-1)  # [steps, batch]
    ref_margin = margins(ref_logits)
    steps = first_divergence(ref_tokens, tokens)
    diverged = [s for s in steps if s is not None]
    v.columns.update(
        tokens_agree=float((tokens == ref_tokens).double().mean()),
        first_divergent_step=min(diverged) if diverged else None,
        tf_bound=bound,
        **margin_summary(ref_logits),
    )
    worst = int(drift.argmax())
    v.columns.update(tf_worst_step=worst, tf_worst_rel_l2=float(drift[worst]))
    v.prompts = [_prompt_detail(b, s, ref_tokens, tokens) for b, s in enumerate(steps)]
    if model_full is not None:
        own = incremental_error(ref_logits, model_full)
        v.columns["model_incremental_rel_l2"] = own
        if not own <= MODEL_INCREMENTAL_BOUND:
            v.status, v.error_stage = Status.ERROR, "reference"
            v.reason = (
                "the model's own cache path differs from its full path: in fp64 eager, the "
                "logits from decoding one token at a time differ from one full prefill's "
                f"(rel. L2 {own:.3g} > {MODEL_INCREMENTAL_BOUND:g}); the case's incremental "
                "forward is wrong (positions, mask or cache), so no path can be judged on it"
            )
            return v
    if path_full is not None:
        own = incremental_error(forced, path_full)
        v.columns["incremental_rel_l2"] = own
        if not own <= bound:
            v.status = Status.FAIL
            v.reason = (
                "prefill vs incremental: the path's logits decoding one token at a time differ "
                f"from its own full prefill's (rel. L2 {own:.3g} > bound {bound:.3g})"
            )
            v.columns["culprit"] = culprit(forced, path_full, ref_logits, bound)
            return v
    flips = _judge_divergences(v, steps, ref_tokens, tokens, ref_margin, abs_err, drift, bound)
    v.columns["tie_flips"] = flips
    if v.status == Status.PASS and not float(drift[worst]) <= bound:
        v.status = Status.FAIL
        v.reason = (
            f"teacher-forced logits at step {worst}: rel. L2 {float(drift[worst]):.3g} "
            f"> bound {bound:.3g}"
        )
    if v.status == Status.FAIL and path_full is not None:
        v.columns["culprit"] = culprit(forced, path_full, ref_logits, bound)
    elif v.status == Status.PASS and flips:
        v.reason = (
            f"{flips} near-tie flip(s) ({v.columns['tie_detail']}); teacher-forced within bound"
        )
    return v


def _judge_divergences(
    v: GenerationVerdict,
    steps: list[int | None],
    ref_tokens: torch.Tensor,
    tokens: torch.Tensor,
    ref_margin: torch.Tensor,
    abs_err: torch.Tensor,
    drift: torch.Tensor,
    bound: float,
) -> int:
    """The tie rule at each prompt's first divergent step; the near-ties'
    count, a ``fail`` on ``v`` for the first divergence that is not one."""
    flips, ties = 0, []
    for b, step in enumerate(steps):
        if step is None:
            continue
        margin, err = float(ref_margin[step, b]), float(abs_err[step, b])
        detail = v.prompts[b]
        detail.update(margin=margin, logit_error=err, step_rel_l2=float(drift[step]))
        tie = margin <= TIE_REACH * err and float(drift[step]) <= bound
        detail["near_tie"] = tie
        said = (
            f"prompt {b} step {step}: reference token {int(ref_tokens[b, step])}, path token "
            f"{int(tokens[b, step])}; margin {margin:.3g}, the path's logit error there {err:.3g}"
        )
        if tie:
            flips += 1
            ties.append(said)
        elif v.status == Status.PASS:
            v.status = Status.FAIL
            v.reason = (
                f"generation diverges at {said}: beyond a near-tie "
                f"(margin > {TIE_REACH:g} x error, or step rel. L2 {float(drift[step]):.3g} "
                f"> bound {bound:.3g})"
            )
    if ties:
        v.columns["tie_detail"] = "; ".join(ties)
        v.columns["tie_margin"] = min(
            float(ref_margin[s, b])
            for b, s in enumerate(steps)
            if s is not None and v.prompts[b].get("near_tie")
        )
    return flips
