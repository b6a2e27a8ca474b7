"""Localizing a failing generate cell (docs/generation.md): its divergent
decode step, as a module with its cache inputs, handed to the layer localizer.

The step is the first divergent one (else the worst teacher-forced one). Its
inputs come from the fp64 reference: the prompt and the reference's tokens up
to the step, run through eager's cache path; the module (:class:`DecodeStep`)
takes the new token per sequence, the mask, the positions and the cache's key
and value tensors per layer, rebuilds the model's cache from them and returns
the step's logits. The layer localizer (localize.py) then runs it through the
cell's backend's ``prepare`` as it runs any model: accumulated and isolated
errors per layer, the culprit, the reproducer. A fault in the path's cache
handling alone (its forward right) leaves no layer over its bound: the row
keeps the verdict's ``kv-cache`` culprit and the table says so.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from torchparity.axes.precision import get_precision
from torchparity.backends.hf_cache_path import CacheState, HFCachePath, new_cache
from torchparity.cell.context import resolve
from torchparity.cell.generate import GenerateState
from torchparity.diagnose.localize import CellSetup, LayerCall, Localization, localize_built
from torchparity.verdicts import drift as drift_mod


class DecodeStep(nn.Module):
    """One decode call of a causal LM: ``(ids [batch, 1], mask, positions, k0, v0,
    k1, v1, ...) -> logits [batch, vocab]``; without cache tensors, a prefill."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        path = HFCachePath(model)
        self.cache_arg, self.positions = path.cache_arg, path.positions

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, *kv: Any):
        cache = new_cache(self.model)
        for layer in range(len(kv) // 2):
            cache.update(kv[2 * layer], kv[2 * layer + 1], layer)
        kwargs: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": mask,
            self.cache_arg: cache,
            "use_cache": True,
        }
        if self.positions:
            kwargs["position_ids"] = positions
        return self.model(**kwargs).logits[:, -1]


def step_inputs(s: GenerateState, step: int) -> tuple:
    """The inputs of decode step ``step`` (float64/int64 on CPU) from the fp64
    reference: prefill, then the reference's tokens up to the step."""
    model = copy.deepcopy(s.module).to(torch.float64)
    path = HFCachePath(model)
    prompts = s.prompts.to(torch.device("cpu"), torch.float64)
    tokens = s.reference.run.tokens
    with torch.no_grad():
        if step == 0:
            mask = prompts.attention_mask
            return (prompts.input_ids, mask, (mask.cumsum(1) - 1).clamp(min=0))
        _, state = path.prefill(prompts)
        for i in range(step - 1):
            _, state = path.decode(tokens[:, i], state)
    assert isinstance(state, CacheState)
    kv = [t.detach().clone() for layer in state.cache.layers for t in (layer.keys, layer.values)]
    mask = torch.cat([state.mask, torch.ones_like(state.mask[:, :1])], dim=1)
    return (tokens[:, step - 1 : step], mask, state.positions[:, None], *kv)


def localize_step(s: GenerateState) -> tuple[Localization, CellSetup, list[LayerCall]]:
    """The layer table of the cell's divergent decode step."""
    step = s.row.get("first_divergent_step")
    if not isinstance(step, int):
        step = int(s.row.get("tf_worst_step") or 0)
    ctx = resolve(s.cell, s.settings)
    bound = drift_mod.model_limit(ctx.tolerance, get_precision(s.cell.precision).compute_dtype)
    setup = CellSetup(ctx, DecodeStep(s.module).eval(), step_inputs(s, step), bound)
    loc, setup, layers = localize_built(setup, s.cell)
    loc.notes.insert(0, f"decode step {step} (its cache inputs from the fp64 reference)")
    return loc, setup, layers


def localizable(s: GenerateState) -> str | None:
    """Why the cell's step cannot be localized, or None."""
    if s.spec.is_encoder_decoder:
        return "an encoder-decoder's decode step is not localized yet"
    reference = getattr(s, "reference", None)
    if reference is None or reference.error:
        return "no reference"
    return None
