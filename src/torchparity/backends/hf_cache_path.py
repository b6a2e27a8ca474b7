"""A Hugging Face LM's own generation step over its ``DynamicCache``: the eager
path (and, with its forward compiled, the compile path) of ``--mode generate``.

It calls the model as ``model.generate``'s greedy loop calls it: positions
from the left-padded mask (``cumsum - 1``), the mask extended by one per
step, one new token per sequence per decode call; an encoder-decoder's
encoder runs once, in prefill, and its output is reused by every step.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from torchparity.backends.generation import Prompts


@dataclass
class CacheState:
    """The path's state: the model's cache object, the decoder's mask so far,
    the next position of each sequence and (encoder-decoders) the encoder's output."""

    cache: Any
    mask: torch.Tensor
    positions: torch.Tensor
    encoder_outputs: Any = None
    encoder_mask: torch.Tensor | None = None


def _accepts(model: torch.nn.Module, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters


def new_cache(model: torch.nn.Module) -> Any:
    """An empty ``DynamicCache`` (an ``EncoderDecoderCache`` of two for an encoder-decoder)."""
    import transformers

    if getattr(model.config, "is_encoder_decoder", False):
        return transformers.EncoderDecoderCache(
            transformers.DynamicCache(), transformers.DynamicCache()
        )
    config: Any = model.config  # a transformers config (nn.Module's attributes type as Tensor)
    return transformers.DynamicCache(config=config)


def mask_positions(mask: torch.Tensor) -> torch.Tensor:
    """Each token's position counted over real tokens only (left padding: 0 there)."""
    return (mask.cumsum(dim=1) - 1).clamp(min=0)


class HFCachePath:
    """prefill/decode over a Hugging Face causal or seq2seq LM and its DynamicCache.
    ``forward`` is what runs the model (``model`` itself, or a compiled form of it)."""

    cache_kind = "dynamic-cache"
    decode_input_len = 1

    def __init__(
        self,
        model: torch.nn.Module,
        forward: Callable[..., Any] | None = None,
        context: Callable[[], Any] | None = None,
    ) -> None:
        self.model: Any = model  # a transformers model: its attributes are not nn.Module's
        self.forward = model if forward is None else forward
        self.context = context  # e.g. autocast, entered around every call
        self.seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
        self.positions = _accepts(model, "position_ids")
        self.decoder_positions = _accepts(model, "decoder_position_ids")
        # transformers 5.x renames ``past_key_values`` to ``cache`` (the old name warns).
        self.cache_arg = "cache" if _accepts(model, "cache") else "past_key_values"

    def _call(self, **kwargs: Any) -> Any:
        if self.context is None:
            return self.forward(**kwargs)
        with self.context():
            return self.forward(**kwargs)

    def _step(self, ids: torch.Tensor, state: CacheState, positions: torch.Tensor) -> Any:
        """One call of the model on ``ids`` [batch, n] at ``positions`` over ``state``'s cache."""
        kwargs: dict[str, Any] = {self.cache_arg: state.cache, "use_cache": True}
        if self.seq2seq:
            kwargs.update(
                decoder_input_ids=ids,
                decoder_attention_mask=state.mask,
                encoder_outputs=state.encoder_outputs,
                attention_mask=state.encoder_mask,
            )
            if self.decoder_positions:
                kwargs["decoder_position_ids"] = positions
        else:
            kwargs.update(input_ids=ids, attention_mask=state.mask)
            if self.positions:
                kwargs["position_ids"] = positions
        return self._call(**kwargs)

    def prefill(self, prompts: Prompts) -> tuple[torch.Tensor, CacheState]:
        mask = prompts.attention_mask
        state = CacheState(new_cache(self.model), mask, mask.sum(dim=1))
        if self.seq2seq:
            encoder = dict(prompts.encoder or {})
            state.encoder_mask = encoder.get("attention_mask")
            with torch.no_grad():
                state.encoder_outputs = self.model.get_encoder()(**encoder)
        out = self._step(prompts.input_ids, state, mask_positions(mask))
        state.cache = _returned_cache(out)
        return out.logits, state

    def decode(self, tokens: torch.Tensor, state: CacheState) -> tuple[torch.Tensor, CacheState]:
        ones = torch.ones_like(state.mask[:, :1])
        state.mask = torch.cat([state.mask, ones], dim=1)
        out = self._step(tokens[:, None], state, state.positions[:, None])
        state.positions = state.positions + 1
        state.cache = _returned_cache(out)
        return out.logits[:, -1], state


def _returned_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values
