"""Generation cases and backends as a user's plugin file declares them
(docs/generation.md): a tiny decoder, one whose incremental path is off by
one position, a backend that corrupts the KV cache from a decode step on,
and one whose only difference is flipping near-ties."""

from typing import Any

import torch
import transformers

from torchparity import Generation, InputGen, Tolerance, register_backend, register_model
from torchparity.backends.eager import EagerBackend

VOCAB = 64
CORRUPT_FROM = 2  # the decode step from which "corrupt-cache" corrupts the cache
TIE_MARGIN = 0.3  # "tie-flip" swaps its top two logits where they are closer than this


def tiny_config() -> transformers.LlamaConfig:
    return transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )


class OffByOne(transformers.LlamaForCausalLM):
    """A user's decoder whose incremental path puts each new token one position too far."""

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, **kw):
        if cache is not None and cache.get_seq_length() > 0 and position_ids is not None:
            position_ids = position_ids + 1
        return super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            **kw,
        )


def tokens(gen: InputGen, batch: int) -> dict[str, Any]:
    return {"input_ids": gen.integers(1, VOCAB, batch, 6), "attention_mask": torch.ones(batch, 6)}


SPEC = Generation(VOCAB, prompt_lengths=(6, 3), max_new_tokens=6)
register_model(
    "gen.tiny",
    lambda: transformers.LlamaForCausalLM(tiny_config()),
    tokens,
    generation=SPEC,
    # A bound wide enough for tie-flip's swaps (fp32's default is 9.5e-7).
    tolerances={torch.float32: Tolerance(rel_l2=5e-2)},
)
register_model("gen.off_by_one", lambda: OffByOne(tiny_config()), tokens, generation=SPEC)


class Wrapped:
    """Eager's path, the plugin's change applied to each decode call's cache or logits."""

    def __init__(self, path: Any, on_decode: Any) -> None:
        self.path, self.on_decode = path, on_decode
        self.cache_kind = path.cache_kind

    def prefill(self, prompts: Any) -> tuple[torch.Tensor, Any]:
        logits, state = self.path.prefill(prompts)
        return logits, [state, 0]

    def decode(self, tokens: torch.Tensor, held: Any) -> tuple[torch.Tensor, Any]:
        state, step = held
        step += 1
        logits, state = self.path.decode(tokens, self.on_decode(state, step))
        return logits, [state, step]


def corrupt(state: Any, step: int) -> Any:
    if step >= CORRUPT_FROM:
        for layer in state.cache.layers:
            layer.values.mul_(-1.0)  # every cached value flipped: the attention reads garbage
    return state


class CorruptCache(EagerBackend):
    name = "corrupt-cache"
    description = "eager, its KV cache corrupted from decode step 2 on"

    def prepare_generation(self, model, prompts, max_len, ctx):
        return Wrapped(super().prepare_generation(model, prompts, max_len, ctx), corrupt)


class TieFlipPath(Wrapped):
    def decode(self, tokens: torch.Tensor, held: Any) -> tuple[torch.Tensor, Any]:
        logits, held = super().decode(tokens, held)
        return swap_near_ties(logits), held

    def prefill(self, prompts: Any) -> tuple[torch.Tensor, Any]:
        logits, held = super().prefill(prompts)
        return swap_near_ties(logits), held


def swap_near_ties(logits: torch.Tensor) -> torch.Tensor:
    """The top two logits exchanged wherever they are within TIE_MARGIN."""
    out = logits.clone()
    top = out.topk(2, dim=-1)
    near = (top.values[..., 0] - top.values[..., 1]) < TIE_MARGIN
    first, second = top.indices[..., 0:1], top.indices[..., 1:2]
    a, b = out.gather(-1, first), out.gather(-1, second)
    out.scatter_(-1, first, torch.where(near[..., None], b, a))
    out.scatter_(-1, second, torch.where(near[..., None], a, b))
    return out


class TieFlip(EagerBackend):
    name = "tie-flip"
    description = "eager, its top two logits swapped where they nearly tie"

    def prepare_generation(self, model, prompts, max_len, ctx):
        return TieFlipPath(super().prepare_generation(model, prompts, max_len, ctx), lambda s, k: s)


register_backend(CorruptCache())
register_backend(TieFlip())
