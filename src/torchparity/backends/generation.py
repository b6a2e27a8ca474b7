"""The generation contract between the harness and a path (docs/generation.md).

The harness (cell/generate.py) owns the greedy loop; a path owns its cache.
A backend that generates (``Backend.generates``) turns the case's generating
module into a :class:`GenerationPath` (prefill, then one token per sequence
per decode call, its cache in an opaque ``state``) or, when its runtime runs
the loop itself (the JavaScript runner), a :class:`LoopPath`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from torchparity.cases.generation import Generation, Prompts

__all__ = [
    "CACHE_KINDS",
    "Generation",
    "GenerationPath",
    "LoopPath",
    "Prompts",
    "PromptsUnservable",
    "is_loop_path",
]

# The cache kinds the built-in paths report (a plugin may name its own).
CACHE_KINDS = ("dynamic-cache", "static-cache", "past-kv-io", "stateful", "js-loop", "recompute")


@runtime_checkable
class GenerationPath(Protocol):
    """One prepared path's generation: the harness owns the greedy loop, the
    path owns its cache (``state``, opaque to the harness)."""

    cache_kind: str  # e.g. "dynamic-cache", "static-cache", "past-kv-io", "stateful"

    def prefill(self, prompts: Prompts) -> tuple[torch.Tensor, Any]:
        """The logits at every prompt position, float [batch, prompt_len,
        vocab] in the path's own dtype, and the path's state after the prompt."""
        ...

    def decode(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """Exactly one new token per sequence, int64 [batch] -> logits [batch,
        vocab] for that position, and the new state. The path extends its own
        mask and positions."""
        ...


@runtime_checkable
class LoopPath(Protocol):
    """A path whose runtime runs the loop itself (the JavaScript runner)."""

    cache_kind: str

    def run_loop(
        self, prompts: Prompts, steps: int, forced: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prefill then ``steps`` decode calls in the runtime's own loop.
        ``forced`` None: greedy (argmax of each step's logits); int64 [batch,
        steps]: teacher forcing, feed ``forced[:, i]`` at step i. Returns
        (prefill logits [batch, prompt_len, vocab], step logits [steps, batch,
        vocab]) where step logits[i] choose token i+1 (logits[0] is prefill's
        last position)."""
        ...


class PromptsUnservable(NotImplementedError):
    """Raised by ``prepare_generation`` when the path cannot serve these prompts
    (a static-cache program and a left-padded batch): the cell is a ``skip``
    with the message as its reason, not an error."""


def is_loop_path(path: object) -> bool:
    """Whether ``path`` runs its own loop (``run_loop``) rather than prefill/decode."""
    return callable(getattr(path, "run_loop", None)) and not callable(getattr(path, "decode", None))


def decode_input_len(path: object) -> int:
    """The new tokens per sequence each decode call gets: 1 for a cache path;
    a path that recomputes its prefix declares ``decode_input_len`` > 1 (then
    its cells are a ``skip``: the harness never passes a recomputing path)."""
    return int(getattr(path, "decode_input_len", 1))


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The next token per sequence: argmax of the last dim, ties to the lowest
    id (``torch.argmax`` returns the first maximum)."""
    return torch.argmax(logits, dim=-1)
