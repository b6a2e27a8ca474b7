"""A vacuous reference: one that could not tell a wrong backend from a right one.

A model whose every output leaf is all zeros (a zero-initialised head), or
whose output does not change when the inputs do, would be ``pass`` on any
backend that also returns that constant, whatever it computes. Such a
reference is refused with the leaves it concerns and the fix. Input
dependence is checked by a second, independent input draw through the same
fp64 reference; a case whose input factory ignores the generator (the same
inputs on every draw) is not judged on that count.

Model cases only: an op case may compute a constant on purpose (``zeros_like``)
and its samples are checked elementwise. ``constant_output_ok=True`` on a case
declares a constant output legitimate, as ``empty_output_ok`` does for an empty one.
"""

from __future__ import annotations

import torch

from torchparity.cases.case import Case
from torchparity.cases.reference import (
    Reference,
    build_inputs,
    compute_reference,
    input_digest,
    reference_key,
)

_MEMORY: dict[str, str | None] = {}  # reference key -> the refusal (None: accepted)


def _named(names: list[str]) -> str:
    shown = ", ".join(n or "(the output)" for n in names[:4])
    return shown + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def _judged(names: list[str], outputs: list[torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """The leaves with elements, when at least one is floating point: integer
    outputs alone (a class index) may legitimately be 0, or equal on two draws."""
    filled = [(n, t) for n, t in zip(names, outputs, strict=True) if t.numel()]
    return filled if any(t.is_floating_point() for _, t in filled) else []


def all_zero_leaves(names: list[str], outputs: list[torch.Tensor]) -> list[str] | None:
    """The leaves, when every one with elements is all zeros (else None)."""
    judged = _judged(names, outputs)
    if judged and all(not bool(t.detach().ne(0).any()) for _, t in judged):
        return [n for n, _ in judged]
    return None


def unchanged_leaves(
    names: list[str], first: list[torch.Tensor], second: list[torch.Tensor]
) -> list[str] | None:
    """The leaves, when every one with elements is bit-identical on two input draws."""
    judged = _judged(names, first)
    if not judged or len(first) != len(second):
        return None
    pairs = zip(first, second, strict=True)
    same = all(a.shape == b.shape and torch.equal(a, b) for a, b in pairs)
    return [n for n, _ in judged] if same else None


FIX = (
    "re-initialise the weights (reinit_weights=True re-draws all-zero weight matrices, "
    "e.g. a zero-initialised head), or declare a constant output legitimate with "
    "constant_output_ok=True"
)


def vacuous_reason(
    case: Case, module: torch.nn.Module, reference: Reference, case_print: str, seed: int = 0
) -> str | None:
    """Why ``reference`` cannot carry a verdict, or None. The second input
    draw (a forward in fp64) runs only when the outputs are not all zeros;
    the answer is kept per reference key for the process's later cells."""
    if case.kind != "model" or case.constant_output_ok:
        return None
    key = reference_key(case, case_print, reference.input_digest, seed)
    if key not in _MEMORY:
        _MEMORY[key] = _refusal(case, module, reference, seed)
    return _MEMORY[key]


def _refusal(case: Case, module: torch.nn.Module, reference: Reference, seed: int) -> str | None:
    zeros = all_zero_leaves(reference.names, reference.outputs)
    if zeros:
        return f"the reference output is all zeros ({_named(zeros)}): any backend would match it; {FIX}"
    other = build_inputs(case, seed, draw="second draw")
    if input_digest(other) == reference.input_digest:
        return None  # the factory ignores its generator: no second draw to compare with
    second = compute_reference(module, other, "")
    same = unchanged_leaves(reference.names, reference.outputs, second.outputs)
    if same:
        return (
            f"the reference output does not depend on the inputs ({_named(same)} identical on "
            f"a second input draw): any backend returning that constant would match; {FIX}"
        )
    return None
