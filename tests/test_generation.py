"""Generation parity (--mode generate, docs/generation.md): prompts, the
cache path, the verdict and the mode end to end."""

from __future__ import annotations

import pytest
import torch

from torchparity.backends.generation import GenerationPath, Prompts, greedy
from torchparity.cases.generation import Generation, generation_module, make_prompts

transformers = pytest.importorskip("transformers")

VOCAB = 64


def tiny_llama() -> torch.nn.Module:
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(config)


def test_prompts_are_left_padded_and_deterministic():
    spec = Generation(VOCAB, prompt_lengths=(9, 4))
    a, b = make_prompts(spec, "case", 0), make_prompts(spec, "case", 0)
    assert torch.equal(a.input_ids, b.input_ids)
    assert a.attention_mask.tolist()[1] == [0] * 5 + [1] * 4
    assert (a.input_ids[1, :5] == spec.pad_token_id).all()
    assert (a.input_ids[a.attention_mask == 1] != spec.pad_token_id).all()
    one = a.select(slice(1, 2))  # batch 1: the padding every row has is dropped
    assert one.input_ids.shape == (1, 4) and one.attention_mask.all()


def test_cache_path_decode_matches_full_prefill():
    """The eager path's incremental logits equal one full prefill's (fp64)."""
    from torchparity.backends.hf_cache_path import HFCachePath

    spec = Generation(VOCAB, prompt_lengths=(7, 3))
    model = generation_module(spec, tiny_llama, "llama", 0).double()
    prompts = make_prompts(spec, "llama", 0)
    path = HFCachePath(model)
    assert isinstance(path, GenerationPath)
    with torch.no_grad():
        logits, state = path.prefill(prompts)
        tokens, steps = [greedy(logits[:, -1])], [logits[:, -1]]
        for _ in range(3):
            step, state = path.decode(tokens[-1], state)
            tokens.append(greedy(step))
            steps.append(step)
        fed = torch.stack(tokens[:-1], dim=1)
        longer = Prompts(
            torch.cat([prompts.input_ids, fed], dim=1),
            torch.cat([prompts.attention_mask, torch.ones_like(fed)], dim=1),
        )
        full, _ = path.prefill(longer)
    torch.testing.assert_close(full[:, -4:], torch.stack(steps, dim=1), rtol=0, atol=1e-10)
    # The head is scaled: greedy is decisive, not a walk over near-ties.
    top = torch.stack(steps).topk(2, dim=-1).values
    assert float((top[..., 0] - top[..., 1]).median()) > 0.05
