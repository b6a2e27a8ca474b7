"""The greedy loop the harness owns, over any path (docs/generation.md).

One loop for every path and for the reference: prefill, then one token per
sequence per decode call, the next token the argmax of the path's logits.
The same loop teacher-forced (fed given tokens) gives each step's logits for
the drift and tie verdicts, and one full prefill of the prompt plus those
tokens gives the logits the incremental ones must match. The reference is
this loop over fp64 eager's cache path (backends/hf_cache_path.py), on CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from torchparity.backends.generation import Prompts, greedy, is_loop_path


@dataclass
class LoopRun:
    """One run of the loop: tokens [batch, steps], logits [steps, batch, vocab]
    (float64, CPU; step i chose token i), and its timings in seconds."""

    tokens: torch.Tensor
    logits: torch.Tensor
    prefill_s: float = 0.0
    decode_s: list[float] = field(default_factory=list)


def _host(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to("cpu", torch.float64)


def run_loop(
    path: Any,
    prompts: Prompts,
    steps: int,
    forced: torch.Tensor | None = None,
    sync: Callable[[], None] = lambda: None,
) -> LoopRun:
    """Prefill then ``steps - 1`` decode calls: greedy, or fed ``forced``
    [batch, steps] (token i fed at decode call i + 1). A loop path runs its own."""
    if is_loop_path(path):
        fed = None if forced is None else forced[:, : steps - 1]
        began = time.perf_counter()
        _, step_logits = path.run_loop(prompts, steps - 1, fed)
        elapsed = time.perf_counter() - began
        logits = _host(step_logits)
        tokens = forced if forced is not None else greedy(logits).T.contiguous()
        # A runtime that times its own calls (the Node loop: performance.now()
        # around each session.run) reports them; else the loop is timed whole.
        times = getattr(path, "last_times", None) or {}
        if "prefill_ms" in times:
            decode_s = [float(t) / 1e3 for t in times.get("decode_ms", [])]
            return LoopRun(tokens.cpu(), logits, float(times["prefill_ms"]) / 1e3, decode_s)
        return LoopRun(tokens.cpu(), logits, prefill_s=elapsed)
    with torch.no_grad():
        began = time.perf_counter()
        prompt_logits, state = path.prefill(prompts)
        sync()
        run = LoopRun(torch.empty(0), torch.empty(0), prefill_s=time.perf_counter() - began)
        logits = [_host(prompt_logits[:, -1])]
        chosen = [greedy(prompt_logits[:, -1])]
        for i in range(1, steps):
            feed = chosen[-1] if forced is None else forced[:, i - 1].to(chosen[-1].device)
            began = time.perf_counter()
            step, state = path.decode(feed, state)
            sync()
            run.decode_s.append(time.perf_counter() - began)
            logits.append(_host(step))
            chosen.append(greedy(step))
    run.logits = torch.stack(logits)
    run.tokens = forced.cpu() if forced is not None else torch.stack(chosen, 1).cpu()
    return run


def extended(prompts: Prompts, tokens: torch.Tensor) -> Prompts:
    """The prompts followed by ``tokens`` [batch, n] (mask 1 there)."""
    tokens = tokens.to(prompts.input_ids.device)
    return Prompts(
        torch.cat([prompts.input_ids, tokens], dim=1),
        torch.cat([prompts.attention_mask, torch.ones_like(tokens)], dim=1),
        prompts.encoder,
    )


def full_logits(path: Any, prompts: Prompts, tokens: torch.Tensor) -> torch.Tensor:
    """[steps, batch, vocab]: one prefill of the prompt and ``tokens[:, :-1]``,
    at the positions whose logits choose each of ``tokens`` (the logits the
    incremental steps must match)."""
    steps = tokens.shape[1]
    with torch.no_grad():
        logits, _ = path.prefill(extended(prompts, tokens[:, : steps - 1]))
    return _host(logits[:, -steps:]).transpose(0, 1).contiguous()
